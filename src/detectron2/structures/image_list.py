"""A batch of images of different sizes, padded into one tensor."""
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import device
from torch.nn import functional as F

from detectron2.layers._errors import TypeAssertionError, ValueAssertionError
from detectron2.layers._checks import BadInputError
from detectron2.layers.wrappers import move_device_like, shapes_to_tensor


class ImageList:
    """Images of possibly different sizes padded to one (N, ..., H, W) tensor.

    Attributes:
        tensor: the padded batch.
        image_sizes: the (h, w) of each image before padding; while tracing, the
            entries are tensors so that the traced graph follows the input sizes.
    """

    def __init__(self, tensor: torch.Tensor, image_sizes: List[Tuple[int, int]]):
        self.tensor = tensor
        self.image_sizes = image_sizes

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __getitem__(self, idx: int) -> torch.Tensor:
        """The idx-th image without its padding."""
        size = self.image_sizes[idx]
        return self.tensor[idx, ..., : size[0], : size[1]]

    @torch.jit.unused
    def to(self, *args: Any, **kwargs: Any) -> "ImageList":
        return ImageList(self.tensor.to(*args, **kwargs), self.image_sizes)

    @property
    def device(self) -> device:
        return self.tensor.device

    @staticmethod
    def from_tensors(
        tensors: List[torch.Tensor],
        size_divisibility: int = 0,
        pad_value: float = 0.0,
        padding_constraints: Optional[Dict[str, int]] = None,
    ) -> "ImageList":
        """Pad tensors of shape (..., H_i, W_i) (equal leading dims) into one ImageList.

        Args:
            size_divisibility: if > 1, the padded H and W are rounded up to multiples of it.
            pad_value: value of the padded pixels.
            padding_constraints: optional dict; "square_size" > 0 pads every image to that
                square size, "size_divisibility" overrides the argument of that name.
        """
        if not isinstance(tensors, (tuple, list)):
            raise TypeAssertionError(f"ImageList.from_tensors: tensors must be a list of tensors, got {type(tensors)}")
        if len(tensors) == 0:
            raise ValueAssertionError("ImageList.from_tensors: tensors must not be empty")
        for t in tensors:
            if not isinstance(t, torch.Tensor):
                raise TypeAssertionError(f"ImageList.from_tensors: every element must be a tensor, got {type(t)}")
            if t.dim() < 2:
                raise ValueAssertionError(f"ImageList.from_tensors: tensors must have at least 2 dims, got {t.shape}")
            if t.shape[:-2] != tensors[0].shape[:-2]:
                raise ValueAssertionError(
                    "ImageList.from_tensors: all tensors must share their leading dims, got "
                    f"{t.shape} and {tensors[0].shape}"
                )

        square_size = 0
        if padding_constraints is not None:
            # A fixed square input (e.g. for ViT backbones) takes priority over the image sizes.
            square_size = padding_constraints.get("square_size", 0)
            if "size_divisibility" in padding_constraints:
                size_divisibility = padding_constraints["size_divisibility"]

        image_sizes = [(im.shape[-2], im.shape[-1]) for im in tensors]
        if torch.jit.is_scripting():
            sizes_tensor = [shapes_to_tensor(x) for x in image_sizes]
            max_size: List[int] = _padded_size(sizes_tensor, square_size, size_divisibility).tolist()
        elif torch.jit.is_tracing():
            # Sizes stay tensors so the traced graph follows each input's size.
            image_sizes = [shapes_to_tensor(x) for x in image_sizes]
            max_size = _padded_size(image_sizes, square_size, size_divisibility)
        else:
            # Eager: plain ints, no small-tensor round trips.
            max_size = _padded_size_ints(image_sizes, square_size, size_divisibility)

        if len(tensors) == 1:
            # F.pad is traceable for a single image and avoids a copy loop.
            image_size = image_sizes[0]
            padding_size = [0, max_size[-1] - image_size[1], 0, max_size[-2] - image_size[0]]
            batched_imgs = F.pad(tensors[0], padding_size, value=pad_value).unsqueeze_(0)
        else:
            batch_shape = [len(tensors)] + list(tensors[0].shape[:-2]) + list(max_size)
            device = None if torch.jit.is_scripting() else ("cpu" if torch.jit.is_tracing() else None)
            batched_imgs = tensors[0].new_full(batch_shape, pad_value, device=device)
            batched_imgs = move_device_like(batched_imgs, tensors[0])
            for i, img in enumerate(tensors):
                batched_imgs[i, ..., : img.shape[-2], : img.shape[-1]].copy_(img)

        return ImageList(batched_imgs.contiguous(), image_sizes)


def _padded_size(image_sizes: List[torch.Tensor], square_size: int, size_divisibility: int) -> torch.Tensor:
    """The (H, W) to pad to, as a tensor (scripting and tracing)."""
    max_size = torch.stack(image_sizes).max(0).values
    if square_size > 0:
        max_size = torch.full_like(max_size, square_size)
    if size_divisibility > 1:
        stride = size_divisibility
        max_size = (max_size + (stride - 1)).div(stride, rounding_mode="floor") * stride
    return max_size


@torch.jit.unused
def _padded_size_ints(image_sizes: List[Tuple[int, int]], square_size: int, size_divisibility: int) -> List[int]:
    """The (H, W) to pad to, as ints (eager mode)."""
    if square_size > 0:
        for i, (h, w) in enumerate(image_sizes):
            if h > square_size or w > square_size:
                # padding cannot shrink an image; F.pad would silently crop it
                raise BadInputError(
                    f"ImageList.from_tensors: padding_constraints['square_size']={square_size} is smaller "
                    f"than tensors[{i}] of size {h}x{w}; it must be >= every image's height and width"
                )
        size = [square_size, square_size]
    else:
        size = [max(s[0] for s in image_sizes), max(s[1] for s in image_sizes)]
    if size_divisibility > 1:
        size = [(x + size_divisibility - 1) // size_divisibility * size_divisibility for x in size]
    return size
