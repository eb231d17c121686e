"""R-CNN meta-architectures: backbone -> proposal generator -> ROI heads."""
import functools
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import move_device_like
from detectron2.structures import ImageList, Instances
from detectron2.utils.events import get_event_storage
from detectron2.utils.logger import log_first_n

from ..backbone import Backbone, build_backbone
from ..postprocessing import detector_postprocess
from ..proposal_generator import build_proposal_generator
from ..roi_heads import build_roi_heads
from .build import META_ARCH_REGISTRY

__all__ = ["GeneralizedRCNN", "ProposalNetwork"]


def _register_pixel_stats(module: nn.Module, pixel_mean: Sequence[float], pixel_std: Sequence[float]) -> None:
    # Non-persistent: they come from the config, not from checkpoints.
    module.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
    module.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
    if module.pixel_mean.shape != module.pixel_std.shape:
        raise ValueError(f"pixel_mean ({len(pixel_mean)} values) and pixel_std ({len(pixel_std)}) must match")


def _check_batched_inputs(batched_inputs, channels: int) -> None:
    if not isinstance(batched_inputs, (list, tuple)) or len(batched_inputs) == 0:
        raise TypeError("batched_inputs must be a non-empty list of dicts, one per image")
    for i, x in enumerate(batched_inputs):
        if not isinstance(x, dict) or "image" not in x:
            raise ValueError(f"batched_inputs[{i}] must be a dict with an 'image' tensor")
        img = x["image"]
        if not isinstance(img, torch.Tensor) or img.dim() != 3 or img.shape[0] != channels:
            shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise ValueError(f"batched_inputs[{i}]['image'] must be a ({channels}, H, W) tensor, got {shape}")


@functools.lru_cache(maxsize=None)
def _cudnn_has_nhwc_kernels(device_index: int) -> bool:
    # Volta (sm_70) and newer: NHWC is cuDNN's native layout there.
    return torch.cuda.get_device_capability(device_index) >= (7, 0)


def _use_channels_last(x: torch.Tensor) -> bool:
    """Whether convolutions on `x` run faster in channels-last (NHWC) memory format: on
    GPUs where cuDNN computes in NHWC, an NCHW convolution pays two layout transposes
    (on an H200, 12-16% of a Mask R-CNN R50-FPN training step)."""
    return x.is_cuda and torch.backends.cudnn.enabled and _cudnn_has_nhwc_kernels(x.device.index or 0)


def _preprocess(model: nn.Module, batched_inputs: List[Dict[str, torch.Tensor]]) -> ImageList:
    """Normalize each image with the model's pixel mean/std and pad them into one batch
    the backbone accepts."""
    if not torch.jit.is_scripting():  # validation TorchScript cannot compile
        _check_batched_inputs(batched_inputs, model.pixel_mean.shape[0])
    images = [move_device_like(x["image"], model.pixel_mean) for x in batched_inputs]
    images = [(x - model.pixel_mean) / model.pixel_std for x in images]
    return ImageList.from_tensors(
        images,
        model.backbone.size_divisibility,
        padding_constraints=model.backbone.padding_constraints,
    )


def _postprocess_all(instances, batched_inputs, image_sizes, key: str) -> List[Dict[str, Instances]]:
    """Rescale each image's results to its requested "height"/"width" (default: the
    size the network saw)."""
    processed = []
    for results, inputs, image_size in zip(instances, batched_inputs, image_sizes):
        height = inputs.get("height", image_size[0])
        width = inputs.get("width", image_size[1])
        processed.append({key: detector_postprocess(results, height, width)})
    return processed


def _backbone_and_proposals_from_config(cfg) -> Dict:
    backbone = build_backbone(cfg)
    return {
        "backbone": backbone,
        "proposal_generator": build_proposal_generator(cfg, backbone.output_shape()),
        "pixel_mean": cfg.MODEL.PIXEL_MEAN,
        "pixel_std": cfg.MODEL.PIXEL_STD,
    }


def _gt_instances(batched_inputs, device) -> Optional[List[Instances]]:
    if "instances" in batched_inputs[0]:
        return [x["instances"].to(device) for x in batched_inputs]
    if "targets" in batched_inputs[0]:
        log_first_n(logging.WARN, "'targets' in the model inputs is now renamed to 'instances'!", n=10)
        return [x["targets"].to(device) for x in batched_inputs]
    return None


@META_ARCH_REGISTRY.register()
class GeneralizedRCNN(nn.Module):
    """Two-stage detector: a backbone computes features, a proposal generator proposes
    regions, and ROI heads classify and refine them (Faster / Mask / Keypoint R-CNN)."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: Optional[nn.Module],
        roi_heads: nn.Module,
        pixel_mean: Tuple[float],
        pixel_std: Tuple[float],
        input_format: Optional[str] = None,
        vis_period: int = 0,
        channels_last: bool = True,
    ):
        """
        Args:
            backbone: the feature extractor.
            proposal_generator: makes proposals from the features; None to take
                precomputed "proposals" from the inputs.
            roi_heads: per-region prediction heads.
            pixel_mean, pixel_std: per-channel input normalization.
            input_format: channel order of the input images ("BGR", "RGB"...), used
                to draw them when visualizing.
            vis_period: store a visualization of proposals every this many training
                iterations (0 disables it).
            channels_last: on GPUs whose cuDNN computes in NHWC (Volta and newer),
                run the backbone in channels-last memory format: the same convolutions
                without two layout transposes each. The features then reach the
                proposal generator and ROI heads with NHWC strides (use ``reshape``,
                not ``view``, on them). CPU inputs are never converted. Not a config
                key (configs keep upstream's keys): set ``model.channels_last = False``
                to turn it off.
        """
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.input_format = input_format
        self.vis_period = vis_period
        self.channels_last = channels_last
        if vis_period > 0 and input_format is None:
            raise ValueError("GeneralizedRCNN: input_format is required when vis_period > 0")
        _register_pixel_stats(self, pixel_mean, pixel_std)

    @classmethod
    def from_config(cls, cfg):
        ret = _backbone_and_proposals_from_config(cfg)
        ret.update(
            roi_heads=build_roi_heads(cfg, ret["backbone"].output_shape()),
            input_format=cfg.INPUT.FORMAT,
            vis_period=cfg.VIS_PERIOD,
        )
        return ret

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _move_to_current_device(self, x):
        return move_device_like(x, self.pixel_mean)

    def _backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():  # scripted models keep the input's layout
            if self.channels_last and _use_channels_last(x):
                return x.contiguous(memory_format=torch.channels_last)
        return x

    def visualize_training(self, batched_inputs: List[Dict], proposals: List[Instances]) -> None:
        """Store in the event storage the first image of the batch with its ground-truth
        boxes (left) beside its top 20 proposals (right)."""
        from detectron2.data.detection_utils import convert_image_to_rgb
        from detectron2.utils.visualizer import Visualizer

        storage = get_event_storage()
        max_vis_prop = 20
        inputs, prop = batched_inputs[0], proposals[0]
        img = convert_image_to_rgb(inputs["image"].permute(1, 2, 0), self.input_format)
        anno_img = Visualizer(img, None).overlay_instances(boxes=inputs["instances"].gt_boxes).get_image()
        num_props = min(len(prop.proposal_boxes), max_vis_prop)
        prop_boxes = prop.proposal_boxes[0:num_props].tensor.cpu().numpy()
        prop_img = Visualizer(img, None).overlay_instances(boxes=prop_boxes).get_image()
        vis_img = np.concatenate((anno_img, prop_img), axis=1).transpose(2, 0, 1)
        storage.put_image("Left: GT bounding boxes;  Right: Predicted proposals", vis_img)

    def _proposals(
        self,
        batched_inputs: List[Dict[str, torch.Tensor]],
        images: ImageList,
        features: Dict[str, torch.Tensor],
        gt_instances: Optional[List[Instances]],
    ):
        if self.proposal_generator is not None:
            return self.proposal_generator(images, features, gt_instances)
        else:  # an `else`: TorchScript then skips this branch when the generator exists
            return self._given_proposals(batched_inputs), {}

    @torch.jit.unused
    def _given_proposals(self, batched_inputs: List[Dict[str, Any]]) -> List[Instances]:
        if "proposals" not in batched_inputs[0]:
            raise ValueError("GeneralizedRCNN without a proposal generator needs 'proposals' in every input")
        return [x["proposals"].to(self.device) for x in batched_inputs]

    def forward(self, batched_inputs: List[Dict[str, torch.Tensor]]):
        """
        Args:
            batched_inputs: one dict per image, as the DatasetMapper makes them:
                "image" (C, H, W) tensor in input_format; in training "instances"
                (ground truth); optionally "proposals", and "height"/"width" of the
                wanted output resolution (inference).

        Returns:
            in training, a dict of losses; at inference, what inference() returns.
        """
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        gt_instances = _gt_instances(batched_inputs, self.device)
        features = self.backbone(self._backbone_input(images.tensor))
        proposals, proposal_losses = self._proposals(batched_inputs, images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        if self.vis_period > 0 and get_event_storage().iter % self.vis_period == 0:
            self.visualize_training(batched_inputs, proposals)
        losses = {}
        losses.update(detector_losses)
        losses.update(proposal_losses)
        return losses

    def inference(
        self,
        batched_inputs: List[Dict[str, torch.Tensor]],
        detected_instances: Optional[List[Instances]] = None,
        do_postprocess: bool = True,
    ):
        """
        Args:
            batched_inputs: as in forward().
            detected_instances: if given, per image Instances with ``pred_boxes`` and
                ``pred_classes``: only the remaining heads (e.g. mask) run on them.
            do_postprocess: rescale the outputs to the requested sizes.

        Returns:
            with do_postprocess, a list of {"instances": Instances} (one per image);
            otherwise the ROI heads' Instances at the network's input resolution.
        """
        if self.training:
            raise RuntimeError("GeneralizedRCNN.inference needs the model in eval mode (call model.eval())")
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(self._backbone_input(images.tensor))
        if detected_instances is None:
            proposals, _ = self._proposals(batched_inputs, images, features, None)
            results, _ = self.roi_heads(images, features, proposals, None)
        else:
            detected_instances = [x.to(self.device) for x in detected_instances]
            results = self.roi_heads.forward_with_given_boxes(features, detected_instances)
        if not do_postprocess:
            return results
        if torch.jit.is_scripting():
            raise AssertionError("Scripting is not supported for postprocess.")
        else:
            return GeneralizedRCNN._postprocess(results, batched_inputs, images.image_sizes)

    def preprocess_image(self, batched_inputs: List[Dict[str, torch.Tensor]]) -> ImageList:
        """Normalize, pad and batch the input images."""
        # The body of _preprocess, inline: TorchScript cannot pass a module to a function.
        if not torch.jit.is_scripting():  # validation TorchScript cannot compile
            _check_batched_inputs(batched_inputs, self.pixel_mean.shape[0])
        images = [move_device_like(x["image"], self.pixel_mean) for x in batched_inputs]
        images = [(x - self.pixel_mean) / self.pixel_std for x in images]
        return ImageList.from_tensors(
            images,
            self.backbone.size_divisibility,
            padding_constraints=self.backbone.padding_constraints,
        )

    @staticmethod
    def _postprocess(instances, batched_inputs: List[Dict[str, torch.Tensor]], image_sizes):
        """Rescale the outputs to the resolution each input asks for."""
        return _postprocess_all(instances, batched_inputs, image_sizes, "instances")


@META_ARCH_REGISTRY.register()
class ProposalNetwork(nn.Module):
    """A backbone and a proposal generator alone: outputs region proposals."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module,
        pixel_mean: Tuple[float],
        pixel_std: Tuple[float],
    ):
        """
        Args:
            backbone: the feature extractor.
            proposal_generator: makes proposals from the features.
            pixel_mean, pixel_std: per-channel input normalization.
        """
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        _register_pixel_stats(self, pixel_mean, pixel_std)

    @classmethod
    def from_config(cls, cfg):
        return _backbone_and_proposals_from_config(cfg)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _move_to_current_device(self, x):
        return move_device_like(x, self.pixel_mean)

    def forward(self, batched_inputs: List[Dict[str, torch.Tensor]]):
        """
        Args:
            batched_inputs: as in GeneralizedRCNN.forward.

        Returns:
            in training, the proposal generator's losses; at inference, per image
            {"proposals": Instances} rescaled to the requested "height"/"width".
        """
        images = _preprocess(self, batched_inputs)
        features = self.backbone(images.tensor)
        gt_instances = _gt_instances(batched_inputs, self.device)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        if self.training:
            return proposal_losses
        return _postprocess_all(proposals, batched_inputs, images.image_sizes, "proposals")
