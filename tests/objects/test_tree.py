"""Tree encoding: canonical bytes, sharding, lookups, golden digest; metafile round trips."""

from __future__ import annotations

import hashlib

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from fastreg.errors import DecodeError
from fastreg.objects import metafile, tree
from fastreg.objects.digest import digest_of


class MemoryTrees:
    """In-memory TreeStore that counts bytes read (a unit-test store, not a storage mock)."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.bytes_read = 0

    def put_tree(self, data: bytes, digest_size: int = 32) -> bytes:
        d = digest_of(data, digest_size)
        self.nodes[d] = data
        return d

    def get_tree(self, digest: bytes) -> bytes:
        data = self.nodes[digest]
        self.bytes_read += len(data)
        return data


def rec(i: int) -> tree.FileRecord:
    return tree.FileRecord(1000 + i, digest_of(str(i).encode()), b"", i % 7 == 0)


def build_flat(store: MemoryTrees, names: list[str]) -> tree.DirRecord:
    b = tree.DirBuilder(store)
    for i, name in enumerate(sorted(names)):
        b.add_file(name, rec(i))
    return b.finish()


@pytest.mark.parametrize(("size", "golden"), [
    (16, "85120f91954778c0ab93179684f135bb"),  # format 1, as fastreg wrote it before format 2
    (32, "6319508ec2a79a22260061ccaed5c91ad43418f58ccccde47073597c0f643407"),
])
def test_golden_tree_digest(size: int, golden: str) -> None:
    # Frozen encoding: if this changes, every tree digest (and metafile) changes: a format break.
    def d(data: bytes) -> bytes:
        return digest_of(data, size)

    store = MemoryTrees()
    sub = tree.DirBuilder(store)
    for i, name in enumerate(["cat.0001.jpg", "cat.0002.jpg"]):
        sub.add_file(name, tree.FileRecord(1000 + i, d(str(i).encode()), b"", i % 7 == 0))
    cats = sub.finish()
    top = tree.DirBuilder(store)
    top.add_file("README", tree.FileRecord(5, d(b"hello"), b"", False))
    top.add_dir("cats", cats)
    chunks = d(b"c1") + (70000).to_bytes(4, "big") + d(b"c2") + (30000).to_bytes(4, "big")
    top.add_file("model.bin", tree.FileRecord(100000, d(b"m"), chunks, True))
    root = top.finish()
    assert (root.size, root.files) == (5 + 1000 + 1001 + 100000, 4)
    assert root.digest.hex() == golden
    # The builder's streamed encoding is exactly msgpack of the whole node.
    expected = tree.codec.packb([
        "fastreg.tree", 1, "dir",
        [["README", 0, 5, d(b"hello"), b""],
         ["cats", 2, 2001, cats.digest, 2],
         ["model.bin", 1, 100000, d(b"m"), chunks]],
    ])
    assert store.nodes[root.digest] == expected
    assert root.digest == (xxhash.xxh3_128_digest(expected) if size == 16
                           else hashlib.sha256(b"\x00" + expected).digest())


def test_a_node_naming_children_in_the_other_format_is_refused() -> None:
    """A format-2 node holds format-2 digests only: a file checked with XXH3 inside a SHA-256 tree
    would be as forgeable as before."""
    store = MemoryTrees()
    body = tree.codec.packb(["fastreg.tree", 1, "dir", [["a", 0, 1, xxhash.xxh3_128_digest(b"a"), b""]]])
    node = store.put_tree(body, 32)
    with pytest.raises(DecodeError, match="corrupt entry"):
        list(tree.iter_dir(store, node))
    builder = tree.DirBuilder(store)
    builder.add_file("a", tree.FileRecord(1, digest_of(b"a"), b"", False))
    with pytest.raises(tree.MixedFormatsError):
        builder.add_file("b", tree.FileRecord(1, xxhash.xxh3_128_digest(b"b"), b"", False))


def test_entries_must_come_sorted() -> None:
    b = tree.DirBuilder(MemoryTrees())
    b.add_file("b", rec(1))
    with pytest.raises(ValueError):
        b.add_file("a", rec(2))


def test_large_directory_is_sharded_and_lookup_reads_little() -> None:
    store = MemoryTrees()
    names = [f"img.{i:05d}.jpg" for i in range(10_000)]
    root = build_flat(store, names)
    kinds = [tree.codec.unpackb(n)[2] for n in store.nodes.values()]
    assert kinds.count("index") == 1 and kinds.count("shard") == 10
    assert [p for p, _ in tree.walk(store, root.digest)] == sorted(names)
    store.bytes_read = 0
    found = tree.lookup(store, root.digest, "img.07345.jpg")
    assert found == rec(7345)
    whole = sum(len(n) for n in store.nodes.values())
    assert store.bytes_read < whole / 5, (store.bytes_read, whole)
    assert tree.lookup(store, root.digest, "img.99999.jpg") is None
    assert tree.lookup(store, root.digest, "aaa") is None


@settings(max_examples=40, deadline=None)
@given(st.sets(st.text(alphabet="abcxyz.-_", min_size=1, max_size=8), min_size=0, max_size=2500))
def test_digest_is_a_function_of_contents(names: set[str]) -> None:
    a, b = MemoryTrees(), MemoryTrees()
    ordered = sorted(names)
    ra = build_flat(a, ordered)
    rb = build_flat(b, list(ordered))
    assert ra == rb
    assert [p for p, _ in tree.walk(a, ra.digest)] == ordered
    for name in ordered[:5]:
        assert tree.lookup(a, ra.digest, name) is not None


def test_nested_lookup_and_corrupt_node() -> None:
    store = MemoryTrees()
    inner = build_flat(store, ["x.jpg"])
    top = tree.DirBuilder(store)
    top.add_dir("train", inner)
    root = top.finish()
    assert isinstance(tree.lookup(store, root.digest, "train"), tree.DirRecord)
    assert tree.lookup(store, root.digest, "train/x.jpg") == rec(0)
    assert tree.lookup(store, root.digest, "train/x.jpg/deeper") is None
    bad = store.put_tree(tree.codec.packb(["fastreg.tree", 99, "dir", []]))
    with pytest.raises(DecodeError, match="upgrade"):
        list(tree.iter_dir(store, bad))


def test_metafile_round_trip_and_rejects_hand_edits() -> None:
    meta = metafile.Metafile("cats-dogs", "dir", bytes(range(16)), 123, 4,
                       source=metafile.ImportSource("https://x/y.git", "use-cases/cats-dogs", "v1", "a" * 40))
    text = metafile.dumps(meta)
    assert metafile.loads(text, "m") == meta
    assert metafile.dumps(metafile.loads(text, "m")) == text
    for broken in (text.replace("format = 1", "format = 2"), text.replace('type = "dir"', 'type = "blob"'),
                   text.replace("size = 123", "size = -1"), text + "extra = 1\n", "nonsense ["):
        with pytest.raises(metafile.MetafileError):
            metafile.loads(broken, "m")


def build_nested(store: MemoryTrees, files: dict[str, tree.FileRecord]) -> tree.DirRecord:
    """A tree from {path: record} (folders made as the paths say)."""
    top: dict = {}
    for path, r in files.items():
        *dirs, name = path.split("/")
        node = top
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = r

    def build(node: dict) -> tree.DirRecord:
        b = tree.DirBuilder(store)
        for name in sorted(node):
            v = node[name]
            if isinstance(v, dict):
                b.add_dir(name, build(v))
            else:
                b.add_file(name, v)
        return b.finish()

    return build(top)


tree_paths = st.lists(st.sampled_from(["a", "b", "c.d", "a-"]), min_size=1, max_size=3).map("/".join)


def file_maps(draw_from: st.SearchStrategy[str] = tree_paths) -> st.SearchStrategy[dict[str, tree.FileRecord]]:
    def consistent(paths: set[str]) -> dict[str, tree.FileRecord]:
        out: dict[str, tree.FileRecord] = {}
        for i, p in enumerate(sorted(paths)):
            parts = p.split("/")
            if any("/".join(parts[:k]) in out for k in range(1, len(parts))) or any(q.startswith(p + "/") for q in out):
                continue  # a path under a file, or a file where a folder is
            out[p] = rec(i % 5)
        return out

    return st.sets(draw_from, max_size=14).map(consistent)


@settings(max_examples=200, deadline=None)
@given(file_maps(), file_maps(), st.sets(tree_paths))
def test_graft_puts_back_exactly_the_kept_missing_files(old: dict, new: dict, here: set[str]) -> None:
    """graft(new, old) = new, plus every file of old that new lacks (no file, no folder of new
    in its way) and that was never `here`; a folder none of whose files were here is taken whole."""
    store = MemoryTrees()
    old_rec, new_rec = build_nested(store, old), build_nested(store, new)
    had = {p for p in here if p in old}
    keep_file = lambda p: p not in had  # noqa: E731
    keep_folder = lambda prefix: not any(p.startswith(prefix) for p in had)  # noqa: E731
    got, n = tree.graft(store, new_rec.digest, old_rec.digest, keep_file, keep_folder)
    want = dict(new)
    for p, r in old.items():
        parts = p.split("/")
        blocked = p in new or any("/".join(parts[:k]) in new for k in range(1, len(parts))) \
            or any(q.startswith(p + "/") for q in new)
        if not blocked and p not in had:
            want[p] = r
    result = dict(tree.walk(store, got.digest)) if got is not None else new
    assert result == want
    assert n == len(want) - len(new)
    assert (got is None) == (n == 0)


@settings(max_examples=300, deadline=None)
@given(file_maps(), st.data())
def test_merge_by_path_equals_the_rule_on_flat_maps(base: dict, data) -> None:
    """merge_trees on folders = the three-way rule applied path by path: a path one side changed
    takes that side, both changed alike merge, both changed differently is a conflict (ours kept)."""
    from fastreg.objects import merge

    def edit(m: dict) -> dict:
        out = dict(m)
        for p in sorted(m):
            act = data.draw(st.sampled_from(["keep", "keep", "drop", "edit"]))
            if act == "drop":
                del out[p]
            elif act == "edit":
                out[p] = rec(data.draw(st.integers(5, 7)))
        for p in data.draw(st.sets(st.sampled_from(["n1", "a/n2", "b/c.d/n3"]), max_size=2)):
            parts = p.split("/")
            if not any("/".join(parts[:k]) in out for k in range(1, len(parts))) and \
                    not any(q.startswith(p + "/") for q in out):
                out[p] = rec(data.draw(st.integers(5, 7)))
        return out

    ours, theirs = edit(base), edit(base)
    store = MemoryTrees()
    b, o, t = (build_nested(store, m).digest for m in (base, ours, theirs))
    got = merge.merge_trees(store, b, o, t)
    want, conflicts = {}, set()
    for p in set(base) | set(ours) | set(theirs):
        a, x, y = base.get(p), ours.get(p), theirs.get(p)
        if x == y or a == y:
            v = x
        elif a == x:
            v = y
        else:
            conflicts.add(p)
            v = x
        if v is not None:
            want[p] = v
    merged = dict(tree.walk(store, got.record.digest)) if got.record is not None else {}
    assert {c.path for c in got.conflicts} == conflicts
    # A path the merge keeps may sit under a file the other side added (file/folder clashes are
    # conflicts of the folder): only compare where no conflict was reported on the way.
    clean = {p: r for p, r in want.items() if not any(p == c or p.startswith(c + "/") for c in conflicts)}
    assert {p: r for p, r in merged.items() if p in clean} == clean
