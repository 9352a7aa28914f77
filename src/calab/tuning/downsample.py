"""Min/max downsampling of a series to a pixel width (one bin per pixel column)."""

from __future__ import annotations

import numpy as np


def bin_edges(n: int, n_bins: int) -> np.ndarray:
    """Start index of each of ``n_bins`` near-equal bins over ``n`` samples, plus ``n``.

    Returns
    -------
    edges : ndarray of int64, shape (n_bins + 1,)
    """
    return (np.arange(n_bins + 1, dtype=np.int64) * n) // n_bins


def minmax_downsample(x: np.ndarray, width: int) -> np.ndarray:
    """Minimum and maximum of ``x`` in each of ``min(n, width)`` bins.

    Drawing the pairs as a vertical segment per pixel column shows every peak and trough of the
    full-resolution series. When ``n <= width`` each bin holds one sample (min == max).

    Parameters
    ----------
    x : ndarray, shape (n,) or (n_series, n)
        Series to reduce; each row on its own.
    width : int
        Plot width in pixels (>= 1).

    Returns
    -------
    out : ndarray of float32, shape (n_bins, 2) or (n_series, n_bins, 2)
        ``out[..., k, 0]`` is the minimum and ``out[..., k, 1]`` the maximum of bin ``k``.
    """
    if width < 1:
        raise ValueError(f"width must be at least 1 pixel, got {width}")
    arr = np.asarray(x)
    one = arr.ndim == 1
    a2 = arr[np.newaxis, :] if one else arr
    n = a2.shape[-1]
    if n == 0:
        raise ValueError("cannot downsample an empty series")
    n_bins = min(n, int(width))
    if n_bins == n:
        out = np.repeat(a2[..., np.newaxis], 2, axis=-1).astype(np.float32)
    else:
        starts = bin_edges(n, n_bins)[:-1]
        out = np.empty((a2.shape[0], n_bins, 2), dtype=np.float32)
        out[..., 0] = np.minimum.reduceat(a2, starts, axis=-1)
        out[..., 1] = np.maximum.reduceat(a2, starts, axis=-1)
    return out[0] if one else out
