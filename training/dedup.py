"""Find duplicate images: exact (same pixels) and near (perceptual hash + pixel correlation).

Near-duplicates are found in two steps. A 64-bit DCT hash (sign of the 8x8 lowest-frequency DCT
coefficients against their median; robust to brightness, contrast, JPEG loss and small edits) gives
candidates within a Hamming distance, searched with multi-index hashing: split the hash into
``max_distance + 1`` blocks; two hashes that differ in at most ``max_distance`` bits agree exactly on
at least one block (pigeonhole), so only pairs sharing a block value are compared. Each candidate is
then confirmed by the Pearson correlation of its pixels, which rejects different faces whose coarse
layout happens to match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
from scipy.fft import dctn
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

HASH_BITS = 64
_POPCOUNT16 = np.array([bin(i).count("1") for i in range(1 << 16)], dtype=np.uint8)


def pixel_digests(images: np.ndarray) -> np.ndarray:
    """A 128-bit blake2b digest of each image's pixels (N,) as hex strings; equal digests mean equal images."""
    return np.array([hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest() for image in images])


def exact_groups(images: np.ndarray) -> np.ndarray:
    """Group id (N,) per image: images with identical pixels share an id; ids are 0..G-1."""
    _, group = np.unique(pixel_digests(images), return_inverse=True)
    return group.astype(np.int64)


def dct_hash(images: np.ndarray) -> np.ndarray:
    """64-bit perceptual hash (N,) uint64 of uint8 images (N, H, W): bit set where a low-frequency DCT coefficient exceeds the median."""
    coeffs = dctn(np.asarray(images, dtype=np.float32), axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(images), 64)
    bits = coeffs > np.median(coeffs, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def popcount(values: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64 (N,) as int64."""
    halves = np.ascontiguousarray(values, dtype=np.uint64).view(np.uint16).reshape(-1, 4)
    return _POPCOUNT16[halves].sum(axis=1, dtype=np.int64)


def _block_widths(blocks: int) -> list[int]:
    return [HASH_BITS // blocks + (1 if k < HASH_BITS % blocks else 0) for k in range(blocks)]


def _same_block_pairs(values: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Index pairs (i, j) with equal ``values``, yielded in vectorized chunks (one per offset in sorted order)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    run_end = np.repeat(np.r_[starts[1:], len(values)], np.diff(np.r_[starts, len(values)]))
    position = np.arange(len(values))
    active = position[run_end - position > 1]
    offset = 1
    while len(active):
        yield order[active], order[active + offset]
        offset += 1
        active = active[run_end[active] - active > offset]


def hamming_pairs(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """All pairs (i < j) of 64-bit ``hashes`` at Hamming distance <= ``max_distance``: int64 array (M, 3) of i, j, distance."""
    if not 0 <= max_distance < HASH_BITS:
        raise ValueError(f"max_distance must be in [0, {HASH_BITS}), got {max_distance}")
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(hashes)
    found: list[np.ndarray] = []
    shift = HASH_BITS
    for width in _block_widths(max_distance + 1):
        shift -= width
        block = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        for i, j in _same_block_pairs(block):
            distance = popcount(hashes[i] ^ hashes[j])
            keep = distance <= max_distance
            low, high = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
            found.append(low.astype(np.int64) * n + high)
    if not found:
        return np.empty((0, 3), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    i, j = codes // max(n, 1), codes % max(n, 1)
    return np.stack([i, j, popcount(hashes[i] ^ hashes[j])], axis=1)


def pixel_correlation(images: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Pearson correlation of the pixels of image pairs (i[k], j[k]); 0 where an image is constant."""
    flat = images.reshape(len(images), -1)
    out = np.empty(len(i), dtype=np.float64)
    for start in range(0, len(i), chunk):
        a = flat[i[start:start + chunk]].astype(np.float32)
        b = flat[j[start:start + chunk]].astype(np.float32)
        a -= a.mean(axis=1, keepdims=True)
        b -= b.mean(axis=1, keepdims=True)
        denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
        out[start:start + chunk] = np.where(denominator > 0, (a * b).sum(axis=1) / np.maximum(denominator, 1e-12), 0.0)
    return out


def near_duplicate_pairs(images: np.ndarray, candidates: np.ndarray | None = None, *, max_distance: int = 6,
                         min_correlation: float = 0.85) -> np.ndarray:
    """Pairs (i < j) of near-identical images among ``candidates`` (indices; default all): (M, 2) int64.

    A pair is kept when its DCT hashes differ in at most ``max_distance`` bits and its pixels
    correlate at least ``min_correlation``.
    """
    index = np.arange(len(images)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    pairs = hamming_pairs(dct_hash(images[index]), max_distance)
    if not len(pairs):
        return np.empty((0, 2), dtype=np.int64)
    i, j = index[pairs[:, 0]], index[pairs[:, 1]]
    keep = pixel_correlation(images, i, j) >= min_correlation
    return np.stack([np.minimum(i, j)[keep], np.maximum(i, j)[keep]], axis=1)


def connected_groups(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component id (n,) of the graph on n nodes with edges ``pairs`` (M, 2); singletons get their own id."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)
