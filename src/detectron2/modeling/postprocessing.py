"""Resize model outputs from the network's input resolution to the requested one."""
import torch
from torch.nn import functional as F

from detectron2.structures import Instances, ROIMasks

__all__ = ["detector_postprocess", "sem_seg_postprocess"]


def detector_postprocess(
    results: Instances, output_height: int, output_width: int, mask_threshold: float = 0.5
) -> Instances:
    """Rescale detections made on a resized image to (output_height, output_width):
    boxes are scaled and clipped (empty ones dropped), roi masks pasted into full
    image bit masks, keypoints scaled.

    Args:
        results: predictions with ``pred_boxes`` (or ``proposal_boxes``) and optionally
            ``pred_masks`` (R, 1, M, M) and ``pred_keypoints`` (R, K, 3), in the frame
            of ``results.image_size``.
        output_height, output_width: the wanted output resolution (ints, or scalar
            tensors when tracing).
        mask_threshold: probability threshold for binarizing masks.

    Returns:
        Instances of image_size (output_height, output_width).
    """
    if isinstance(output_width, torch.Tensor):
        # Tracing: keep the sizes as tensors so the graph follows the input.
        out_w, out_h = output_width.float(), output_height.float()
        new_size = torch.stack([output_height, output_width])
    else:
        out_w, out_h = output_width, output_height
        new_size = (output_height, output_width)
    scale_x = out_w / results.image_size[1]
    scale_y = out_h / results.image_size[0]
    results = Instances(new_size, **results.get_fields())

    if results.has("pred_boxes"):
        output_boxes = results.pred_boxes
    elif results.has("proposal_boxes"):
        output_boxes = results.proposal_boxes
    else:
        raise ValueError("detector_postprocess: results must contain pred_boxes or proposal_boxes")

    output_boxes.scale(scale_x, scale_y)
    output_boxes.clip(results.image_size)
    results = results[output_boxes.nonempty()]

    if results.has("pred_masks"):
        if isinstance(results.pred_masks, ROIMasks):
            roi_masks = results.pred_masks
        else:
            roi_masks = ROIMasks(results.pred_masks[:, 0, :, :])
        results.pred_masks = roi_masks.to_bitmasks(
            results.pred_boxes, output_height, output_width, mask_threshold
        ).tensor

    if results.has("pred_keypoints"):
        results.pred_keypoints[:, :, 0] *= scale_x
        results.pred_keypoints[:, :, 1] *= scale_y
    return results


def sem_seg_postprocess(result: torch.Tensor, img_size, output_height: int, output_width: int) -> torch.Tensor:
    """Crop a (C, H, W) semantic segmentation output to the unpadded ``img_size`` (h, w)
    and resize it bilinearly to (output_height, output_width)."""
    if result.dim() != 3:
        raise ValueError(f"sem_seg_postprocess: result must be (C, H, W), got shape {tuple(result.shape)}")
    result = result[:, : img_size[0], : img_size[1]].expand(1, -1, -1, -1)
    return F.interpolate(result, size=(output_height, output_width), mode="bilinear", align_corners=False)[0]
