"""Paths as Git quotes them (fastreg/quoting.py): read back, one line each, reached by get."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(['"', "\\", "\n", "\t", "\x7f", "\udcff"])))
def test_quoted_paths_read_back_and_stay_on_one_line(path: str) -> None:
    from fastreg.quoting import quote, unquote

    q = quote(path)
    assert "\n" not in q and "\r" not in q
    assert unquote(q) == path or (q == path and path.startswith('"') and path.endswith('"') and len(path) > 1)


def test_a_name_with_a_newline_is_quoted_everywhere_and_reached_by_get(tmp_path: Path, project: Path, run,
                                                                        monkeypatch) -> None:
    ds = project / "ds"
    ds.mkdir()
    (ds / "a\nb.txt").write_text("x")
    (ds / 'q"uote.txt').write_text("q")
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "ds")
    run("push")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "odd names"], cwd=project, check=True)
    out, _ = run("list", str(project), "ds")
    assert [line.split()[-1] for line in out.splitlines()] == ['"ds/a\\nb.txt"', '"ds/q\\"uote.txt"']
    monkeypatch.chdir(tmp_path)
    run("get", str(project), "ds/a\nb.txt", "-o", "raw")
    run("get", str(project), '"ds/a\\nb.txt"', "-o", "quoted")  # the form list printed
    assert (tmp_path / "raw").read_text() == (tmp_path / "quoted").read_text() == "x"
    monkeypatch.chdir(project)
    (ds / "new\nline").write_text("n")
    out, _ = run("status")
    assert 'added:     "new\\nline"' in out
    out, _ = run("diff")
    assert '"ds/new\\nline"' in out
    out, _ = run("list", str(project), '"ds/a\\nb.txt"')  # a quoted path as input
    assert out.split()[-1] == '"ds/a\\nb.txt"' and len(out.splitlines()) == 1
