"""A pipeline's dvc.lock as DVC 1.x wrote it (the stages at the top level, no `schema` key): the
fixture in fixtures/dvc-1.11 was written by DVC 1.11.16 (`dvc run` twice, `dvc push`, in its own
virtualenv on Python 3.8 with funcy<2 and pathspec==0.8.1, which 1.11 needs): its repo's files
and its local remote, both as that DVC left them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from fastreg.dvc.formats import parse_lock
from tests.helpers import files_under, git

FIXTURE = Path(__file__).parent / "fixtures" / "dvc-1.11"


def _uncommitted(tmp_path: Path) -> Path:
    """The fixture's remote and project copied under tmp_path, the project a Git repo with no commit."""
    shutil.copytree(FIXTURE / "remote", tmp_path / "remote")
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE / "repo", repo)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    return repo


def _registry(tmp_path: Path) -> Path:
    repo = _uncommitted(tmp_path)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "dvc 1.11 pipeline")
    git(repo, "tag", "v1")
    return repo


def test_a_dvc_1_lock_is_read_with_its_outs() -> None:
    outs = {o.path: o for o in parse_lock((FIXTURE / "repo" / "dvc.lock").read_bytes(), "dvc.lock")}
    assert sorted(outs) == ["count.txt", "out"]
    assert outs["out"].kind == "dir" and outs["out"].md5 == "6941971721eb15c075bb699ff622877d"
    assert outs["out"].legacy and outs["out"].files == 2 and outs["count.txt"].size == 2


def test_list_get_and_diff_of_a_registry_with_a_dvc_1_lock(tmp_path: Path, run, monkeypatch) -> None:
    repo = _registry(tmp_path)
    url = str(repo)
    monkeypatch.chdir(tmp_path)
    out, _ = run("list", url, "--json")
    tracked = {e["path"]: e for e in json.loads(out) if e["tracked"]}
    assert set(tracked) == {"out", "count.txt"} and tracked["out"]["files"] == 2
    out, _ = run("list", url, "out")
    assert "out/sorted.csv" in out and "out/notes.txt" in out
    run("get", url, "out", "-o", "got/")
    assert files_under(tmp_path / "got" / "out") == {"sorted.csv": b"a,1\nb,2\n", "notes.txt": b"hello\n"}
    run("get", url, "count.txt", "-o", "count.txt")
    assert (tmp_path / "count.txt").read_bytes() == b"2\n"
    # DVC 2 rewrites the same lock in schema 2.0 on its next `dvc repro`: not a change of the data
    lock = (repo / "dvc.lock").read_text()
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages:\n" + "".join(f"  {line}\n" for line in lock.splitlines()))
    git(repo, "commit", "-qam", "the lock in schema 2.0")
    out, _ = run("diff", "--repo", url, "v1", "main", "--json")
    doc = json.loads(out)
    assert [doc[k] for k in ("added", "deleted", "modified", "renamed")] == [[], [], [], []], doc


def test_history_across_dvc_init_diffs_from_an_empty_registry(tmp_path: Path, run, monkeypatch) -> None:
    repo = _uncommitted(tmp_path)
    git(repo, "add", "raw")
    git(repo, "commit", "-qm", "before dvc init")
    git(repo, "tag", "v0")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "dvc init and a pipeline")
    monkeypatch.chdir(tmp_path)
    out, _ = run("diff", "--repo", str(repo), "v0", "main", "--json")
    doc = json.loads(out)
    assert sorted(c["path"] for c in doc["added"]) == ["count.txt", "out/notes.txt", "out/sorted.csv"]
    assert doc["deleted"] == doc["modified"] == []
    out, _ = run("diff", "--repo", str(repo), "main", "v0", "--json")
    assert sorted(c["path"] for c in json.loads(out)["deleted"]) == ["count.txt", "out/notes.txt", "out/sorted.csv"]


def test_a_folder_that_holds_only_pipeline_outs_is_listed(tmp_path: Path, run, monkeypatch) -> None:
    """results/ is in no Git tree (its outs are git-ignored): only dvc.lock says it is there."""
    repo = _registry(tmp_path)
    lock = (repo / "dvc.lock").read_text().replace("path: count.txt", "path: results/deep/count.txt")
    (repo / "dvc.lock").write_text(lock)
    git(repo, "commit", "-qam", "the count goes to results/deep")
    url = str(repo)
    monkeypatch.chdir(tmp_path)
    out, _ = run("list", url)
    assert "results/" in out.split()
    out, _ = run("list", url, "results")
    assert out.split()[-1] == "results/deep/" and len(out.splitlines()) == 1
    out, _ = run("list", url, "results", "-R", "--json")
    assert [e["path"] for e in json.loads(out)] == ["results/deep/count.txt"]
    _, err = run("list", url, "nothing-here", rc=1)
    assert "not found" in err


def test_outs_dvc_yaml_declares_uncached_are_git_files(tmp_path: Path, run, monkeypatch) -> None:
    """`cache: false` lives in dvc.yaml, not in the lock: such an out is a Git file when it is
    committed (even a folder whose files sit deeper down) and nothing tracked when it is not."""
    repo = _registry(tmp_path)
    stages = (repo / "dvc.yaml").read_text()
    stages = stages.replace("    - out\n", "    - out:\n        cache: false\n")
    stages = stages.replace("    - count.txt\n", "    - count.txt:\n        cache: false\n")
    (repo / "dvc.yaml").write_text(stages)
    git(repo, "commit", "-qam", "the outs are not cached")
    url = str(repo)
    monkeypatch.chdir(tmp_path)
    out, _ = run("list", url, "--json")
    assert not [e for e in json.loads(out) if e["tracked"]]  # nothing is DVC's to fetch any more
    (repo / "out" / "sub").mkdir(parents=True)
    (repo / "out" / "sub" / "kept.txt").write_text("committed\n")
    (repo / "count.txt").write_text("from git\n")
    git(repo, "add", "-f", "out/sub/kept.txt", "count.txt")
    git(repo, "commit", "-qm", "the uncached outs are committed")
    run("get", url, "count.txt")
    assert (tmp_path / "count.txt").read_text() == "from git\n"
    run("get", url, "out/sub/kept.txt")
    assert (tmp_path / "kept.txt").read_text() == "committed\n"


def _dvc0(out: str, md5: str, stage_md5: str) -> str:
    """A .dvc file as DVC 0.x wrote them (Stage.dumpd: the stage's own md5 at the top, outs with
    md5, cache, metric and persist, no size, no nfiles, and wdir)."""
    return (f"md5: {stage_md5}\nouts:\n- md5: {md5}\n  path: {out}\n  cache: true\n  metric: false\n"
            "  persist: false\nwdir: .\n")


def test_outs_that_record_no_size_show_it_unknown_never_zero(tmp_path: Path, run, monkeypatch) -> None:
    repo = _registry(tmp_path)
    (repo / "dvc.lock").unlink()
    (repo / "dvc.yaml").unlink()
    (repo / "out.dvc").write_text(_dvc0("out", "6941971721eb15c075bb699ff622877d.dir", "0a" * 16))
    (repo / "count.txt.dvc").write_text(_dvc0("count.txt", "26ab0db90d72e28ad0ba1e22ee510510", "1b" * 16))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "DVC 0.x stage files")
    monkeypatch.chdir(tmp_path)
    out, _ = run("list", str(repo), "--json")
    tracked = {e["path"]: e for e in json.loads(out) if e["tracked"]}
    assert tracked["count.txt"]["size"] is None  # was 0
    assert tracked["out"]["size"] is None and "files" not in tracked["out"]  # unknown (was 0 files)
    out, _ = run("list", str(repo))
    assert "* file         -        -  count.txt" in out
    run("get", str(repo), "count.txt")
    assert (tmp_path / "count.txt").read_bytes() == b"2\n"


def test_migrate_never_makes_a_read_only_dvc_remote_the_one_to_push_to(tmp_path: Path, run, monkeypatch) -> None:
    repo = _registry(tmp_path)
    (repo / ".dvc" / "config").write_text("[core]\n    remote = web\n['remote \"web\"']\n"
                                          "    url = https://data.example.invalid/store\n")
    git(repo, "commit", "-qam", "the data is served over HTTP")
    monkeypatch.chdir(repo)
    out, err = run("migrate", "--dry-run")
    assert "would add the fastreg remote" not in out and "--prefix" in err and "read-only" in err
    out, err = run("migrate", "--dry-run", "--prefix", str(tmp_path / "fastreg-data"))
    assert f"would add the fastreg remote web: {tmp_path / 'fastreg-data'}" in out and not err
    out, err = run("migrate")
    assert "Remote web" not in out and "--prefix" in err
    out, _ = run("remote", "list")
    assert "web" not in out


def test_a_plain_list_reads_no_manifest_and_list_r_lists_all_it_can(tmp_path: Path, run, monkeypatch) -> None:
    repo = _registry(tmp_path)
    shutil.rmtree(tmp_path / "remote")  # the DVC remote is gone: only Git answers
    monkeypatch.chdir(tmp_path)
    out, _ = run("list", str(repo))
    assert "* dir        14B        2  out/" in out  # what dvc.lock says, no manifest read
    out, err = run("list", str(repo), "-R", rc=7)
    assert "raw/table.csv" in out and "count.txt" in out and "out/" in out  # all else is listed first
    assert "could not be listed inside" in err and "out:" in err


def test_a_dvc_remote_that_refuses_names_the_tracked_path_and_what_to_do(tmp_path: Path, run,
                                                                         monkeypatch) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(403)
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        repo = _registry(tmp_path)
        (repo / ".dvc" / "config").write_text(f"[core]\n    remote = web\n['remote \"web\"']\n"
                                              f"    url = http://127.0.0.1:{server.server_address[1]}/store\n")
        git(repo, "commit", "-qam", "the data behind a server that refuses")
        monkeypatch.chdir(tmp_path)
        _, err = run("get", str(repo), "count.txt", rc=7)
        assert err.startswith("error: count.txt: its data could not be read from the DVC remote") and "403" in err
    finally:
        server.shutdown()
        server.server_close()


def _importer(tmp_path: Path, name: str, source: Path, commit: str, src_path: str, md5: str) -> Path:
    """A DVC project with one import stage, as `dvc import` writes it (frozen, one dep with
    `repo: {url, rev_lock}`; written from DVC's own import stage layout) and no remote of its own."""
    root = tmp_path / name
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc" / "config").write_text("")
    (root / "data.dvc").write_text(
        f"md5: {'3c' * 16}\nfrozen: true\ndeps:\n- path: {src_path}\n  repo:\n    url: {source}\n"
        f"    rev_lock: {commit}\nouts:\n- md5: {md5}\n  size: 14\n  nfiles: 2\n  path: data\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "dvc import")
    return root


def test_an_import_stage_is_read_from_its_source_registry(tmp_path: Path, run, monkeypatch) -> None:
    """DVC never pushes an import's data: it is the source registry's at rev_lock, followed
    through imports of imports, and a cycle is one error line."""
    source = _registry(tmp_path)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True,
                            check=True).stdout.strip()
    first = _importer(tmp_path, "first", source, commit, "out", "6941971721eb15c075bb699ff622877d.dir")
    first_commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=first, capture_output=True, text=True,
                                  check=True).stdout.strip()
    second = _importer(tmp_path, "second", first, first_commit, "data", "6941971721eb15c075bb699ff622877d.dir")
    monkeypatch.chdir(tmp_path)
    for reg in (first, second):  # an import, and an import of an import
        out, _ = run("list", str(reg), "data")
        assert [line.split()[-1] for line in out.splitlines()] == ["data/notes.txt", "data/sorted.csv"]
        run("get", str(reg), "data", "-o", f"got-{reg.name}")
        assert files_under(tmp_path / f"got-{reg.name}") == {"sorted.csv": b"a,1\nb,2\n", "notes.txt": b"hello\n"}
    # list marks an import as one, and says where from (the source's path for a path inside it)
    out, _ = run("list", str(first))
    assert out.splitlines()[0].startswith("i dir ") and out.splitlines()[0].endswith(" data/")
    out, _ = run("list", str(first), "-R", "--json")
    entries = {e["path"]: e for e in json.loads(out)}
    assert entries["data"]["import"] == {"url": str(source), "path": "out", "rev": None, "rev_lock": commit}
    assert entries["data/notes.txt"]["import"]["path"] == "out/notes.txt"
    # diff of an import stage's change reads the manifests from the source
    git(first, "rm", "-q", "data.dvc")
    git(first, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "import dropped")
    out, _ = run("diff", "--repo", str(first), "HEAD~1", "HEAD")
    assert "deleted" in out and "data/notes.txt" in out and "data/sorted.csv" in out
    # two projects that import from each other's main branch: followed IMPORT_DEPTH deep, then refused
    _importer(tmp_path, "ping", tmp_path / "pong", "main", "data", "6941971721eb15c075bb699ff622877d.dir")
    _importer(tmp_path, "pong", tmp_path / "ping", "main", "data", "6941971721eb15c075bb699ff622877d.dir")
    _, err = run("get", str(tmp_path / "ping"), "data", "-o", "nothing", rc=1)
    assert "more than 8 deep" in err and not (tmp_path / "nothing").exists()


def test_migrate_turns_an_import_stage_into_a_fastreg_import_that_keeps_its_source(tmp_path: Path, run,
                                                                                   monkeypatch) -> None:
    source = _registry(tmp_path)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True,
                            check=True).stdout.strip()
    want = {"notes.txt": b"hello\n", "sorted.csv": b"a,1\nb,2\n"}
    imp = _importer(tmp_path, "imp", source, commit, "out", "6941971721eb15c075bb699ff622877d.dir")
    monkeypatch.chdir(imp)
    # its bytes are nowhere here (no workspace copy, no DVC cache): only its source has them
    out, _ = run("migrate", "--dry-run")
    assert out.strip() == (f"would keep data with DVC: its manifest 6941971721eb15c075bb699ff622877d.dir is not in "
                           f"the DVC cache (--from-remote reads it from its source {source})")
    out, _ = run("migrate", "--dry-run", "--from-remote")
    assert out.strip() == (f"would migrate data (dir, 2 files, 14 B) from data.dvc as an import of out from "
                           f"{source} at {commit[:10]}")
    run("migrate", "--from-remote")
    assert not (imp / "data.dvc").exists()
    meta = (imp / "data.fastreg").read_text()
    assert f'url = "{source}"' in meta and 'path = "out"' in meta and f'rev_lock = "{commit}"' in meta
    run("checkout")  # migrate never writes the workspace; its data is in the cache
    assert files_under(imp / "data") == want
    out, _ = run("status", "--json")
    assert json.loads(out)["targets"][0]["import"]["rev_lock"] == commit
    # a teammate's clone pulls it from the source (the project has no remote of its own)
    git(imp, "add", "-A")
    git(imp, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "migrated")
    subprocess.run(["git", "clone", "-q", str(imp), str(tmp_path / "mate")], check=True)
    monkeypatch.chdir(tmp_path / "mate")
    run("pull")
    assert files_under(tmp_path / "mate" / "data") == want
    # the usual case: `dvc import` left the files in the workspace and the manifest in its cache
    imp2 = _importer(tmp_path, "imp2", source, commit, "out", "6941971721eb15c075bb699ff622877d.dir")
    (imp2 / ".dvc" / "cache" / "69").mkdir(parents=True)
    shutil.copy(FIXTURE / "remote" / "69" / "41971721eb15c075bb699ff622877d.dir", imp2 / ".dvc" / "cache" / "69")
    for name, data in want.items():
        (imp2 / "data").mkdir(exist_ok=True)
        (imp2 / "data" / name).write_bytes(data)
    monkeypatch.chdir(imp2)
    run("migrate")
    assert f'rev_lock = "{commit}"' in (imp2 / "data.fastreg").read_text()
    assert json.loads(run("status", "--json")[0])["changed"] is False


def test_the_web_view_of_a_dvc_project_whose_remote_refuses_never_waits_on_it(tmp_path: Path) -> None:
    """Nothing in the versions page needs data: the diffs that need the remote's manifests run in
    the background, a failure is said (and not asked again for a while), and a file's page shows
    its size and md5 without its bytes."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from fastreg.ui.model import Registry

    asked = []

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(403)
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    reg = None
    try:
        repo = _registry(tmp_path)
        (repo / ".dvc" / "config").write_text(f"[core]\n    remote = web\n['remote \"web\"']\n"
                                              f"    url = http://127.0.0.1:{server.server_address[1]}/store\n")
        lock = repo / "dvc.lock"  # the pipeline's folder changed: its diff needs both manifests
        lock.write_text(lock.read_text().replace("6941971721eb15c075bb699ff622877d", "0" * 32))
        git(repo, "commit", "-qam", "out changed, data behind a server that refuses")
        reg = Registry(str(repo))
        top = reg.versions()["commits"][0]
        assert top["files"] == 3 and top["bytes"] == 16  # from Git: out (2 files, 14 B) and count.txt (2 B)
        assert top.get("pending") or "403" in top["changes_error"]
        reg.stats(top["commit"], top["parents"][0])  # no deadline: waits for the background diff
        again = reg.versions()["commits"][0]
        assert again["changes"] is None and "403" in again["changes_error"]
        seen = len(asked)
        reg.versions()
        assert len(asked) == seen  # a failure is remembered: the remote is not asked on every request
        page = reg.file(None, "count.txt")
        assert page["size"] == 2 and page["digest"] == "md5:26ab0db90d72e28ad0ba1e22ee510510"
        assert "403" in page["unreadable"]
    finally:
        if reg is not None:
            reg.close()
        server.shutdown()
        server.server_close()


def test_fsspec_find_and_du_list_all_they_can_and_name_what_they_cannot(tmp_path: Path) -> None:
    import fsspec
    import pytest

    from fastreg.registry.fsspec import UnreadableFolderError, UnreadableWarning

    repo = _registry(tmp_path)
    (tmp_path / "remote" / "69" / "41971721eb15c075bb699ff622877d.dir").unlink()  # out's manifest is gone
    fs = fsspec.filesystem("fastreg", repo=str(repo), skip_instance_cache=True)
    with pytest.warns(UnreadableWarning, match=r"1 tracked folder could not be listed .*fastreg://out: .*6941971721"):
        found = fs.find("")
    assert "count.txt" in found and "raw/table.csv" in found and not any(p.startswith("out/") for p in found)
    with pytest.warns(UnreadableWarning):
        assert fs.du("", total=True) >= 2
    with pytest.raises(UnreadableFolderError, match="fastreg://out"):
        fs.ls("out")
