"""Min/max downsampling of traces to the plot width."""

from __future__ import annotations

import numpy as np
import pytest

from calab.tuning import minmax_downsample


def test_minmax_downsample_keeps_extremes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=10_007)
    out = minmax_downsample(x, 100)
    assert out.shape == (100, 2) and out.dtype == np.float32
    assert out[:, 0].min() == np.float32(x.min()) and out[:, 1].max() == np.float32(x.max())
    edges = (np.arange(101) * x.size) // 100
    for k in (0, 37, 99):
        seg = x[edges[k] : edges[k + 1]]
        assert out[k, 0] == np.float32(seg.min()) and out[k, 1] == np.float32(seg.max())
    short = minmax_downsample(np.arange(5.0), 100)  # fewer samples than pixels: one per bin
    np.testing.assert_array_equal(short[:, 0], short[:, 1])
    with pytest.raises(ValueError, match="width"):
        minmax_downsample(x, 0)
