from dataclasses import dataclass
from typing import Optional


@dataclass
class ShapeSpec:
    """The shape of a feature map (or a vector), passed between model components so
    that each can build itself from its input's description. Unknown fields are None."""

    channels: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    stride: Optional[int] = None
