"""Pasting per-box mask predictions into full-image masks."""
from typing import Tuple

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["paste_masks_in_image"]

BYTES_PER_FLOAT = 4
# Upper bound on the memory of one chunk of pasted masks on a GPU.
GPU_MEM_LIMIT = 1024**3


def _do_paste_mask(masks: torch.Tensor, boxes: torch.Tensor, img_h: int, img_w: int, skip_empty: bool = True):
    """
    Resample (N, 1, Hm, Wm) masks into the (N, img_h, img_w) image frame through
    ``grid_sample`` at pixel centres; outside a box the mask reads as 0.

    With ``skip_empty``, only the image region covered by the union of the boxes is
    computed, and the slices of that region are returned with it.
    """
    device = masks.device
    if skip_empty and not torch.jit.is_scripting():
        x0_int, y0_int = torch.clamp(boxes.min(dim=0).values.floor()[:2] - 1, min=0).to(dtype=torch.int32)
        x1_int = torch.clamp(boxes[:, 2].max().ceil() + 1, min=0, max=img_w).to(dtype=torch.int32)
        y1_int = torch.clamp(boxes[:, 3].max().ceil() + 1, min=0, max=img_h).to(dtype=torch.int32)
        # Boxes entirely outside the image give an empty region, not a reversed one.
        x0_int, y0_int = torch.min(x0_int, x1_int), torch.min(y0_int, y1_int)
    else:
        x0_int, y0_int = 0, 0
        x1_int, y1_int = img_w, img_h
    x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)  # each (N, 1)
    n = masks.shape[0]
    # Pixel centres, normalised so that the box spans [-1, 1] (align_corners=False).
    img_y = torch.arange(y0_int, y1_int, device=device, dtype=torch.float32) + 0.5
    img_x = torch.arange(x0_int, x1_int, device=device, dtype=torch.float32) + 0.5
    img_y = (img_y - y0) / (y1 - y0) * 2 - 1
    img_x = (img_x - x0) / (x1 - x0) * 2 - 1
    gx = img_x[:, None, :].expand(n, img_y.size(1), img_x.size(1))
    gy = img_y[:, :, None].expand(n, img_y.size(1), img_x.size(1))
    grid = torch.stack([gx, gy], dim=3)
    if not torch.jit.is_scripting():
        if not masks.dtype.is_floating_point:
            masks = masks.float()
    img_masks = F.grid_sample(masks, grid.to(masks.dtype), align_corners=False)
    if skip_empty and not torch.jit.is_scripting():
        return img_masks[:, 0], (slice(y0_int, y1_int), slice(x0_int, x1_int))
    return img_masks[:, 0], ()


@torch.jit.script_if_tracing
def paste_masks_in_image(
    masks: torch.Tensor, boxes: torch.Tensor, image_shape: Tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """
    Paste per-box mask probabilities into the image.

    The value of image pixel (x, y) is the mask bilinearly sampled at the point where the
    pixel centre (x + 0.5, y + 0.5) falls inside its box (0 outside the box).

    Args:
        masks (Tensor): (N, Hm, Wm) mask probabilities; Hm == Wm.
        boxes (Boxes or Tensor): (N, 4) XYXY boxes in image coordinates.
        image_shape (tuple): (height, width) of the image.
        threshold (float): pixels >= threshold are set; a negative threshold returns the
            probabilities scaled to uint8 [0, 255] instead (for visualisation).

    Returns:
        Tensor: (N, height, width), bool (uint8 when threshold < 0).
    """
    assert masks.shape[-1] == masks.shape[-2], "Only square mask predictions are supported"
    n = len(masks)
    if n == 0:
        return masks.new_empty((0,) + image_shape, dtype=torch.uint8)
    if not isinstance(boxes, torch.Tensor):
        boxes = boxes.tensor
    device = boxes.device
    assert len(boxes) == n, boxes.shape
    img_h, img_w = image_shape
    if device.type == "cpu" or torch.jit.is_scripting():
        # On CPU one mask at a time over its own box region does the least work.
        num_chunks = n
    else:
        # On GPU, as many masks per chunk as the memory limit allows.
        # int(img_h): shapes may be tensors while tracing.
        num_chunks = int(np.ceil(n * int(img_h) * int(img_w) * BYTES_PER_FLOAT / GPU_MEM_LIMIT))
        assert num_chunks <= n, "Default GPU_MEM_LIMIT in mask_ops.py is too small; try increasing it"
    chunks = torch.chunk(torch.arange(n, device=device), num_chunks)
    img_masks = torch.zeros(
        n, img_h, img_w, device=device, dtype=torch.bool if threshold >= 0 else torch.uint8
    )
    for inds in chunks:
        masks_chunk, spatial_inds = _do_paste_mask(
            masks[inds, None, :, :], boxes[inds], img_h, img_w, skip_empty=device.type == "cpu"
        )
        if threshold >= 0:
            masks_chunk = (masks_chunk >= threshold).to(dtype=torch.bool)
        else:
            masks_chunk = (masks_chunk * 255).to(dtype=torch.uint8)
        if torch.jit.is_scripting():  # scripting cannot index with the slices
            img_masks[inds] = masks_chunk
        else:
            img_masks[(inds,) + spatial_inds] = masks_chunk
    return img_masks


def paste_mask_in_image_old(mask: torch.Tensor, box: torch.Tensor, img_h: int, img_w: int, threshold: float):
    """
    Legacy single-mask paste (the Detectron1 behaviour): the box is truncated to integer
    pixels, the mask is resized to (y1 - y0 + 1, x1 - x0 + 1) samples with PIL's bilinear
    filter and copied into a zero image.

    Args:
        mask (Tensor): (Hm, Wm) float mask probabilities.
        box (Tensor): (4,) XYXY box.
        img_h, img_w (int): image size.
        threshold (float): values > threshold are set; < 0 gives uint8 x 255 values.

    Returns:
        Tensor: (img_h, img_w) uint8 mask.
    """
    from PIL import Image

    # Truncation, not rounding: the pixel grid of Detectron1.
    box = box.to(dtype=torch.int32)
    samples_w = int(box[2] - box[0] + 1)  # number of pixel samples, not the geometric width
    samples_h = int(box[3] - box[1] + 1)
    resized = Image.fromarray(mask.cpu().numpy()).resize((samples_w, samples_h), resample=Image.BILINEAR)
    resized = np.asarray(resized)
    if threshold >= 0:
        pasted = torch.from_numpy(np.array(resized > threshold, dtype=np.uint8))
    else:
        pasted = torch.from_numpy(resized * 255).to(torch.uint8)
    im_mask = torch.zeros((img_h, img_w), dtype=torch.uint8)
    bx0, by0, bx2, by3 = (int(v) for v in box)
    x_0, x_1 = max(bx0, 0), min(bx2 + 1, img_w)
    y_0, y_1 = max(by0, 0), min(by3 + 1, img_h)
    im_mask[y_0:y_1, x_0:x_1] = pasted[(y_0 - by0) : (y_1 - by0), (x_0 - bx0) : (x_1 - bx0)]
    return im_mask


def pad_masks(masks: torch.Tensor, padding: int) -> Tuple[torch.Tensor, float]:
    """
    Zero-pad (N, M, M) masks by ``padding`` on each side, so that bilinear sampling
    near a mask border fades to 0 (used with ``paste_mask_in_image_old``).

    Returns:
        the (N, M + 2p, M + 2p) masks and the scale (M + 2p) / M to apply to the boxes.
    """
    n, m = masks.shape[0], masks.shape[-1]
    pad2 = 2 * padding
    scale = float(m + pad2) / m
    padded = masks.new_zeros((n, m + pad2, m + pad2))
    padded[:, padding:-padding, padding:-padding] = masks
    return padded, scale


def scale_boxes(boxes: torch.Tensor, scale: float) -> torch.Tensor:
    """Scale (N, 4) XYXY boxes by ``scale`` about their centres."""
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    w_half *= scale
    h_half *= scale
    scaled = torch.zeros_like(boxes)
    scaled[:, 0] = x_c - w_half
    scaled[:, 2] = x_c + w_half
    scaled[:, 1] = y_c - h_half
    scaled[:, 3] = y_c + h_half
    return scaled


@torch.jit.script_if_tracing
def _paste_masks_tensor_shape(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    image_shape: Tuple[torch.Tensor, torch.Tensor],
    threshold: float = 0.5,
) -> torch.Tensor:
    """``paste_masks_in_image`` for an image shape given as tensors (as during tracing):
    the conversion to int is scripted rather than traced."""
    return paste_masks_in_image(masks, boxes, (int(image_shape[0]), int(image_shape[1])), threshold)
