"""Smoke test of benchmarks/untargeted.py at a tiny size (no timing assertions)."""

from benchmarks import untargeted


def test_benchmark_runs_and_finds_planted_generations(capsys):
    out = untargeted.main(["--size", "micro", "--corpus-tokens", "20000", "--generations", "20", "--new-tokens", "60",
                           "--min-tokens", "20"])
    assert set(out) >= {"match_vs_generate", "build_vs_generate"}
    assert "untargeted: match_vs_generate=" in capsys.readouterr().out.splitlines()[-1]
