# cython: language_level=3
# Small GIL-free POSIX helpers shared by the native modules (_hash.pyx, _files.pyx): a stat
# record and retrying read/write loops. Inline, so each module compiles its own copy.

from libc.errno cimport EINTR, ESTALE, errno
from libc.stdlib cimport malloc
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from posix.stat cimport fstat, lstat, stat, struct_stat
from posix.unistd cimport read as c_read, write as c_write


cdef extern from "fcntl.h":
    int O_CLOEXEC


cdef struct Stat:
    uint64_t ino
    int64_t size
    int64_t mtime_ns
    uint32_t mode


cdef inline int no_stat(Stat* out) noexcept nogil:
    """A failed stat leaves a zeroed record (never read, but never uninitialized either)."""
    out.ino = 0
    out.size = 0
    out.mtime_ns = 0
    out.mode = 0
    return -1


cdef inline int fill_stat(const struct_stat* st, Stat* out) noexcept nogil:
    out.ino = st.st_ino
    out.size = st.st_size
    out.mtime_ns = <int64_t>st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec
    out.mode = st.st_mode
    return 0


cdef inline int fstat_into(int fd, Stat* out) noexcept nogil:
    cdef struct_stat st
    if fstat(fd, &st) != 0:
        return no_stat(out)
    return fill_stat(&st, out)


cdef inline int stat_into(const char* path, Stat* out) noexcept nogil:
    cdef struct_stat st
    if stat(path, &st) != 0:
        return no_stat(out)
    return fill_stat(&st, out)


cdef inline int lstat_into(const char* path, Stat* out) noexcept nogil:
    cdef struct_stat st
    if lstat(path, &st) != 0:
        return no_stat(out)
    return fill_stat(&st, out)


cdef inline int read_into(int fd, uint8_t* buf, size_t start, size_t cap, size_t* filled, bint* eof) noexcept nogil:
    """Read from fd into buf[start:cap] until full or EOF; returns errno or 0."""
    cdef ssize_t got
    cdef size_t f = start
    filled[0] = start
    while f < cap:
        got = c_read(fd, buf + f, cap - f)
        if got < 0:
            if errno == EINTR:
                continue
            return errno
        if got == 0:
            eof[0] = True
            break
        f += got
    filled[0] = f
    return 0


cdef inline int write_all(int fd, const uint8_t* p, size_t n) noexcept nogil:
    cdef ssize_t put
    while n:
        put = c_write(fd, p, n)
        if put < 0:
            if errno == EINTR:
                continue
            return errno
        p += put
        n -= put
    return 0


cdef inline int read_whole(int fd, uint8_t* buf, size_t pos, const Stat* before, size_t* filled) noexcept nogil:
    """Read a file that fstat() found before.size bytes long into buf[pos:] (one byte more is
    asked for, to notice a file that grew); returns errno, ESTALE when the file changed while it
    was read (its length, size or mtime), or 0."""
    cdef bint eof = False
    cdef Stat after
    cdef int e = read_into(fd, buf, pos, pos + <size_t>before.size + 1, filled, &eof)
    if e == 0 and fstat_into(fd, &after) != 0:
        e = errno
    if e:
        return e
    if filled[0] - pos != <size_t>before.size or after.mtime_ns != before.mtime_ns or after.size != before.size:
        return ESTALE
    return 0


cdef inline void* alloc_array(size_t n, size_t size) except NULL:
    """Room for n + 1 items of `size` bytes (n = 0 still allocates), or MemoryError. free() it;
    callers start their pointers at NULL and free them all in one `finally`."""
    cdef void* p = malloc((n + 1) * size)
    if p == NULL:
        raise MemoryError()
    return p


cdef inline const char** path_array(list encoded) except NULL:
    """The C strings of `encoded` (bytes, which must outlive the array), NULL-terminated."""
    cdef size_t n = len(encoded)
    cdef const char** out = <const char**>alloc_array(n, sizeof(char*))
    cdef size_t k
    cdef bytes item
    for k in range(n):
        item = encoded[k]
        out[k] = item
    out[n] = NULL
    return out
