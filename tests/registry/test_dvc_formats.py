"""DVC's formats as fastreg parses them, without DVC: the strictness a registry read from an
untrusted Git URL needs (test_dvc.py reads registries DVC itself wrote)."""

from __future__ import annotations

import hashlib
import json

import pytest

from fastreg.dvc.formats import manifest_md5, parse_config, parse_dvcfile, parse_lock, parse_manifest
from fastreg.dvc.md5 import BLOCK, Md5Check, md5_of
from fastreg.errors import MetafileError


def _manifest(entries: list[dict[str, str]]) -> tuple[bytes, str]:
    data = json.dumps(entries).encode()
    return data, manifest_md5(entries)


def test_a_manifest_is_verified_by_what_was_parsed_not_by_its_bytes() -> None:
    entries = [{"md5": "b" * 32, "relpath": "z.txt"}, {"md5": "a" * 32, "relpath": "a/b.txt"}]
    _, md5 = _manifest(entries)
    ordered = json.dumps(sorted(entries, key=lambda e: e["relpath"]), sort_keys=True).encode()
    assert md5 == hashlib.md5(ordered).hexdigest()
    pretty = json.dumps(entries, indent=4).encode()  # other whitespace, same manifest
    assert [rel for rel, _ in parse_manifest(pretty, md5, False, "x")] == ["a/b.txt", "z.txt"]
    entries[0]["md5"] = "c" * 32
    with pytest.raises(MetafileError, match="does not match its md5"):
        parse_manifest(json.dumps(entries).encode(), md5, False, "x")


@pytest.mark.parametrize("rel", ["../escape", "/abs", "a/../../b", "a//b", "."])
def test_a_manifest_path_outside_the_out_is_refused(rel: str) -> None:
    data, md5 = _manifest([{"md5": "a" * 32, "relpath": rel}])
    with pytest.raises(MetafileError, match="unsafe path"):
        parse_manifest(data, md5, False, "x")


def test_a_file_listed_twice_is_refused() -> None:
    data, md5 = _manifest([{"md5": "a" * 32, "relpath": "f"}, {"md5": "b" * 32, "relpath": "f"}])
    with pytest.raises(MetafileError, match="twice"):
        parse_manifest(data, md5, False, "x")


def test_legacy_md5_hashes_crlf_text_as_lf_and_binary_as_is() -> None:
    text = b"a line\r\n" * 1000
    check = Md5Check(legacy=True)
    check.update(text)
    assert check.matches(hashlib.md5(text.replace(b"\r\n", b"\n")).hexdigest())
    assert not check.matches(hashlib.md5(text).hexdigest())
    binary = b"\x00\r\n" * 1000
    assert md5_of(binary, legacy=True) == {hashlib.md5(binary).hexdigest()}
    assert md5_of(text, legacy=False) == {hashlib.md5(text).hexdigest()}


def test_legacy_md5_of_text_across_blocks() -> None:
    """A CRLF split by the 1 MiB block boundary: each block is converted on its own, as DVC 2 did."""
    text = b"x" * (BLOCK - 1) + b"\r\n" + b"tail\r\n"
    expected = hashlib.md5(text[:BLOCK].replace(b"\r\n", b"\n") + text[BLOCK:].replace(b"\r\n", b"\n"))
    check = Md5Check(legacy=True)
    for i in range(0, len(text), 4096):
        check.update(text[i : i + 4096])
    assert check.matches(expected.hexdigest())


def test_dvcfile_paths_hash_kinds_and_errors_name_the_file() -> None:
    outs = parse_dvcfile(b"outs:\n- md5: " + b"a" * 32 + b".dir\n  size: 10\n  nfiles: 2\n  hash: md5\n"
                         b"  path: images\n", "sub/images.dvc")
    assert (outs[0].path, outs[0].kind, outs[0].legacy, outs[0].files) == ("sub/images", "dir", False, 2)
    old = parse_dvcfile(b"outs:\n- md5: " + b"b" * 32 + b"\n  path: f.txt\n", "f.txt.dvc")
    assert old[0].legacy and old[0].kind == "file"
    with pytest.raises(MetafileError, match=r"sub/x\.dvc.*leaves the repository"):
        parse_dvcfile(b"outs:\n- md5: " + b"a" * 32 + b"\n  path: ../../etc/passwd\n", "sub/x.dvc")
    with pytest.raises(MetafileError, match="hash 'sha256'"):
        parse_dvcfile(b"outs:\n- md5: " + b"a" * 32 + b"\n  hash: sha256\n  path: f\n", "f.dvc")
    with pytest.raises(MetafileError, match=r"f\.dvc is not valid YAML"):
        parse_dvcfile(b"outs: [ {", "f.dvc")


def test_lock_outs_are_relative_to_dvc_yaml_and_schema_is_checked() -> None:
    lock = (b"schema: '2.0'\nstages:\n  s:\n    cmd: x\n    outs:\n    - path: out/a.txt\n      hash: md5\n"
            b"      md5: " + b"c" * 32 + b"\n      size: 3\n")
    outs = parse_lock(lock, "pipe/dvc.lock")
    assert outs[0].path == "pipe/out/a.txt" and outs[0].pipeline
    with pytest.raises(MetafileError, match=r"schema '3\.0'"):
        parse_lock(b"schema: '3.0'\nstages: {}\n", "dvc.lock")


def test_config_remotes_and_default() -> None:
    default, remotes = parse_config(b"[core]\n    remote = store\n['remote \"store\"']\n    url = s3://b/p\n"
                                    b"    endpointurl = http://127.0.0.1:9000\n['remote \"x\"']\n    url = ../r\n",
                                    ".dvc/config")
    assert default == "store"
    assert remotes["store"].kind == "s3" and remotes["store"].options["endpointurl"] == "http://127.0.0.1:9000"
    assert remotes["x"].kind == "local" and remotes["x"].url == "../r"
    assert parse_config(b"['remote \"g\"']\n url = gdrive://abc\n", "c")[1]["g"].kind == "gdrive"
