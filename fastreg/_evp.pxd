# cython: language_level=3
# SHA-256 and MD5 from OpenSSL's libcrypto: the copy this interpreter's hashlib already loaded,
# found with dlsym through _hashlib's own handle (no header, no link flag, no second OpenSSL;
# SHA-NI on x86, the SHA extensions on ARMv8). Inline, so each native module has its own table.
# Where libcrypto cannot be found (a CPython without _hashlib), hashlib computes the same digest
# with the GIL: slower, never different.
#
# Format 2 digests (docs/design.md, "Digests"): a chunk (and so a file of one chunk, a tree
# node, any stored object) is SHA-256(0x00 || bytes); a file of several chunks is
# SHA-256(0x01 || its chunk list). The tag byte keeps the two apart: no stored bytes can be
# named by a file-of-chunks digest, so a local cache keyed by file digest is never ambiguous.

from libc.string cimport memcpy

cdef extern from "dlfcn.h" nogil:
    void* dlopen(const char* filename, int flags)
    void* dlsym(void* handle, const char* symbol)
    int RTLD_NOW
    int RTLD_NOLOAD

ctypedef const void* (*md_fetch_t)(void* libctx, const char* algorithm, const char* properties) noexcept nogil
ctypedef const void* (*md_t)() noexcept nogil
ctypedef int (*one_shot_t)(const void* data, size_t count, unsigned char* md, unsigned int* size,
                           const void* md_type, void* engine) noexcept nogil
ctypedef void* (*ctx_new_t)() noexcept nogil
ctypedef void (*ctx_free_t)(void* ctx) noexcept nogil
ctypedef int (*init_t)(void* ctx, const void* md_type, void* engine) noexcept nogil
ctypedef int (*update_t)(void* ctx, const void* data, size_t count) noexcept nogil
ctypedef int (*final_t)(void* ctx, unsigned char* md, unsigned int* size) noexcept nogil

cdef enum:
    SHA256_SIZE = 32
    TAG_CHUNK = 0
    TAG_CHUNKED_FILE = 1


cdef struct Evp:
    one_shot_t digest
    ctx_new_t ctx_new
    ctx_free_t ctx_free
    init_t init
    update_t update
    final_t final
    const void* md5
    const void* sha256


cdef inline const void* _fetch_md(void* handle, const char* name, const char* legacy) noexcept:
    cdef md_fetch_t fetch = <md_fetch_t>dlsym(handle, "EVP_MD_fetch")  # OpenSSL 3: fetched once
    cdef md_t old = <md_t>dlsym(handle, legacy)
    cdef const void* md = NULL
    if fetch != NULL:
        md = fetch(NULL, name, NULL)
    if md == NULL and old != NULL:
        md = old()
    return md


cdef inline int evp_load(Evp* e):
    """Fill e from libcrypto, each algorithm checked against hashlib on a known input; leaves
    e.md5 / e.sha256 NULL for what is missing or wrong."""
    import hashlib
    import os
    e.md5 = NULL
    e.sha256 = NULL
    try:
        import _hashlib
        path = os.fsencode(_hashlib.__file__)
    except (ImportError, AttributeError, TypeError):
        return 0
    cdef void* handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD)
    if handle == NULL:
        return 0
    e.digest = <one_shot_t>dlsym(handle, "EVP_Digest")
    e.ctx_new = <ctx_new_t>dlsym(handle, "EVP_MD_CTX_new")
    e.ctx_free = <ctx_free_t>dlsym(handle, "EVP_MD_CTX_free")
    e.init = <init_t>dlsym(handle, "EVP_DigestInit_ex")
    e.update = <update_t>dlsym(handle, "EVP_DigestUpdate")
    e.final = <final_t>dlsym(handle, "EVP_DigestFinal_ex")
    if e.digest == NULL:
        return 0
    cdef unsigned char out[32]
    cdef unsigned int n = 0
    cdef const void* md = _fetch_md(handle, "MD5", "EVP_md5")
    if md != NULL and e.digest(b"abc", 3, out, &n, md, NULL) == 1 and n == 16 and \
            (<bytes>out[:16]) == hashlib.md5(b"abc").digest():
        e.md5 = md
    if e.ctx_new == NULL or e.ctx_free == NULL or e.init == NULL or e.update == NULL or e.final == NULL:
        return 0
    md = _fetch_md(handle, "SHA256", "EVP_sha256")
    if md == NULL:
        return 0
    cdef void* ctx = e.ctx_new()
    if ctx == NULL:
        return 0
    e.sha256 = md
    ok = _tagged(e, ctx, TAG_CHUNK, <const unsigned char*>b"abc", 3, out)
    e.ctx_free(ctx)
    if not ok or (<bytes>out[:32]) != hashlib.sha256(b"\x00abc").digest():
        e.sha256 = NULL
    return 0


cdef inline bint _tagged(const Evp* e, void* ctx, unsigned char tag, const unsigned char* p, size_t n,
                         unsigned char* out) noexcept nogil:
    cdef unsigned int k = 0
    return (e.init(ctx, e.sha256, NULL) == 1 and e.update(ctx, &tag, 1) == 1
            and (n == 0 or e.update(ctx, p, n) == 1) and e.final(ctx, out, &k) == 1 and k == 32)


cdef inline void _sha256_hashlib(unsigned char tag, const unsigned char* p, size_t n,
                                 unsigned char* out) noexcept with gil:
    import hashlib
    h = hashlib.sha256(bytes((tag,)))
    if n:
        h.update((<const char*>p)[:n])
    cdef bytes d = h.digest()
    memcpy(out, <const char*>d, 32)


cdef inline void sha256_tagged(const Evp* e, void* ctx, unsigned char tag, const unsigned char* p, size_t n,
                               unsigned char* out) noexcept nogil:
    """out[0:32] = SHA-256(tag || p[0:n]); ctx from sha256_ctx(), NULL where e has no SHA-256
    (then hashlib, with the GIL)."""
    if ctx == NULL or not _tagged(e, ctx, tag, p, n, out):
        _sha256_hashlib(tag, p, n, out)


cdef inline void* sha256_ctx(const Evp* e) noexcept nogil:
    """A context for sha256_tagged (free it with sha256_ctx_free), NULL where SHA-256 is hashlib's."""
    if e.sha256 == NULL:
        return NULL
    return e.ctx_new()


cdef inline void sha256_ctx_free(const Evp* e, void* ctx) noexcept nogil:
    if ctx != NULL:
        e.ctx_free(ctx)
