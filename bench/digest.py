"""Candidate content digests for a collision-resistant format (issue "A digest no one can forge"),
measured here from memory on one core, against today's XXH3-128: what chunk + hash would cost with
each, and with which definition of a file's digest; and the native pass of each format as built
(format 1: XXH3-128; format 2: SHA-256 through libcrypto, file digest of the chunk list).

Every figure cuts the same buffer with fastreg's native FastCDC (its cut points do not change with
the digest) and hashes every chunk; "+ file" also hashes the file: either every byte again (a
digest of the whole bytes, what XXH3 does today, so two passes) or only the chunk list (a digest
of the chunks' digests and lengths, one pass over the bytes). The hashes run through hashlib,
i.e. OpenSSL's libcrypto (SHA-NI / ARMv8 SHA extensions where the CPU has them), one call per
chunk: a native pass would save the per-call overhead (about 1 µs for a 64 KiB average chunk).

    python bench/digest.py [--mb 512]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xxhash

from bench.gen import randbytes
from fastreg.chunking import default_chunker, iter_chunks


def best_of(n: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=512)
    args = ap.parse_args()
    buf = randbytes(7, args.mb << 20)
    ch = default_chunker()
    file_dg, encoded = ch.digest_buffer(buf)
    cuts = [(0, 0)]
    pos = 0
    for _, length in iter_chunks(encoded, file_dg, len(buf)):
        cuts.append((pos, pos + length))
        pos += length
    cuts = cuts[1:]
    view = memoryview(buf)
    gb = len(buf) / 1e9

    def per_chunk(new: Callable[[memoryview], object]) -> Callable[[], object]:
        return lambda: [new(view[a:b]) for a, b in cuts]

    def list_hash(new: Callable[..., object]) -> Callable[[], object]:
        def run() -> None:
            out = bytearray()
            for a, b in cuts:
                out += new(view[a:b]).digest()  # type: ignore[attr-defined]
                out += (b - a).to_bytes(4, "big")
            new(out).digest()  # type: ignore[attr-defined]
        return run

    rows: list[tuple[str, float]] = []
    t_points = best_of(3, lambda: ch.cut_points(buf))
    t_cut = best_of(3, lambda: ch.digest_buffer(buf))  # today's native pass: cut points + XXH3 chunks + file
    rows.append(("FastCDC cut points alone (native)", gb / t_points))
    rows.append(("format 1, XXH3-128 (native: cut points, chunk digests, file digest)", gb / t_cut))
    sha = default_chunker(32)
    rows.append(("**format 2, SHA-256 (native: cut points, chunk digests, file digest of the chunk list)**",
                 gb / best_of(3, lambda: sha.digest_buffer(buf))))
    md5_whole = best_of(2, lambda: hashlib.md5(view).digest())
    rows.append(("DVC's md5 of the whole file (hashlib, no chunking)", gb / md5_whole))
    for name, new in (("SHA-256", hashlib.sha256), ("BLAKE2b-256", lambda d: hashlib.blake2b(d, digest_size=32)),
                      ("MD5 (DVC's, not collision-resistant)", hashlib.md5)):
        chunks_only = best_of(3, per_chunk(new))
        whole = best_of(2, lambda new=new: new(view).digest())  # type: ignore[misc]
        merkle = best_of(3, list_hash(new))
        rows.append((f"{name}: chunk digests only (hash pass alone)", gb / chunks_only))
        rows.append((f"{name}: + file digest of the whole bytes (two passes)", gb / (chunks_only + whole)))
        rows.append((f"{name}: + file digest of the chunk list (one pass)", gb / merkle))
        rows.append((f"{name}: estimated native chunk + hash, file digest of the chunk list (cut points + one "
                     "pass)", gb / (t_points + merkle)))
    rows.append(("xxh3_128 per chunk through Python (for scale)", gb / best_of(3, per_chunk(xxhash.xxh3_128))))
    info = Path("/proc/cpuinfo").read_text() if os.path.exists("/proc/cpuinfo") else ""
    cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    sha_ni = " sha_ni" in info
    print(f"## Digest candidates: chunk + hash from memory, one core ({args.mb} MiB random buffer; {cpu}; "
          f"SHA extensions: {'yes' if sha_ni else 'no'})\n")
    print("The hash rows are hashlib (OpenSSL) per chunk of fastreg's own cut points, without the cut-point "
          "pass; the \"estimated native\" rows add the measured cut-point time (one loop would do both).\n")
    print("| what | GB/s |\n|---|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.2f} |")
    print("\nA file digest of the whole bytes costs a second hash pass over every byte; one of the chunk list "
          "(digests and lengths, a few bytes per chunk) costs nearly nothing.")


if __name__ == "__main__":
    main()
