import random

import numpy as np
import pytest

from detectron2.utils.colormap import colormap, random_color, random_colors


def test_palette_values_and_channel_order():
    rgb = colormap(rgb=True, maximum=1)
    assert rgb.shape == (74, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb[0], [0.000, 0.447, 0.741], atol=1e-6)
    np.testing.assert_allclose(rgb[1], [0.850, 0.325, 0.098], atol=1e-6)
    np.testing.assert_allclose(rgb[15], [0.333, 0.333, 0.0], atol=1e-6)
    np.testing.assert_allclose(rgb[-4:], [[0, 0, 0], [0.143] * 3, [0.857] * 3, [1, 1, 1]], atol=1e-6)
    bgr = colormap(rgb=False, maximum=255)
    np.testing.assert_allclose(bgr, rgb[:, ::-1] * 255, rtol=1e-6)
    assert 0 <= rgb.min() and rgb.max() <= 1
    with pytest.raises(AssertionError):
        colormap(maximum=100)


def test_random_color_comes_from_the_palette():
    palette = {tuple(np.round(c, 4)) for c in colormap(rgb=True, maximum=1)}
    for _ in range(20):
        c = random_color(rgb=True, maximum=1)
        assert c.shape == (3,) and tuple(np.round(c, 4)) in palette
    c = random_color(rgb=False, maximum=255)
    assert tuple(np.round(c[::-1] / 255, 4)) in palette


def test_random_colors_are_distinct_palette_entries():
    random.seed(0)
    colors = random_colors(74, rgb=True, maximum=1)
    # all 74 entries, each once (the palette itself repeats 4 colours, as upstream's does)
    assert sorted(map(tuple, colors)) == sorted(map(tuple, colormap(rgb=True, maximum=1)))
    assert len(random_colors(5)) == 5
    with pytest.raises(ValueError):
        random_colors(75)
