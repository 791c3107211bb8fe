# cython: language_level=3
"""The client's mirror of a remote index is one blob of fixed-width records sorted by chunk digest
(transfer/index.py). Merging new index segments happens here, on the blob, so a mirror of
millions of chunks never becomes millions of Python objects."""

from libc.stdint cimport uint8_t, uint32_t
from libc.stdlib cimport qsort
from libc.string cimport memcmp, memcpy

cdef size_t _sort_width = 0


cdef int _cmp_records(const void* a, const void* b) noexcept nogil:
    return memcmp(a, b, _sort_width)


def index_records(const uint8_t[::1] entries, uint32_t pack_no):
    """24-byte index segment entries (digest 16 + offset u32 BE + length u32 BE) -> 28-byte mirror
    records (digest 16 + pack_no u32 BE + offset + length)."""
    cdef Py_ssize_t n = entries.shape[0] // 24
    if entries.shape[0] % 24:
        raise ValueError("index entries must be a multiple of 24 bytes")
    out = bytearray(n * 28)
    cdef uint8_t[::1] o = out
    cdef Py_ssize_t i
    cdef uint8_t nb[4]
    nb[0] = (pack_no >> 24) & 0xFF
    nb[1] = (pack_no >> 16) & 0xFF
    nb[2] = (pack_no >> 8) & 0xFF
    nb[3] = pack_no & 0xFF
    with nogil:
        for i in range(n):
            memcpy(&o[i * 28], &entries[i * 24], 16)
            memcpy(&o[i * 28 + 16], nb, 4)
            memcpy(&o[i * 28 + 20], &entries[i * 24 + 16], 8)
    return bytes(out)


def sort_unique(data, Py_ssize_t width, Py_ssize_t key):
    """Sort `width`-byte records in byte order and keep the first of each run of records whose
    first `key` bytes are equal. Returns bytes."""
    global _sort_width
    if width <= 0 or key <= 0 or key > width:
        raise ValueError("need 0 < key <= width")
    buf = bytearray(data)
    cdef Py_ssize_t total = len(buf)
    if total % width:
        raise ValueError("data is not a whole number of records")
    cdef Py_ssize_t n = total // width
    if n == 0:
        return b""
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
    return bytes(buf)


def merge_unique(const uint8_t[::1] table, const uint8_t[::1] new, Py_ssize_t width, Py_ssize_t key):
    """`table` (sorted and unique, as sort_unique leaves it) with the records of `new` (any
    order) merged in: one linear pass into the result, so memory is the old table plus the new
    one (no concatenated or sorted copies of the whole). Returns bytes."""
    if width <= 0 or key <= 0 or key > width:
        raise ValueError("need 0 < key <= width")
    if table.shape[0] % width or new.shape[0] % width:
        raise ValueError("data is not a whole number of records")
    if new.shape[0] == 0:
        return bytes(table)
    add = sort_unique(new, width, key)
    cdef const uint8_t[::1] b = add
    cdef Py_ssize_t na = table.shape[0] // width, nb = b.shape[0] // width
    out = bytearray((na + nb) * width)
    cdef uint8_t[::1] o = out
    cdef Py_ssize_t i = 0, j = 0, k = 0
    cdef const uint8_t* pick
    cdef int c
    with nogil:
        while i < na or j < nb:
            if j >= nb:
                pick = &table[i * width]
                i += 1
            elif i >= na:
                pick = &b[j * width]
                j += 1
            else:
                c = memcmp(&table[i * width], &b[j * width], <size_t>width)
                if c <= 0:
                    pick = &table[i * width]
                    i += 1
                else:
                    pick = &b[j * width]
                    j += 1
            if k > 0 and memcmp(pick, &o[(k - 1) * width], <size_t>key) == 0:
                continue  # the same digest again: the smaller record (first) stays
            memcpy(&o[k * width], pick, <size_t>width)
            k += 1
    del o
    del out[k * width:]
    return out


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
