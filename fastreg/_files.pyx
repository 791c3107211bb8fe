# cython: language_level=3
"""Batched file operations for the add, check-out and download pipelines, each a single GIL-free
pass over many files: stat, hard-link with an inode check, and write-then-rename from slices of
one buffer. Mechanism only: which files, modes and names is decided by the callers
(repo/cache.py, repo/build.py, transfer/fetch.py). Results are one errno (or stat record) per
file, never an exception half-way, so a caller can report every file that failed."""

from libc.errno cimport ENOENT, ENOTDIR, ESTALE, errno
from libc.stdint cimport uint8_t
from libc.stdlib cimport free, malloc
from posix.fcntl cimport O_CREAT, O_EXCL, O_WRONLY, open as c_open
from posix.stat cimport chmod
from posix.unistd cimport close as c_close, link, unlink

from fastreg._posix cimport O_CLOEXEC, Stat, lstat_into, stat_into, write_all

import os


def stat_files(paths):
    """stat() (following symlinks) of many paths in one GIL-free pass: one
    (inode, size, mtime_ns, mode) per path, or None where the path does not exist."""
    cdef size_t n = len(paths)
    cdef size_t k
    cdef Stat* sts = <Stat*>malloc((n + 1) * sizeof(Stat))
    cdef int* errs = <int*>malloc((n + 1) * sizeof(int))
    cdef const char** cpaths = <const char**>malloc((n + 1) * sizeof(char*))
    if sts == NULL or errs == NULL or cpaths == NULL:
        free(sts); free(errs); free(cpaths)
        raise MemoryError()
    keep = [os.fsencode(p) for p in paths]
    cdef bytes item
    for k in range(n):
        item = keep[k]
        cpaths[k] = item
    try:
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
    if len(dsts) != n or len(keys) != n:
        raise ValueError("srcs, dsts and keys must have the same length")
    cdef const char** csrc = <const char**>malloc((n + 1) * sizeof(char*))
    cdef const char** cdst = <const char**>malloc((n + 1) * sizeof(char*))
    cdef Stat* want = <Stat*>malloc((n + 1) * sizeof(Stat))
    cdef int* errs = <int*>malloc((n + 1) * sizeof(int))
    cdef Stat got
    cdef bytes item
    if csrc == NULL or cdst == NULL or want == NULL or errs == NULL:
        free(csrc); free(cdst); free(want); free(errs)
        raise MemoryError()
    keep_s = [os.fsencode(p) for p in srcs]
    keep_d = [os.fsencode(p) for p in dsts]
    for k in range(n):
        item = keep_s[k]
        csrc[k] = item
        item = keep_d[k]
        cdst[k] = item
        want[k].ino, want[k].size, want[k].mtime_ns = keys[k]
    try:
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
    if len(lengths) != n or len(tmps) != n or len(finals) != n:
        raise ValueError("offsets, lengths, tmps and finals must have the same length")
    cdef const char** ctmp = <const char**>malloc((n + 1) * sizeof(char*))
    cdef const char** cfin = <const char**>malloc((n + 1) * sizeof(char*))
    cdef size_t* off = <size_t*>malloc((n + 1) * sizeof(size_t))
    cdef size_t* ln = <size_t*>malloc((n + 1) * sizeof(size_t))
    cdef int* errs = <int*>malloc((n + 1) * sizeof(int))
    cdef const uint8_t* base = &data[0] if size else NULL
    cdef int fd, err
    cdef Stat st
    cdef bytes item
    if ctmp == NULL or cfin == NULL or off == NULL or ln == NULL or errs == NULL:
        free(ctmp); free(cfin); free(off); free(ln); free(errs)
        raise MemoryError()
    try:
        keep_t = [os.fsencode(p) for p in tmps]
        keep_f = [os.fsencode(p) for p in finals]
        for k in range(n):
            off[k] = offsets[k]
            ln[k] = lengths[k]
            if off[k] > size or ln[k] > size - off[k]:
                raise ValueError("a slice lies outside the buffer")
            item = keep_t[k]
            ctmp[k] = item
            item = keep_f[k]
            cfin[k] = item
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
