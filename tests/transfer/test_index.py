"""transfer/index.py: the mirror's table (merged in place, looked up while it grows) and its file."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from fastreg.objects import pack as packfmt
from fastreg.transfer import remote_gc as remote_gc
from fastreg.transfer.index import RemoteIndex
from tests.transfer.stages import h


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=6, max_size=6), max_size=40),
       st.lists(st.lists(st.binary(min_size=6, max_size=6), max_size=20), max_size=4))
def test_merge_into_equals_sorting_everything_again(old: list[bytes], new: list[list[bytes]]) -> None:
    """Records of 6 bytes keyed by their first 2 (collisions are frequent, within the new records
    and against the table): merging in place keeps what sorting the concatenation keeps (the
    smallest record of each key)."""
    from fastreg._index import merge_into, sort_unique

    table = bytearray(sort_unique(b"".join(old), 6, 2))
    parts = [b"".join(p) for p in new]
    want = sort_unique(bytes(table) + b"".join(parts), 6, 2)
    merge_into(table, parts, 6, 2)
    assert bytes(table) == want


def test_mirror_lookups_while_it_grows(tmp_path: Path) -> None:
    """find() and has() agree with the segments merged so far, across many merges."""
    mirror = RemoteIndex(tmp_path / "m", "memory://")
    seen: dict[bytes, tuple[bytes, int, int]] = {}
    for p in range(30):
        pack = h(f"pack {p}".encode())
        entries = [(h(f"{p}-{i}".encode()), 8 + 100 * i, 100) for i in range(50)]
        entries.append((h(b"in every pack"), 4, 4))
        seg = packfmt.make_segment(pack, 8 + 100 * 50, entries)
        mirror.merge([(f"seg{p}", seg)])
        for d, off, ln in entries:
            seen.setdefault(d, (pack, off, ln))
        for d, want in list(seen.items())[:: 7]:
            loc = mirror.find(d)
            assert loc is not None and mirror.has(d)
            assert (loc.pack, loc.offset, loc.length) == want  # the first pack for the shared chunk
        assert not mirror.has(h(b"never"))
    assert len(mirror) == len(seen)


def test_mirror_file_round_trip_and_damage(tmp_path: Path) -> None:
    """The mirror is saved as a header and the table's raw bytes; loading reads them back whole,
    and a truncated or foreign file is simply a mirror to rebuild (empty), never an error."""
    mirror = RemoteIndex(tmp_path / "m", "memory://")
    entries = [(h(f"c{i}".encode()), 8 + 10 * i, 10) for i in range(500)]
    mirror.merge([("seg", packfmt.make_segment(h(b"pack"), 5008, entries))])
    mirror.trees.add(h(b"node"))
    mirror.certified.add(h(b"node"))
    mirror.save()
    again = RemoteIndex(tmp_path / "m", "memory://").load()
    assert bytes(again.table) == bytes(mirror.table) and again.segments == {"seg"}
    assert again.find(entries[7][0]) == mirror.find(entries[7][0]) is not None
    assert again.certified == {h(b"node")}
    data = (tmp_path / "m").read_bytes()
    for broken in (data[:-1], data + b"x", b"\x93garbage", b""):
        (tmp_path / "m").write_bytes(broken)
        assert len(RemoteIndex(tmp_path / "m", "memory://").load()) == 0
    (tmp_path / "m").write_bytes(data)
    assert len(RemoteIndex(tmp_path / "m", "s3://another").load()) == 0  # another remote's mirror


def test_mirror_table_is_read_when_needed_from_the_file_as_loaded(tmp_path: Path) -> None:
    """A command that looks no chunk up never reads the table (it is copied file to file when the
    mirror is saved again), and a mirror saved meanwhile by another command does not change what
    this one reads."""
    path = tmp_path / "m"
    first = RemoteIndex(path, "memory://")
    entries = [(h(f"c{i}".encode()), 8 + 10 * i, 10) for i in range(300)]
    first.merge([("seg", packfmt.make_segment(h(b"pack"), 3008, entries))])
    first.save()
    lazy = RemoteIndex(path, "memory://").load()
    assert len(lazy) == 300 and lazy._table is None
    lazy.trees.add(h(b"node"))
    lazy.save()  # the table never read: copied from the file
    assert lazy._table is None
    reread = RemoteIndex(path, "memory://").load()
    assert reread.has(entries[5][0]) and reread.trees == {h(b"node")}

    other = RemoteIndex(path, "memory://").load()
    replaced = RemoteIndex(path, "memory://")
    replaced.merge([("other", packfmt.make_segment(h(b"pack2"), 18, [(h(b"x"), 8, 10)]))])
    replaced.save()  # another command's mirror takes the file's name
    assert other.has(entries[9][0]) and not other.has(h(b"x"))  # read from the file it loaded
