# cython: language_level=3
"""The client's mirror of a remote index is one blob of fixed-width records sorted by chunk digest
(transfer/index.py). Merging new index segments happens here, on the blob, so a mirror of
millions of chunks never becomes millions of Python objects."""

from libc.stdint cimport uint8_t, uint32_t
from libc.stdlib cimport qsort
from libc.string cimport memcmp, memcpy, memmove

cdef size_t _sort_width = 0


cdef int _cmp_records(const void* a, const void* b) noexcept nogil:
    return memcmp(a, b, _sort_width)


def index_records(const uint8_t[::1] entries, uint32_t pack_no, Py_ssize_t key=32):
    """Index segment entries (a key of `key` bytes + offset u32 BE + length u32 BE: 40 bytes in a
    version-2 segment, 24 with the 16-byte digests of version 1) -> 44-byte mirror records (32-byte
    key + pack_no u32 BE + offset + length); a 16-byte digest is widened with 16 zero bytes
    (objects/digest.py, `wide`)."""
    if key not in (16, 32):
        raise ValueError("key is 16 or 32 bytes")
    cdef Py_ssize_t width = key + 8
    cdef Py_ssize_t n = entries.shape[0] // width
    if entries.shape[0] % width:
        raise ValueError(f"index entries must be a multiple of {width} bytes")
    out = bytearray(n * 44)
    cdef uint8_t[::1] o = out
    cdef Py_ssize_t i
    cdef uint8_t nb[4]
    nb[0] = (pack_no >> 24) & 0xFF
    nb[1] = (pack_no >> 16) & 0xFF
    nb[2] = (pack_no >> 8) & 0xFF
    nb[3] = pack_no & 0xFF
    with nogil:
        for i in range(n):
            memcpy(&o[i * 44], &entries[i * width], key)  # the rest of a 16-byte key stays zero
            memcpy(&o[i * 44 + 32], nb, 4)
            memcpy(&o[i * 44 + 36], &entries[i * width + key], 8)
    return bytes(out)


def sort_unique(data, Py_ssize_t width, Py_ssize_t key):
    """Sort `width`-byte records in byte order and keep the first of each run of records whose
    first `key` bytes are equal. Returns bytes."""
    buf = bytearray(data)
    _sort_unique_in_place(buf, width, key)
    return bytes(buf)


cdef _sort_unique_in_place(bytearray buf, Py_ssize_t width, Py_ssize_t key):
    global _sort_width
    if width <= 0 or key <= 0 or key > width:
        raise ValueError("need 0 < key <= width")
    cdef Py_ssize_t total = len(buf)
    if total % width:
        raise ValueError("data is not a whole number of records")
    cdef Py_ssize_t n = total // width
    if n == 0:
        return
    cdef uint8_t[::1] b = buf
    cdef Py_ssize_t i, kept = 1
    _sort_width = <size_t>width  # under the GIL: one sort at a time
    qsort(&b[0], <size_t>n, <size_t>width, _cmp_records)
    for i in range(1, n):
        if memcmp(&b[i * width], &b[(kept - 1) * width], <size_t>key) != 0:
            if kept != i:
                memcpy(&b[kept * width], &b[i * width], <size_t>width)
            kept += 1
    del b
    del buf[kept * width:]


def find(const uint8_t[::1] table, const uint8_t[::1] key, Py_ssize_t width):
    """Index of the record of `table` (sorted, `width`-byte records) whose first len(key) bytes
    are `key`, or -1: a binary search in C (the mirror's lookups, millions per push)."""
    cdef Py_ssize_t lo = 0, hi = table.shape[0] // width, mid
    cdef size_t klen = key.shape[0]
    cdef int c
    if klen == 0 or <Py_ssize_t>klen > width:
        raise ValueError("need 0 < len(key) <= width")
    while lo < hi:
        mid = (lo + hi) // 2
        c = memcmp(&table[mid * width], &key[0], klen)
        if c < 0:
            lo = mid + 1
        elif c > 0:
            hi = mid
        else:
            return mid
    return -1


def merge_into(bytearray table, parts, Py_ssize_t width, Py_ssize_t key):
    """Merge the records of `parts` (byte strings of `width`-byte records, any order) into
    `table` (sorted, one record per `key`-byte key, as sort_unique leaves it), in place: the new
    records are sorted in a buffer of their own, the table grows by their size (glibc moves
    a large block by remapping it, not copying) and the merge runs from the end. Memory is the
    table plus the new records, never two tables. For the same key the smaller record stays."""
    if width <= 0 or key <= 0 or key > width:
        raise ValueError("need 0 < key <= width")
    if len(table) % width:
        raise ValueError("table is not a whole number of records")
    cdef Py_ssize_t total = 0
    for p in parts:
        if len(p) % width:
            raise ValueError("data is not a whole number of records")
        total += len(p)
    if total == 0:
        return
    add = bytearray(total)
    cdef Py_ssize_t at = 0
    for p in parts:
        add[at : at + len(p)] = p
        at += len(p)
    _sort_unique_in_place(add, width, key)
    cdef Py_ssize_t na = len(table) // width, nb = len(add) // width
    table.extend(bytes(nb * width))
    cdef uint8_t[::1] t = table
    cdef const uint8_t[::1] b = add
    cdef Py_ssize_t i = na - 1, j = nb - 1, k = na + nb - 1, gap
    cdef int c
    while j >= 0:
        if i >= 0:
            c = memcmp(&t[i * width], &b[j * width], <size_t>key)
            if c > 0:
                memmove(&t[k * width], &t[i * width], <size_t>width)
                i -= 1
                k -= 1
                continue
            if c == 0:  # the same key in both: the smaller record stays
                if memcmp(&t[i * width], &b[j * width], <size_t>width) > 0:
                    memmove(&t[k * width], &b[j * width], <size_t>width)
                else:
                    memmove(&t[k * width], &t[i * width], <size_t>width)
                i -= 1
                j -= 1
                k -= 1
                continue
        memcpy(&t[k * width], &b[j * width], <size_t>width)
        j -= 1
        k -= 1
    gap = k - i  # records dropped as duplicates: close the hole between the untouched front and the merged back
    if gap > 0:
        memmove(&t[(i + 1) * width], &t[(k + 1) * width], <size_t>((na + nb - 1 - k) * width))
    del t
    if gap > 0:
        del table[len(table) - gap * width:]


def lookup(const uint8_t[::1] table, const uint8_t[::1] key, Py_ssize_t width):
    """The record of `table` whose first len(key) bytes are `key` (a copy), or None: find() and
    the read in one step, so a merge in another thread cannot move the record in between."""
    cdef Py_ssize_t i = find(table, key, width)
    if i < 0:
        return None
    return bytes(table[i * width : (i + 1) * width])
