"""Fail when a test ran in no environment.

    python .ci/unran.py MAIN.xml SECOND.xml ...

Each argument is a pytest ``--junitxml`` report of one environment's run (``make test`` in .venv,
``make test-vllm`` in .venv-vllm). A test *ran* in a report when it is there without a
``<skipped>`` element (an expected failure, ``xfail``, ran). A test that some report skipped and no
report ran is listed with each report's reason (or "not selected" where it is absent) and the exit
status is 1. A module skipped while it was collected (``importorskip`` at module level: the report
names the module, not its tests) counts as run when any report ran a test of that module.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def read_report(path: str | Path) -> dict[str, str | None]:
    """``{test id: None if it ran, else the skip reason}``; the id is ``module::name`` (a module
    skipped at collection: the module alone)."""
    out: dict[str, str | None] = {}
    for case in ET.parse(path).iter("testcase"):
        module, name = case.get("classname", ""), case.get("name", "")
        test_id = f"{module}::{name}" if module else name
        skipped = case.find("skipped")
        if skipped is None or skipped.get("type") == "pytest.xfail":
            out[test_id] = None
        else:
            out[test_id] = skipped.get("message") or "skipped"
    return out


def unran(reports: dict[str, dict[str, str | None]]) -> dict[str, dict[str, str]]:
    """``{test id: {report: why it did not run there}}`` for each test no report ran."""
    ran = {test for report in reports.values() for test, reason in report.items() if reason is None}
    ran_modules = {test.split("::", 1)[0] for test in ran}
    missing: dict[str, dict[str, str]] = {}
    for report in reports.values():
        for test, reason in report.items():
            if reason is None or test in ran or ("::" not in test and test in ran_modules):
                continue
            missing[test] = {name: other.get(test) or "not selected" for name, other in reports.items()}
    return missing


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python .ci/unran.py REPORT.xml [REPORT.xml ...]", file=sys.stderr)
        return 2
    reports = {path: read_report(path) for path in argv}
    missing = unran(reports)
    for test, why in sorted(missing.items()):
        print(f"NEVER RAN: {test}: " + "; ".join(f"{Path(r).name}: {reason}" for r, reason in why.items()),
              file=sys.stderr)
    n = len({t for report in reports.values() for t in report})
    if missing:
        print(f"{len(missing)} test(s) ran in no environment (of {n} collected): install what they need in one "
              "of them, or mark them for `make test-vllm`", file=sys.stderr)
        return 1
    print(f"every collected test ran in at least one environment ({n} tests, {len(argv)} reports)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
