"""A fixed palette of 74 distinct colours (upstream's values), and random picks from it."""
import random
from typing import List

import numpy as np

__all__ = ["colormap", "random_color", "random_colors"]


def _palette() -> np.ndarray:
    """The 74 RGB colours in [0, 1], in upstream's order."""
    first = [
        (0.000, 0.447, 0.741), (0.850, 0.325, 0.098), (0.929, 0.694, 0.125),
        (0.494, 0.184, 0.556), (0.466, 0.674, 0.188), (0.301, 0.745, 0.933),
        (0.635, 0.078, 0.184), (0.300, 0.300, 0.300), (0.600, 0.600, 0.600),
        (1.000, 0.000, 0.000), (1.000, 0.500, 0.000), (0.749, 0.749, 0.000),
        (0.000, 1.000, 0.000), (0.000, 0.000, 1.000), (0.667, 0.000, 1.000),
    ]
    thirds = (0.0, 0.333, 0.667, 1.0)
    # a grid over red x green thirds at blue 0, 0.5 and 1, leaving out the colours
    # already listed above (and black / white)
    grid = []
    for blue, reds, skip in (
        (0.0, thirds[1:], lambda r, g: g == 0.0),
        (0.5, thirds, lambda r, g: r == g == 0.0),
        (1.0, thirds, lambda r, g: (r == g == 0.0) or (r == g == 1.0)),
    ):
        grid += [(r, g, blue) for r in reds for g in thirds if not skip(r, g)]
    sixths = (0.167, 0.333, 0.500, 0.667, 0.833, 1.000)
    ramps = [(v, 0.0, 0.0) for v in sixths[1:]] + [(0.0, v, 0.0) for v in sixths] + [(0.0, 0.0, v) for v in sixths]
    greys = [(0.0, 0.0, 0.0), (0.143, 0.143, 0.143), (0.857, 0.857, 0.857), (1.0, 1.0, 1.0)]
    colors = np.array(first + grid + ramps + greys, dtype=np.float32)
    assert colors.shape == (74, 3)
    return colors


_COLORS = _palette()


def _scaled(colors: np.ndarray, rgb: bool, maximum: float) -> np.ndarray:
    colors = colors * maximum
    return colors if rgb else colors[..., ::-1]


def colormap(rgb: bool = False, maximum: int = 255) -> np.ndarray:
    """The palette as a float32 array of shape (74, 3), values in [0, maximum], RGB when
    ``rgb`` else BGR."""
    assert maximum in (255, 1), maximum
    return _scaled(_COLORS, rgb, maximum)


def random_color(rgb: bool = False, maximum: int = 255) -> np.ndarray:
    """One palette colour picked at random: a vector of 3 values in [0, maximum]."""
    return _scaled(_COLORS[np.random.randint(0, len(_COLORS))], rgb, maximum)


def random_colors(N: int, rgb: bool = False, maximum: int = 255) -> List[np.ndarray]:
    """``N`` different palette colours picked at random (N <= 74)."""
    indices = random.sample(range(len(_COLORS)), N)
    return [_scaled(_COLORS[i], rgb, maximum) for i in indices]
