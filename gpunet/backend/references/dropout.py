"""Reference of the dropout mask, written against ``xp``: Philox-4x32-10 counter-based random numbers.

Philox-4x32-10 is the generator of Salmon et al. (2011), also in cuRAND.

Element ``i`` of a mask uses the 32-bit word ``(offset + i) % 4`` of the Philox block whose 64-bit counter is
``(offset + i) // 4``, under the 64-bit key ``seed``. A CUDA kernel computing the same blocks gives the same mask
bit for bit: the decision is an integer comparison, ``word < round(p * 2**32)`` drops the element.
"""
from __future__ import annotations

import numpy

_M0, _M1 = numpy.uint64(0xD2511F53), numpy.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_LOW = numpy.uint64(0xFFFFFFFF)
_SHIFT = numpy.uint64(32)


def philox4x32_10(xp, counter, key):
    """Philox-4x32-10 of counters ``(c0, c1, c2, c3)`` (uint32 arrays) under ``key = (k0, k1)`` (ints).

    Returns the four output words as uint32 arrays (Random123's known-answer vectors are the reference).
    """
    c0, c1, c2, c3 = (xp.asarray(c, dtype=numpy.uint64) for c in counter)
    k0, k1 = int(key[0]) & 0xFFFFFFFF, int(key[1]) & 0xFFFFFFFF
    for round_ in range(10):
        if round_:
            k0, k1 = (k0 + _W0) & 0xFFFFFFFF, (k1 + _W1) & 0xFFFFFFFF
        p0, p1 = _M0 * c0, _M1 * c2  # exact: 32 x 32 bits fit in 64
        c0, c1, c2, c3 = ((p1 >> _SHIFT) ^ c1 ^ numpy.uint64(k0), p1 & _LOW,
                          (p0 >> _SHIFT) ^ c3 ^ numpy.uint64(k1), p0 & _LOW)
    return tuple(c.astype(numpy.uint32) for c in (c0, c1, c2, c3))


def random_words(xp, n, seed, offset=0):
    """``n`` uint32 words of the stream (seed, offset): word ``j`` is lane ``j % 4`` of block ``j // 4``."""
    first, last = offset // 4, (offset + n + 3) // 4
    blocks = xp.arange(first, last, dtype=numpy.uint64)
    zeros = xp.zeros_like(blocks)
    words = philox4x32_10(xp, (blocks & _LOW, blocks >> _SHIFT, zeros, zeros), (seed & 0xFFFFFFFF, seed >> 32))
    stream = xp.stack(words, axis=1).reshape(-1)
    start = offset - 4 * first
    return stream[start:start + n]


def drop_threshold(p):
    """The integer threshold of drop probability ``p``: a word below it drops its element."""
    return min(int(round(p * 2.0**32)), 2**32 - 1)


def dropout_mask(xp, shape, p, seed, offset, dtype):
    """The inverted-dropout mask: 0 with probability ``p``, else 1 / (1 - p), in ``dtype``, of ``shape``."""
    n = 1
    for d in shape:
        n *= int(d)
    keep = random_words(xp, n, int(seed), int(offset)) >= numpy.uint32(drop_threshold(p))
    return (keep * xp.asarray(1.0 / (1.0 - p), dtype=dtype)).astype(dtype, copy=False).reshape(shape)


def dropout_apply(xp, x, p, seed, offset):
    """``x * dropout_mask(x.shape, p, seed, offset, x.dtype)``: inverted dropout with the mask of (seed, offset)."""
    return x * dropout_mask(xp, x.shape, p, seed, offset, x.dtype)
