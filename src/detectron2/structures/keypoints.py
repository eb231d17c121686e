"""Keypoints of N instances and the conversions to and from heatmaps."""
from typing import Any, List, Tuple, Union

import numpy as np
import torch
from torch.nn import functional as F

from detectron2.layers._errors import TypeAssertionError, ValueAssertionError


class Keypoints:
    """Keypoints as an (N, K, 3) float tensor of (x, y, visibility).

    Visibility follows COCO: 0 not labelled, 1 labelled but not visible, 2 visible;
    x and y are absolute image coordinates.
    """

    def __init__(self, keypoints: Union[torch.Tensor, np.ndarray, List[List[float]]]):
        device = keypoints.device if isinstance(keypoints, torch.Tensor) else torch.device("cpu")
        keypoints = torch.as_tensor(keypoints, dtype=torch.float32, device=device)
        if keypoints.dim() != 3 or keypoints.shape[2] != 3:
            raise ValueAssertionError(f"Keypoints: tensor must have shape (N, K, 3), got {tuple(keypoints.shape)}")
        self.tensor = keypoints

    def __len__(self) -> int:
        return self.tensor.size(0)

    def to(self, *args: Any, **kwargs: Any) -> "Keypoints":
        return type(self)(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def to_heatmap(self, boxes: torch.Tensor, heatmap_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Heatmap targets (flat indices, validity) inside the (N, 4) XYXY boxes; see
        :func:`keypoints_to_heatmap`."""
        return keypoints_to_heatmap(self.tensor, boxes, heatmap_size)

    def __getitem__(self, item: Union[int, slice, torch.BoolTensor]) -> "Keypoints":
        if isinstance(item, int):
            return Keypoints(self.tensor[item].unsqueeze(0))
        return Keypoints(self.tensor[item])

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self.tensor)})"

    @staticmethod
    def cat(keypoints_list: List["Keypoints"]) -> "Keypoints":
        if not isinstance(keypoints_list, (list, tuple)) or len(keypoints_list) == 0:
            raise ValueAssertionError("Keypoints.cat: keypoints_list must be a non-empty list of Keypoints")
        for k in keypoints_list:
            if not isinstance(k, Keypoints):
                raise TypeAssertionError(f"Keypoints.cat: every element must be Keypoints, got {type(k)}")
        return type(keypoints_list[0])(torch.cat([k.tensor for k in keypoints_list], dim=0))


@torch.jit.script_if_tracing
def keypoints_to_heatmap(
    keypoints: torch.Tensor, rois: torch.Tensor, heatmap_size: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Discretise keypoints (N, K, 3) into flat indices of a heatmap_size^2 grid per roi.

    Returns (heatmaps, valid), both (N, K) int64: the index y * S + x of each keypoint's
    cell inside its roi, and 1 where the keypoint is visible and falls inside the roi.
    A keypoint on the roi's right or bottom edge goes to the last cell, not outside.
    """
    if rois.numel() == 0:
        return rois.new().long(), rois.new().long()
    offset_x = rois[:, 0][:, None]
    offset_y = rois[:, 1][:, None]
    scale_x = (heatmap_size / (rois[:, 2] - rois[:, 0]))[:, None]
    scale_y = (heatmap_size / (rois[:, 3] - rois[:, 1]))[:, None]

    x = keypoints[..., 0]
    y = keypoints[..., 1]
    x_on_edge = x == rois[:, 2][:, None]
    y_on_edge = y == rois[:, 3][:, None]

    x = ((x - offset_x) * scale_x).floor().long()
    y = ((y - offset_y) * scale_y).floor().long()
    x[x_on_edge] = heatmap_size - 1
    y[y_on_edge] = heatmap_size - 1

    valid_loc = (x >= 0) & (y >= 0) & (x < heatmap_size) & (y < heatmap_size)
    visible = keypoints[..., 2] > 0
    valid = (valid_loc & visible).long()
    heatmaps = (y * heatmap_size + x) * valid
    return heatmaps, valid


@torch.jit.script_if_tracing
def heatmaps_to_keypoints(maps: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """Decode keypoint logits (R, K, H, W) predicted inside rois (R, 4) to (R, K, 4).

    Each map is resized (bicubic) to the roi's size in pixels, and the argmax cell gives
    the keypoint at its centre (+0.5). Columns: x, y, the logit there, and a score: the
    softmax of that logit normalised over the low-resolution map.
    """
    offset_x = rois[:, 0]
    offset_y = rois[:, 1]
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    widths_ceil = widths.ceil()
    heights_ceil = heights.ceil()

    num_rois, num_keypoints = maps.shape[:2]
    xy_preds = maps.new_zeros(rois.shape[0], num_keypoints, 4)
    # The resized map has a whole number of pixels; map its cells back to the real size.
    width_corrections = widths / widths_ceil
    height_corrections = heights / heights_ceil
    keypoints_idx = torch.arange(num_keypoints, device=maps.device)

    for i in range(num_rois):
        outsize = (int(heights_ceil[i]), int(widths_ceil[i]))
        roi_map = F.interpolate(maps[[i]], size=outsize, mode="bicubic", align_corners=False)
        roi_map = roi_map.reshape(roi_map.shape[1:])  # (K, h, w); reshape exports where squeeze may not

        max_score, _ = roi_map.view(num_keypoints, -1).max(1)
        max_score = max_score.view(num_keypoints, 1, 1)
        # Subtract the max before exp for stability; normalise by the pooled-resolution sum
        # so the score does not depend on the roi's size.
        full_res = (roi_map - max_score).exp_()
        pool_res = (maps[i] - max_score).exp_()
        roi_map_scores = full_res / pool_res.sum((1, 2), keepdim=True)

        w = roi_map.shape[2]
        pos = roi_map.view(num_keypoints, -1).argmax(1)
        x_int = pos % w
        y_int = (pos - x_int) // w

        x = (x_int.float() + 0.5) * width_corrections[i]
        y = (y_int.float() + 0.5) * height_corrections[i]
        xy_preds[i, :, 0] = x + offset_x[i]
        xy_preds[i, :, 1] = y + offset_y[i]
        xy_preds[i, :, 2] = roi_map[keypoints_idx, y_int, x_int]
        xy_preds[i, :, 3] = roi_map_scores[keypoints_idx, y_int, x_int]

    return xy_preds
