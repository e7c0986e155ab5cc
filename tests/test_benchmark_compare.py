"""Smoke test of benchmarks/compare.py at a tiny size: it runs, both ways agree, the last line parses."""

from __future__ import annotations

import re

from benchmarks.compare import main


def test_compare_benchmark_smoke(tmp_path, capsys):
    line = main(["--runs", "20", "--repeats", "1", "--dir", str(tmp_path)])
    assert re.fullmatch(r"compare: runs=20 compare_s=[\d.]+ html_s=[\d.]+ pandas_loop_s=[\d.]+ "
                        r"speedup_vs_pandas_loop=[\d.]+ cpu_speedup_vs_pandas_loop=[\d.]+", line)
    assert "10 groups" in capsys.readouterr().out
