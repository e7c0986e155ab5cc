"""Report sections that follow the data of the measurement families, or that several kinds of run
share (the claim, membership, LiRA, unlearning).

Each module here calls ``mnemoscope.report.html.register_section`` at import time; the report
imports every module of this package before rendering, so adding a file is all it takes. A
section that belongs to one recipe only lives in that recipe's folder (``recipes/<name>/report.py``)
and is named in its declaration (``sections=``); the report imports those too.
A section returns None when the run lacks its data, so unrelated runs are unaffected.
"""
