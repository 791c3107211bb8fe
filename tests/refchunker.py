"""A slow, obviously-correct pure-Python FastCDC: the oracle the native core must equal."""

from __future__ import annotations

M64 = (1 << 64) - 1


def gear_values(gear: bytes) -> list[int]:
    return [int.from_bytes(gear[i * 8 : i * 8 + 8], "little") for i in range(256)]


def mask_bits(k: int) -> int:
    return ((1 << k) - 1) << (63 - k)


def cut_points(
    data: bytes, min_size: int, avg_size: int, max_size: int, gear: bytes, norm_level: int = 2
) -> list[int]:
    g = gear_values(gear)
    bits = avg_size.bit_length() - 1
    mask_s, mask_l = mask_bits(bits + norm_level), mask_bits(bits - norm_level)
    out: list[int] = []
    pos = 0
    while pos < len(data):
        n = len(data) - pos
        length = n
        if n > min_size:
            n = min(n, max_size)
            normal = min(avg_size, n)
            h = 0
            length = n
            for i in range(min_size, n):
                h = ((h << 1) + g[data[pos + i]]) & M64
                if not h & (mask_s if i < normal else mask_l):
                    length = i + 1
                    break
        pos += length
        out.append(pos)
    return out
