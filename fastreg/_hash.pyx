# cython: language_level=3
"""Native core: FastCDC cut points and XXH3-128 digests.

Policy-free on purpose: chunk sizes, the gear table and which files to read are decided in
``fastreg/chunking.py``.  This module only answers "where are the cut points of these bytes" and
"what are the chunk and file digests of these files", with the GIL released around the byte loops
(the cut-point scan and the read() calls) so two threads keep two cores busy.

Chunk list encoding (``chunks`` in the results): the concatenation, in file order, of one 20-byte
entry per chunk: 16 raw bytes of XXH3-128 then the chunk length as a big-endian uint32.  A file
that is a single chunk (every file no larger than the minimum chunk size, and the empty file) gets
an empty list: its only chunk is the whole file, whose digest is the file digest.  That saves 20
bytes per small image in every tree.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove
from libc.errno cimport errno, EINTR
from posix.fcntl cimport O_RDONLY, open as c_open
from posix.unistd cimport close as c_close, read as c_read

import os

import xxhash

cdef extern from "fcntl.h":
    int O_CLOEXEC

_digest = xxhash.xxh3_128_digest
_hasher = xxhash.xxh3_128

cdef enum:
    CHUNK_ENTRY = 20


cdef class Chunker:
    """FastCDC with normalized chunking (two masks) over a 256-entry gear table.

    ``gear`` is 2048 bytes: 256 little-endian uint64.  ``norm_level`` moves the cut probability
    before/after the average size (level 2 as in the FastCDC paper).  The rolling hash shifts left
    one bit per byte, so a cut decision depends only on the last 64 bytes.
    """

    cdef uint64_t _gear[256]
    cdef uint64_t _gear_ls[256]
    cdef readonly size_t min_size
    cdef readonly size_t avg_size
    cdef readonly size_t max_size
    cdef uint64_t _mask_s
    cdef uint64_t _mask_l

    def __cinit__(self, size_t min_size, size_t avg_size, size_t max_size, const uint8_t[:] gear,
                  int norm_level=2):
        cdef int bits = 0
        cdef int i, k
        cdef uint64_t v
        if gear.shape[0] != 256 * 8:
            raise ValueError("gear table must be 2048 bytes (256 little-endian uint64)")
        if not (64 <= min_size < avg_size < max_size <= 0x7FFFFFFF):
            raise ValueError("need 64 <= min_size < avg_size < max_size < 2 GiB")
        if avg_size & (avg_size - 1):
            raise ValueError("avg_size must be a power of two")
        while (<size_t>1 << bits) < avg_size:
            bits += 1
        if not (0 <= norm_level < bits - 1):
            raise ValueError("norm_level out of range")
        for i in range(256):
            v = 0
            for k in range(8):
                v |= (<uint64_t>gear[i * 8 + k]) << (8 * k)
            self._gear[i] = v
        self.min_size = min_size
        self.avg_size = avg_size
        self.max_size = max_size
        self._mask_s = _mask_bits(bits + norm_level)
        self._mask_l = _mask_bits(bits - norm_level)
        for i in range(256):
            self._gear_ls[i] = self._gear[i] << 1

    cdef inline size_t _cut(self, const uint8_t* p, size_t n) noexcept nogil:
        """Length of the chunk that starts at p, given n bytes available (n < max only at EOF)."""
        cdef size_t i, normal
        cdef uint64_t fp = 0
        cdef uint64_t ms = self._mask_s
        cdef uint64_t ml = self._mask_l
        cdef const uint64_t* g = self._gear
        cdef const uint64_t* gl = self._gear_ls
        if n <= self.min_size:
            return n
        if n > self.max_size:
            n = self.max_size
        normal = self.avg_size if n > self.avg_size else n
        i = self.min_size
        cdef bint found = False
        i = _scan(g, gl, p, i, normal, ms, &fp, &found)
        if found:
            return i
        return _scan(g, gl, p, i, n, ml, &fp, &found)

    cdef size_t _cuts(self, const uint8_t* p, size_t n, bint eof, size_t* out,
                      size_t cap, size_t* consumed) noexcept nogil:
        """Write chunk end offsets into out (at most cap); returns how many.

        Without eof, stops while fewer than max_size bytes remain, since the next cut could
        depend on bytes not yet read; *consumed is the end of the last chunk found.
        """
        cdef size_t pos = 0
        cdef size_t count = 0
        cdef size_t step
        while pos < n and count < cap:
            if not eof and n - pos < self.max_size:
                break
            step = self._cut(p + pos, n - pos)
            pos += step
            out[count] = pos
            count += 1
        consumed[0] = pos
        return count

    def cut_points(self, const uint8_t[::1] data not None, bint eof=True):
        """Chunk end offsets in ``data`` (the last is len(data) when eof)."""
        cdef size_t n = data.shape[0]
        cdef size_t cap = n // self.min_size + 2
        cdef size_t consumed = 0
        cdef size_t count
        cdef size_t* out = <size_t*>malloc(cap * sizeof(size_t))
        cdef const uint8_t* p = &data[0] if n else NULL
        if out == NULL:
            raise MemoryError()
        try:
            with nogil:
                count = self._cuts(p, n, eof, out, cap, &consumed)
            return [out[i] for i in range(count)]
        finally:
            free(out)

    def digest_buffer(self, const uint8_t[::1] data not None):
        """(file digest, chunk list) of an in-memory buffer; see the module doc for the encoding.

        Works through the buffer in windows of a few max_size so the chunk and file hashes read
        bytes the cut-point scan just brought into the CPU cache (one trip through memory).
        """
        cdef size_t n = data.shape[0]
        cdef size_t window = 4 * self.max_size
        cdef size_t cap = window // self.min_size + 2
        cdef size_t pos = 0
        cdef size_t end, count, consumed = 0
        cdef size_t hashed = 0
        cdef size_t nchunks = 0
        cdef bint eof
        cdef size_t* out = <size_t*>malloc(cap * sizeof(size_t))
        cdef const uint8_t* p = &data[0] if n else NULL
        if out == NULL:
            raise MemoryError()
        try:
            mv = memoryview(data)
            if n <= window:
                with nogil:
                    count = self._cuts(p, n, True, out, cap, &consumed)
                if count <= 1:
                    return _digest(mv), b""
                blob = bytearray(count * CHUNK_ENTRY)
                _append_chunks(blob, 0, mv, out, count, 0)
                return _digest(mv), bytes(blob)
            hasher = _hasher()
            blob = bytearray()
            hashed = 0
            while pos < n:
                end = pos + window
                eof = end >= n
                if eof:
                    end = n
                # The file hash goes first: it streams the window into the cache at memory
                # speed, so the cut-point scan after it runs at in-cache speed (measured
                # here: 2.0 GB/s from DRAM, 3.2 GB/s in cache).
                hasher.update(mv[hashed:end])
                hashed = end
                with nogil:
                    count = self._cuts(p + pos, end - pos, eof, out, cap, &consumed)
                window_mv = mv[pos:end]
                blob.extend(bytes(count * CHUNK_ENTRY))
                _append_chunks(blob, nchunks * CHUNK_ENTRY, window_mv, out, count, 0)
                nchunks += count
                pos += consumed
            return hasher.digest(), bytes(blob)
        finally:
            free(out)

    def hash_files(self, paths, size_t bufsize=1 << 20):
        """Digest a batch of files: one call for many small files.

        Returns a list of (size, file digest, chunk list), one per path.  Reads with read(2)
        into one reusable buffer of ``bufsize`` bytes (at least 2 * max_size) with the GIL
        released; a file larger than the buffer streams through it.  Raises OSError naming
        the path on the first file that cannot be read.
        """
        if bufsize < 2 * self.max_size:
            bufsize = 2 * self.max_size
        cdef size_t cap = bufsize // self.min_size + 2
        cdef uint8_t* buf = <uint8_t*>malloc(bufsize)
        cdef size_t* out = <size_t*>malloc(cap * sizeof(size_t))
        cdef int fd
        cdef size_t filled, count, consumed, total, nchunks
        cdef ssize_t got
        cdef int err
        cdef bint eof
        cdef bytes bpath
        cdef const char* cpath
        if buf == NULL or out == NULL:
            free(buf)
            free(out)
            raise MemoryError()
        results = []
        try:
            mv = memoryview(<uint8_t[:bufsize]>buf)
            for path in paths:
                bpath = os.fsencode(path)
                cpath = bpath
                with nogil:
                    fd = c_open(cpath, O_RDONLY | O_CLOEXEC)
                    err = errno
                if fd < 0:
                    raise OSError(err, os.strerror(err), os.fsdecode(path))
                try:
                    filled = 0
                    total = 0
                    nchunks = 0
                    hasher = None
                    blob = bytearray()
                    while True:
                        # Fill the buffer (or reach EOF) without the GIL.
                        eof = False
                        err = 0
                        with nogil:
                            while filled < bufsize:
                                got = c_read(fd, buf + filled, bufsize - filled)
                                if got < 0:
                                    if errno == EINTR:
                                        continue
                                    err = errno
                                    break
                                if got == 0:
                                    eof = True
                                    break
                                filled += got
                            if not err:
                                count = self._cuts(buf, filled, eof, out, cap, &consumed)
                        if err:
                            raise OSError(err, os.strerror(err), os.fsdecode(path))
                        if eof and total == 0:
                            # The whole file sits in the buffer: one-shot digest.
                            if count > 1:
                                blob = bytearray(count * CHUNK_ENTRY)
                                _append_chunks(blob, 0, mv, out, count, 0)
                            results.append((filled, _digest(mv[:filled]), bytes(blob)))
                            break
                        if hasher is None:
                            hasher = _hasher()
                        hasher.update(mv[:consumed])
                        blob.extend(bytes(count * CHUNK_ENTRY))
                        _append_chunks(blob, nchunks * CHUNK_ENTRY, mv, out, count, 0)
                        nchunks += count
                        total += consumed
                        if eof:
                            if nchunks == 1:
                                blob = bytearray()
                            results.append((total, hasher.digest(), bytes(blob)))
                            break
                        memmove(buf, buf + consumed, filled - consumed)
                        filled -= consumed
                finally:
                    c_close(fd)
            return results
        finally:
            mv = None
            free(buf)
            free(out)


cdef inline size_t _scan(const uint64_t* g, const uint64_t* gl, const uint8_t* p, size_t i,
                         size_t end, uint64_t mask, uint64_t* state, bint* found) noexcept nogil:
    """Roll the gear hash over p[i:end]; returns the cut (one past the first byte after which
    hash & mask == 0, with *found set) or end when there is none, the hash carried in *state.

    Two bytes per step, FastCDC-2020 style: gl[x] == g[x] << 1 and mask never has bit 63, so
    testing ((h << 2) + gl[a]) against mask << 1 is exactly testing (h << 1) + g[a] against
    mask: the same cut points as one byte per step, with one shift per two bytes.
    """
    cdef uint64_t h = state[0]
    cdef uint64_t mask_ls = mask << 1
    while i + 2 <= end:
        h = (h << 2) + gl[p[i]]
        if not (h & mask_ls):
            found[0] = True
            return i + 1
        h += g[p[i + 1]]
        if not (h & mask):
            found[0] = True
            return i + 2
        i += 2
    if i < end:
        h = (h << 1) + g[p[i]]
        i += 1
        if not (h & mask):
            found[0] = True
            return i
    state[0] = h
    return end


cdef inline uint64_t _mask_bits(int k) noexcept nogil:
    """k one-bits ending at bit 62 (bit 63 stays clear, see _scan); high bits see the whole
    64-byte window of the rolling hash."""
    return ((<uint64_t>1 << k) - 1) << (63 - k)


cdef void _append_chunks(bytearray blob, size_t at, object mv, const size_t* ends, size_t count,
                         size_t base) except *:
    """Write count 20-byte chunk entries (digest + BE uint32 length) into blob at offset at."""
    cdef size_t i
    cdef size_t start = base
    cdef size_t end, length
    cdef uint8_t* dst = <uint8_t*>(<char*>blob)
    cdef const uint8_t* d
    cdef bytes dg
    for i in range(count):
        end = ends[i]
        length = end - start
        dg = _digest(mv[start:end])
        d = <const uint8_t*>(<char*>dg)
        memcpy(dst + at, d, 16)
        dst[at + 16] = (length >> 24) & 0xFF
        dst[at + 17] = (length >> 16) & 0xFF
        dst[at + 18] = (length >> 8) & 0xFF
        dst[at + 19] = length & 0xFF
        at += CHUNK_ENTRY
        start = end
