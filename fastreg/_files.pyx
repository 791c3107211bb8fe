# cython: language_level=3
"""Batched file operations for the add, check-out and download pipelines, each a single GIL-free
pass over many files: stat, hard-link with an inode check, write-then-rename from slices of one
buffer, and copy-and-hash (the XXH3-128 of the very bytes written, no cut-point scan: that is
_hash.pyx's job). Mechanism only: which files, modes and names is decided by the callers
(repo/cache.py, repo/build.py, transfer/fetch.py). Results are one errno (or record) per file,
never an exception half-way, so a caller can report every file that failed; copy_files raises
on the first failure, as a read of the batch would."""

from libc.errno cimport ENOENT, ENOMEM, ENOTDIR, ESTALE, errno
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc, qsort, realloc
from libc.string cimport memcpy, strcmp, strdup, strlen, strstr
from posix.fcntl cimport O_CREAT, O_EXCL, O_WRONLY, open as c_open
from posix.stat cimport chmod, struct_stat
from posix.unistd cimport close as c_close, link, unlink

from posix.fcntl cimport O_RDONLY

from fastreg._evp cimport SHA256_SIZE, TAG_CHUNK, Evp, evp_load, sha256_ctx, sha256_ctx_free, sha256_tagged
from fastreg._posix cimport (
    O_CLOEXEC,
    Stat,
    alloc_array,
    fstat_into,
    lstat_into,
    no_stat,
    path_array,
    read_into,
    read_whole,
    stat_into,
    write_all,
)

import hashlib
import os

import xxhash

_digest = xxhash.xxh3_128_digest
_hasher = xxhash.xxh3_128


# MD5 and SHA-256 from OpenSSL's libcrypto (_evp.pxd). copy_files uses them to give DVC's md5 and
# format 2's digest of each file from the very buffer it copied, without the GIL; where libcrypto
# cannot be found, hashlib computes the same digests from there.
cdef Evp _evp
evp_load(&_evp)


def native_md5():
    """Whether copy_files' md5s come from libcrypto without the GIL (else from hashlib)."""
    return _evp.md5 != NULL


def stat_files(paths):
    """stat() (following symlinks) of many paths in one GIL-free pass: one
    (inode, size, mtime_ns, mode) per path, or None where the path does not exist."""
    cdef size_t n = len(paths)
    cdef size_t k
    cdef Stat* sts = NULL
    cdef int* errs = NULL
    cdef const char** cpaths = NULL
    keep = [os.fsencode(p) for p in paths]
    try:
        sts = <Stat*>alloc_array(n, sizeof(Stat))
        errs = <int*>alloc_array(n, sizeof(int))
        cpaths = path_array(keep)
        with nogil:
            for k in range(n):
                errs[k] = 0 if stat_into(cpaths[k], &sts[k]) == 0 else errno
        out = []
        for k in range(n):
            if errs[k] == ENOENT or errs[k] == ENOTDIR:
                out.append(None)
            elif errs[k]:
                raise OSError(errs[k], os.strerror(errs[k]), os.fsdecode(paths[k]))
            else:
                out.append((sts[k].ino, sts[k].size, sts[k].mtime_ns, sts[k].mode))
        return out
    finally:
        free(sts)
        free(errs)
        free(cpaths)


def link_files(srcs, dsts, keys, unsigned int mode=0o444):
    """Hard-link many files in one GIL-free pass: for each i, link(srcs[i], dsts[i]); when the
    link is made, lstat(dsts[i]) must still show keys[i] = (inode, size, mtime_ns) (the file as
    it was hashed), else the new link is removed and ESTALE reported; then chmod(dsts[i], mode).
    Returns one errno per file, 0 for success (EEXIST: dsts[i] existed, nothing was done)."""
    cdef size_t n = len(srcs)
    cdef size_t k
    if <size_t>len(dsts) != n or <size_t>len(keys) != n:
        raise ValueError("srcs, dsts and keys must have the same length")
    cdef const char** csrc = NULL
    cdef const char** cdst = NULL
    cdef Stat* want = NULL
    cdef int* errs = NULL
    cdef Stat got
    keep_s = [os.fsencode(p) for p in srcs]
    keep_d = [os.fsencode(p) for p in dsts]
    try:
        csrc = path_array(keep_s)
        cdst = path_array(keep_d)
        want = <Stat*>alloc_array(n, sizeof(Stat))
        errs = <int*>alloc_array(n, sizeof(int))
        for k in range(n):
            want[k].ino, want[k].size, want[k].mtime_ns = keys[k]
        with nogil:
            for k in range(n):
                errs[k] = 0
                if link(csrc[k], cdst[k]) != 0:
                    errs[k] = errno
                    continue
                if lstat_into(cdst[k], &got) != 0:
                    errs[k] = errno
                elif got.ino != want[k].ino or got.size != want[k].size or got.mtime_ns != want[k].mtime_ns:
                    unlink(cdst[k])
                    errs[k] = ESTALE
                elif chmod(cdst[k], mode) != 0:
                    errs[k] = errno
        return [errs[k] for k in range(n)]
    finally:
        free(csrc)
        free(cdst)
        free(want)
        free(errs)


cdef extern from "stdio.h" nogil:
    int c_rename "rename"(const char* old, const char* new)


def write_files(const uint8_t[::1] data, offsets, lengths, tmps, finals, unsigned int mode=0o444):
    """Write many new files from slices of one buffer in one GIL-free pass: for each i, unless
    finals[i] exists already, data[offsets[i]:offsets[i]+lengths[i]] goes to a new file tmps[i]
    (O_EXCL), which is then renamed to finals[i] (so no final name ever holds a partial file).
    The caller has verified the bytes. Returns one errno per file: 0 written, -1 skipped because
    finals[i] existed; on an error the temp file is removed."""
    cdef size_t n = len(offsets)
    cdef size_t k
    cdef size_t size = data.shape[0]
    if <size_t>len(lengths) != n or <size_t>len(tmps) != n or <size_t>len(finals) != n:
        raise ValueError("offsets, lengths, tmps and finals must have the same length")
    cdef const char** ctmp = NULL
    cdef const char** cfin = NULL
    cdef size_t* off = NULL
    cdef size_t* ln = NULL
    cdef int* errs = NULL
    cdef const uint8_t* base = &data[0] if size else NULL
    cdef int fd, err
    cdef Stat st
    try:
        off = <size_t*>alloc_array(n, sizeof(size_t))
        ln = <size_t*>alloc_array(n, sizeof(size_t))
        errs = <int*>alloc_array(n, sizeof(int))
        keep_t = [os.fsencode(p) for p in tmps]
        keep_f = [os.fsencode(p) for p in finals]
        ctmp = path_array(keep_t)
        cfin = path_array(keep_f)
        for k in range(n):
            off[k] = offsets[k]
            ln[k] = lengths[k]
            if off[k] > size or ln[k] > size - off[k]:
                raise ValueError("a slice lies outside the buffer")
        with nogil:
            for k in range(n):
                errs[k] = 0
                if lstat_into(cfin[k], &st) == 0:
                    errs[k] = -1
                    continue
                fd = c_open(ctmp[k], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
                if fd < 0:
                    errs[k] = errno
                    continue
                err = write_all(fd, base + off[k], ln[k])
                if c_close(fd) != 0 and err == 0:
                    err = errno
                if err == 0 and c_rename(ctmp[k], cfin[k]) != 0:
                    err = errno
                if err != 0:
                    unlink(ctmp[k])
                    errs[k] = err
        return [errs[k] for k in range(n)]
    finally:
        free(ctmp)
        free(cfin)
        free(off)
        free(ln)
        free(errs)


cdef struct _Copy:
    size_t offset
    size_t length
    int err
    int stage  # 1: reading the source, 2: writing the copy
    bint large
    bint md5_done
    bint sha_done
    unsigned char md5[16]
    unsigned char sha[SHA256_SIZE]
    Stat st


cdef size_t _copy_group(const char** srcs, const char** dsts, const unsigned int* modes, size_t n,
                        uint8_t* buf, size_t bufsize, size_t large, _Copy* slots, size_t maxg,
                        bint want_md5, void* sha_ctx, size_t sha_limit) noexcept nogil:
    """Read files into buf back to back and write each copy from there (want_md5: and take each
    one's md5 from there, when libcrypto is at hand; sha_ctx: and the format-2 digest of each
    file up to sha_limit bytes); returns how many slots it filled. Stops at
    a file that does not fit (unless it is the first), at a large file (a slot marked large, for
    the caller to stream), or at the first error (a slot with err set)."""
    cdef size_t k = 0
    cdef size_t pos = 0
    cdef size_t filled
    cdef unsigned int md_len
    cdef int fd, out_fd, e
    cdef _Copy* c
    while k < n and k < maxg:
        c = &slots[k]
        c.err = 0
        c.stage = 1
        c.large = False
        c.md5_done = False
        c.sha_done = False
        fd = c_open(srcs[k], O_RDONLY | O_CLOEXEC)
        if fd < 0:
            c.err = errno
            return k + 1
        if fstat_into(fd, &c.st) != 0:
            c.err = errno
            c_close(fd)
            return k + 1
        if <size_t>c.st.size >= large:
            c_close(fd)
            if k:
                return k  # streamed at the start of the next call
            c.large = True
            return 1
        if pos + <size_t>c.st.size + 1 > bufsize:
            c_close(fd)
            return k
        e = read_whole(fd, buf, pos, &c.st, &filled)
        c_close(fd)
        if e:
            c.err = e
            return k + 1
        c.stage = 2
        out_fd = c_open(dsts[k], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, modes[k])
        if out_fd < 0:
            c.err = errno
            return k + 1
        e = write_all(out_fd, buf + pos, filled - pos)
        if c_close(out_fd) != 0 and e == 0:
            e = errno
        if e:
            c.err = e
            return k + 1
        c.offset = pos
        c.length = filled - pos
        if want_md5 and _evp.md5 != NULL:
            c.md5_done = _evp.digest(buf + pos, c.length, c.md5, &md_len, _evp.md5, NULL) == 1
        if sha_ctx != NULL and c.length <= sha_limit:
            sha256_tagged(&_evp, sha_ctx, TAG_CHUNK, buf + pos, c.length, c.sha)
            c.sha_done = True
        pos = filled
        k += 1
    return k


cdef void _copy_failed(int err, int stage, object src, object dst) except *:
    if err == ESTALE:
        raise OSError(ESTALE, "changed while it was being read", os.fsdecode(src))
    raise OSError(err, os.strerror(err), os.fsdecode(dst if stage == 2 else src))


cdef tuple _copy_large(const char* src, const char* dst, unsigned int mode, uint8_t* buf, size_t window,
                       object pysrc, object pydst, bint want_md5, bint xxh3):
    """One large file through a window of the buffer: read, write, hash, a window at a time
    (xxh3: its format-1 digest; format 2 digests a large file from its chunks, so b"")."""
    cdef int fd, out_fd = -1
    cdef int err = 0
    cdef int stage = 1
    cdef size_t filled = 0
    cdef size_t total = 0
    cdef bint eof = False
    cdef Stat before, after
    no_stat(&before)  # gcc cannot tell it is set before it is read
    no_stat(&after)  # gcc cannot tell it is set before it is read
    with nogil:
        fd = c_open(src, O_RDONLY | O_CLOEXEC)
        if fd < 0:
            err = errno
        elif fstat_into(fd, &before) != 0:
            err = errno
        else:
            out_fd = c_open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            if out_fd < 0:
                err = errno
                stage = 2
    if err:
        if fd >= 0:
            c_close(fd)
        _copy_failed(err, stage, pysrc, pydst)
    hasher = _hasher() if xxh3 else None
    md5 = hashlib.md5() if want_md5 else None
    mv = memoryview(<uint8_t[:window]>buf)
    try:
        while not eof:
            with nogil:
                stage = 1
                err = read_into(fd, buf, 0, window, &filled, &eof)
                if not err:
                    stage = 2
                    err = write_all(out_fd, buf, filled)
            if err:
                break
            if hasher is not None:
                hasher.update(mv[:filled])
            if md5 is not None:
                md5.update(mv[:filled])
            total += filled
    finally:
        with nogil:
            if c_close(out_fd) != 0 and not err:
                err = errno
                stage = 2
            if fstat_into(fd, &after) != 0 and not err:
                err = errno
                stage = 1
            c_close(fd)
    if err:
        _copy_failed(err, stage, pysrc, pydst)
    if total != <size_t>before.size or after.size != before.size or after.mtime_ns != before.mtime_ns:
        _copy_failed(ESTALE, 1, pysrc, pydst)
    digest = hasher.digest() if hasher is not None else b""
    if md5 is not None:
        return (total, digest, before.ino, before.mtime_ns, before.mode, md5.digest())
    return (total, digest, before.ino, before.mtime_ns, before.mode)


def copy_files(srcs, dsts, modes, size_t bufsize=16 << 20, bint md5=False, int digest_size=16,
               size_t whole_limit=0):
    """Copy many files to new files (created exclusively, mode modes[i] less the umask), each
    hashed as it is copied: the XXH3-128 is of the very bytes written, from the same buffer, so
    a copy cannot differ from its digest. Small files are read back to back into one buffer and
    written in one GIL-free pass, their digests computed after it; a file above a quarter of the
    buffer streams through 1 MiB windows. A source that changes while it is read (its size or
    mtime) is ESTALE. Returns (size, digest, ino, mtime_ns, mode) per file, from fstat() of the
    very file read; raises OSError naming the file (the copy's name for a failed write) on the
    first failure, leaving the copies made so far for the caller. md5: each tuple also ends with
    the MD5 of the same bytes (what DVC records), from the same buffer: one read of every byte
    gives both digests. digest_size 16: the digest is format 1's (XXH3-128 of the whole file);
    32: format 2's SHA-256(0x00 || bytes), computed without the GIL, for files of at most
    whole_limit bytes (one chunk); a larger file's digest comes from its chunks, so it is b""
    here."""
    cdef size_t n = len(srcs)
    if <size_t>len(dsts) != n or <size_t>len(modes) != n:
        raise ValueError("srcs, dsts and modes must have the same length")
    if bufsize < 4 << 20:
        bufsize = 4 << 20
    cdef size_t large = bufsize // 4
    cdef size_t window = 1 << 20
    cdef size_t maxg = 4096
    cdef uint8_t* buf = NULL
    cdef _Copy* slots = NULL
    cdef const char** csrc = NULL
    cdef const char** cdst = NULL
    cdef unsigned int* cmodes = NULL
    cdef size_t i = 0
    cdef size_t k, g
    cdef bint sha = digest_size == SHA256_SIZE
    cdef void* ctx = NULL
    cdef unsigned char dg[SHA256_SIZE]
    if digest_size not in (16, SHA256_SIZE):
        raise ValueError("digest_size is 16 (format 1) or 32 (format 2)")
    mv = None
    try:
        if sha:
            ctx = sha256_ctx(&_evp)
        buf = <uint8_t*>alloc_array(bufsize, 1)
        slots = <_Copy*>alloc_array(maxg, sizeof(_Copy))
        keep_s = [os.fsencode(p) for p in srcs]
        keep_d = [os.fsencode(p) for p in dsts]
        csrc = path_array(keep_s)
        cdst = path_array(keep_d)
        cmodes = <unsigned int*>alloc_array(n, sizeof(unsigned int))
        for k in range(n):
            cmodes[k] = modes[k]
        out = []
        mv = memoryview(<uint8_t[:bufsize]>buf)
        while i < n:
            with nogil:
                g = _copy_group(csrc + i, cdst + i, cmodes + i, n - i, buf, bufsize, large, slots, maxg, md5,
                                ctx if sha else NULL, whole_limit)
            for k in range(g):
                if slots[k].err:
                    _copy_failed(slots[k].err, slots[k].stage, srcs[i + k], dsts[i + k])
                if slots[k].large:
                    out.append(_copy_large(csrc[i + k], cdst[i + k], cmodes[i + k], buf, window,
                                           srcs[i + k], dsts[i + k], md5, not sha))
                    continue
                view = mv[slots[k].offset:slots[k].offset + slots[k].length]
                if not sha:
                    digest = _digest(view)
                elif slots[k].sha_done:
                    digest = <bytes>slots[k].sha[:SHA256_SIZE]
                elif slots[k].length <= whole_limit:  # no libcrypto: hashlib's SHA-256
                    with nogil:
                        sha256_tagged(&_evp, NULL, TAG_CHUNK, buf + slots[k].offset, slots[k].length, dg)
                    digest = <bytes>dg[:SHA256_SIZE]
                else:
                    digest = b""
                if not md5:
                    out.append((slots[k].length, digest, slots[k].st.ino, slots[k].st.mtime_ns,
                                slots[k].st.mode))
                    continue
                sum5 = (<bytes>slots[k].md5[:16]) if slots[k].md5_done else hashlib.md5(view).digest()
                out.append((slots[k].length, digest, slots[k].st.ino, slots[k].st.mtime_ns,
                            slots[k].st.mode, sum5))
            i += g
        return out
    finally:
        mv = None
        free(buf)
        free(slots)
        free(csrc)
        free(cdst)
        free(cmodes)
        sha256_ctx_free(&_evp, ctx)


cdef extern from "dirent.h" nogil:
    ctypedef struct DIR:
        pass
    struct dirent:
        unsigned char d_type
        char d_name[256]
    DIR* opendir(const char* name)
    dirent* readdir(DIR* d)
    int closedir(DIR* d)
    int dirfd(DIR* d)
    enum:
        DT_DIR
        DT_UNKNOWN

cdef extern from "fcntl.h" nogil:
    enum:
        AT_SYMLINK_NOFOLLOW

cdef extern from "sys/stat.h" nogil:
    int fstatat(int fd, const char* path, struct_stat* buf, int flags)
    bint S_ISDIR(unsigned int mode)
    bint S_ISREG(unsigned int mode)


cdef struct _Name:
    char* name
    size_t length
    int is_dir


cdef int _cmp_names(const void* a, const void* b) noexcept nogil:
    return strcmp((<const _Name*>a).name, (<const _Name*>b).name)


cdef struct _Buf:
    uint8_t* data
    size_t used
    size_t cap


cdef int _put(_Buf* b, const void* p, size_t n) noexcept nogil:
    cdef size_t cap
    cdef uint8_t* grown
    if b.used + n > b.cap:
        cap = b.cap * 2 if b.cap else 4096
        while cap < b.used + n:
            cap *= 2
        grown = <uint8_t*>realloc(b.data, cap)
        if grown == NULL:
            return -1
        b.data, b.cap = grown, cap
    memcpy(b.data + b.used, p, n)
    b.used += n
    return 0


cdef int _list(const char* path, const char* mark, _Name** out, size_t* count, _Buf* listing,
               int64_t* files, int64_t* max_mtime, int64_t* odd) noexcept nogil:
    """Read, sort and stat one folder (see list_folder); returns 0 or an errno."""
    cdef DIR* d = opendir(path)
    cdef dirent* e
    cdef struct_stat st
    cdef _Name* names = NULL
    cdef _Name* grown
    cdef size_t n = 0, cap = 0, k
    cdef int fd, err = 0
    cdef int64_t rec[4]
    cdef char tag
    if d == NULL:
        return errno
    fd = dirfd(d)
    while True:
        e = readdir(d)
        if e == NULL:  # the end (a read error on an open folder is not told apart: EBADF only)
            break
        if e.d_name[0] == b'.' and (e.d_name[1] == 0 or (e.d_name[1] == b'.' and e.d_name[2] == 0)):
            continue
        if n == cap:
            cap = cap * 2 if cap else 256
            grown = <_Name*>realloc(names, cap * sizeof(_Name))
            if grown == NULL:
                err = ENOMEM
                break
            names = grown
        names[n].length = strlen(e.d_name)
        names[n].name = strdup(e.d_name)
        if names[n].name == NULL:
            err = ENOMEM
            break
        names[n].is_dir = e.d_type == DT_DIR
        if e.d_type == DT_UNKNOWN and fstatat(fd, e.d_name, &st, AT_SYMLINK_NOFOLLOW) == 0:
            names[n].is_dir = S_ISDIR(st.st_mode)
        n += 1
    out[0], count[0] = names, n
    if err == 0:
        qsort(names, n, sizeof(_Name), _cmp_names)
        for k in range(n):
            if names[k].is_dir:
                tag = b'D'
            elif fstatat(fd, names[k].name, &st, 0) != 0 or not S_ISREG(st.st_mode):
                tag = b'X'  # a link to a folder, a broken link, a socket...: the slow path says what
                odd[0] += 1
            else:
                tag = b'F'
                if names[k].name[0] == b'.' and strstr(names[k].name, mark) != NULL:
                    odd[0] += 1  # a workspace temp file
                rec[0] = st.st_ino
                rec[1] = st.st_size
                rec[2] = <int64_t>st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec
                rec[3] = st.st_mode
                if rec[2] > max_mtime[0]:
                    max_mtime[0] = rec[2]
                files[0] += 1
            if (_put(listing, &tag, 1) or _put(listing, names[k].name, names[k].length + 1)
                    or (tag == b'F' and _put(listing, rec, sizeof(rec)))):
                err = ENOMEM
                break
    closedir(d)
    return err


def list_folder(path, bytes tmp_mark):
    """One folder in one GIL-free pass: readdir, names sorted bytewise (the code-point order of
    their UTF-8), and stat (following links) of every entry that is not a folder. Returns
    (listing, files, max_mtime_ns, subfolders, odd): `listing` is a byte string that changes
    whenever a name, inode, size, mtime or mode of a file changes, or a name comes or goes (its
    digest is the folder's fingerprint in the stat cache); `subfolders` are the names of the
    folders in it (not links to folders), sorted; `odd` counts entries the caller must look at
    itself (links to folders, broken links, special files, workspace temp files)."""
    cdef bytes cpath = os.fsencode(path)
    cdef const char* cp = cpath
    cdef const char* cm = tmp_mark
    cdef _Name* names = NULL
    cdef size_t n = 0, k
    cdef _Buf listing
    cdef int64_t files = 0, max_mtime = 0, odd = 0
    cdef int err
    listing.data, listing.used, listing.cap = NULL, 0, 0
    try:
        with nogil:
            err = _list(cp, cm, &names, &n, &listing, &files, &max_mtime, &odd)
        if err:
            raise OSError(err, os.strerror(err), os.fsdecode(path))
        subs = [os.fsdecode(names[k].name[:names[k].length]) for k in range(n) if names[k].is_dir]
        return (listing.data[:listing.used] if listing.used else b""), files, max_mtime, subs, odd
    finally:
        for k in range(n):
            free(names[k].name)
        free(names)
        free(listing.data)
