"""A reader that finds many paths (the web view, fastreg://, a dataset's files opened one by one):
after its first few lookups it reads the commit's metafile names once and keeps the tree nodes it
decoded, and answers exactly as a fresh reader does, with a bounded memory of nodes."""

from __future__ import annotations

from pathlib import Path

from fastreg import git_cli
from fastreg.errors import FastregError
from fastreg.objects import tree
from fastreg.registry import fastreg_reader as reader_mod
from fastreg.registry.kinds import open_reader
from tests.helpers import git, setup_registry

PATHS = ["ds", "ds/data/train", "ds/data/train/cats", "ds/data/train/cats/cat.0001.jpg",
         "ds/data/validation/dogs/dog.0002.jpg", "model.bin", "notes/readme.txt", "ds/data/train/cats/nothing.jpg",
         "notes", "nothing/at/all", "model.bin/x"]


def answer(r: reader_mod.FastregReader, path: str) -> tuple:
    try:
        loc = r.locate(path)
        if loc.meta is None:
            return ("git", loc.path, r.git_bytes(loc.path))
        return ("data", loc.path, loc.meta.digest, loc.subpath, r.stat(loc))
    except FastregError as exc:
        return ("error", type(exc).__name__, exc.message)


def test_many_lookups_answer_as_first_ones_with_two_git_calls(tmp_path: Path, project: Path, run, make_images,
                                                               monkeypatch) -> None:
    setup_registry(project, run, make_images, str(tmp_path / "remote"))
    (project / "notes").mkdir()
    (project / "notes" / "readme.txt").write_text("plain Git\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "notes")
    run("push")
    url = str(project)
    fresh = []
    for p in PATHS:  # each the first lookup of its reader: Git is asked for exactly its metafiles
        with open_reader(url, None) as r:
            fresh.append(answer(r, p))
    assert fresh[3][0] == "data" and fresh[6][0] == "git" and fresh[7][0] == fresh[8][0] == "error"
    with open_reader(url, None) as r:
        for _ in range(reader_mod.LOCATE_BY_GIT):
            r.locate("model.bin")
        assert [answer(r, p) for p in PATHS] == fresh
        calls = []
        real = git_cli.run
        monkeypatch.setattr(git_cli, "run", lambda args, *a, **k: calls.append(args[0]) or real(args, *a, **k))
        names = [f"ds/data/train/{kind}s/{kind}.{i:04d}.jpg" for kind in ("cat", "dog") for i in range(1, 16)]
        for p in names:
            assert r.stat(r.locate(p)).kind == "file"
        assert calls == []  # the metafile names, the metafile and the tree nodes: all known by now


def test_the_kept_nodes_stay_within_their_bound_and_agree_with_the_cache(tmp_path: Path, project: Path, run,
                                                                        make_images, monkeypatch) -> None:
    setup_registry(project, run, make_images, str(tmp_path / "remote"))
    run("push")
    monkeypatch.setattr(tree.NodeMemo, "ENTRIES", 12)
    with open_reader(str(project), None) as r:
        meta = r.meta_at("ds")
        assert meta is not None
        memo = r.trees.memo  # type: ignore[attr-defined]
        for split, kind, n in [("train", "cat", 15), ("validation", "dog", 5), ("train", "dog", 15)] * 2:
            for i in range(1, n + 1):
                rel = f"data/{split}/{kind}s/{kind}.{i:04d}.jpg"
                kept = tree.locate(r.trees, meta.digest, rel)  # fetched into the cache, decoded, kept
                assert kept is not None and kept == tree.locate(r.cache, meta.digest, rel)
                assert memo._entries <= memo.ENTRIES or len(memo._nodes) == 1
        assert tree.locate(r.trees, meta.digest, "data/train/cats/none.jpg") is None
