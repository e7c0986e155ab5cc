"""The CI check that every test ran in some environment (.ci/unran.py), on junit reports of real
pytest runs of a small suite: in "env A" a package is importable, in "env B" it is not."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ci_unran", ROOT / ".ci" / "unran.py")
unran_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(unran_module)

SUITE = {
    "test_plain.py": """
        import pytest

        def test_runs():
            assert True

        @pytest.mark.xfail(reason="known")
        def test_expected_failure():
            assert False

        @pytest.mark.parametrize("x", [1, 2])
        def test_needs_extra(x):
            pytest.importorskip("extra_pkg")

        def test_skipped_everywhere():
            pytest.skip("no such device here")
        """,
    "test_whole_module.py": """
        import pytest

        extra = pytest.importorskip("extra_pkg")

        def test_uses_it():
            assert extra.VALUE == 3
        """,
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    for name, body in SUITE.items():
        (root / name).write_text(textwrap.dedent(body))
    (root / "pkgs").mkdir()
    (root / "pkgs" / "extra_pkg.py").write_text("VALUE = 3\n")
    out = {}
    for env, extra_path in (("a", str(root / "pkgs")), ("b", "")):
        report = root / f"{env}.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
               "--rootdir", str(root), str(root)]
        if env == "a":  # the second environment runs only what needs the package
            cmd[-1:] = [str(root / "test_whole_module.py"), f"{root / 'test_plain.py'}::test_needs_extra",
                        f"{root / 'test_plain.py'}::test_skipped_everywhere"]
        env_vars = {**os.environ, "PYTHONPATH": extra_path}
        subprocess.run(cmd, cwd=root, env=env_vars, capture_output=True, check=False, timeout=120)
        out[env] = report
    return out


def test_a_test_skipped_in_every_environment_is_reported(reports):
    main, second = str(reports["b"]), str(reports["a"])
    read = {p: unran_module.read_report(p) for p in (main, second)}
    missing = unran_module.unran(read)
    assert list(missing) == ["test_plain::test_skipped_everywhere"]
    assert missing["test_plain::test_skipped_everywhere"] == {main: "no such device here",
                                                              second: "no such device here"}
    # env B alone: everything that needs the package never ran (the module skipped whole, too)
    alone = unran_module.unran({main: read[main]})
    assert set(alone) == {"test_plain::test_needs_extra[1]", "test_plain::test_needs_extra[2]",
                          "test_plain::test_skipped_everywhere", "test_whole_module"}


def test_a_test_not_selected_where_it_could_run_is_reported(reports, tmp_path):
    main = str(reports["b"])
    # a second environment that ran only the module: test_needs_extra ran nowhere
    text = Path(reports["a"]).read_text()
    partial = tmp_path / "partial.xml"
    tree = ET.ElementTree(ET.fromstring(text))
    for suite in tree.iter("testsuite"):
        for case in list(suite.iter("testcase")):
            if case.get("name", "").startswith("test_needs_extra"):
                suite.remove(case)
    tree.write(partial)
    missing = unran_module.unran({p: unran_module.read_report(p) for p in (main, str(partial))})
    assert missing["test_plain::test_needs_extra[1]"][str(partial)] == "not selected"
    assert "could not import 'extra_pkg'" in missing["test_plain::test_needs_extra[1]"][main]


def test_the_command_exits_1_and_names_the_test(reports, capsys):
    assert unran_module.main([str(reports["b"]), str(reports["a"])]) == 1
    err = capsys.readouterr().err
    assert "NEVER RAN: test_plain::test_skipped_everywhere" in err and "1 test(s) ran in no environment" in err
    assert unran_module.main([]) == 2


def test_the_command_passes_when_everything_ran_somewhere(reports, tmp_path, capsys):
    tree = ET.parse(reports["a"])
    for case in tree.iter("testcase"):  # the one skip everywhere, turned into a run
        if case.get("name") == "test_skipped_everywhere":
            case.remove(case.find("skipped"))
    tree.write(tmp_path / "a.xml")
    assert unran_module.main([str(reports["b"]), str(tmp_path / "a.xml")]) == 0
    assert "every collected test ran" in capsys.readouterr().out
