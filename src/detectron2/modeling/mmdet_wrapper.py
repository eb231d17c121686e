"""Wrappers that run mmdetection (2.x) backbones and detectors inside detectron2.

mmdet is optional: it is imported only to build modules from mmdet config dicts, or to
convert ground-truth masks for training; those paths raise an ImportError naming mmdet
(and how to install it) when it is absent.
"""
import itertools
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from detectron2.layers import ShapeSpec
from detectron2.structures import BitMasks, Boxes, ImageList, Instances
from detectron2.utils.events import get_event_storage

from .backbone import Backbone

__all__ = ["MMDetBackbone", "MMDetDetector"]

logger = logging.getLogger(__name__)

_MMDET_MISSING = (
    "{what} needs mmdetection, which is not installed (or fails to import: {err}). "
    "Install mmdet 2.x with its mmcv (see https://github.com/open-mmlab/mmdetection), "
    "or pass an already built nn.Module instead of a config dict."
)


def _import_mmdet(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(_MMDET_MISSING.format(what=what, err=e)) from e


def _to_container(cfg: Mapping) -> Any:
    """mmdet checks for its own dict type: convert omegaconf/plain dicts to mmcv's ConfigDict."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    mmcv_utils = _import_mmdet("mmcv.utils", "Building an mmdet module from a config")
    return mmcv_utils.ConfigDict(cfg)


def _build(kind: str, cfg: Mapping) -> nn.Module:
    models = _import_mmdet("mmdet.models", f"Building an mmdet {kind} from a config dict")
    return getattr(models, f"build_{kind}")(_to_container(cfg))


class MMDetBackbone(Backbone):
    """An mmdet backbone (and optional neck), which return a list of feature maps, as a
    detectron2 Backbone, which returns a dict of them."""

    def __init__(
        self,
        backbone: Union[nn.Module, Mapping],
        neck: Union[nn.Module, Mapping, None] = None,
        *,
        pretrained_backbone: Optional[str] = None,
        output_shapes: List[ShapeSpec],
        output_names: Optional[List[str]] = None,
    ):
        """
        Args:
            backbone: a module, or an mmdet config dict of one, mapping an (N, C, H, W)
                image to a sequence of feature maps.
            neck: optional module (or mmdet config dict) applied to those maps.
            pretrained_backbone: weights given to the backbone's ``init_weights`` (e.g.
                "torchvision://resnet50"), as mmdet does.
            output_shapes: ShapeSpec (channels, stride) of every output.
            output_names: names of the outputs; default "out0", "out1", ...
        """
        super().__init__()
        if isinstance(backbone, Mapping):
            backbone = _build("backbone", backbone)
        if isinstance(neck, Mapping):
            neck = _build("neck", neck)
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"MMDetBackbone: backbone must be an nn.Module or a config dict, got {type(backbone)}")
        self.backbone = backbone
        self.neck = neck
        # mmdet modules initialize their weights (and train mode) only when told to.
        logger.info(f"Initializing mmdet backbone weights: {pretrained_backbone} ...")
        if hasattr(self.backbone, "init_weights"):
            self.backbone.init_weights(pretrained_backbone) if pretrained_backbone else self.backbone.init_weights()
        self.backbone.train()
        if self.neck is not None:
            necks = self.neck if isinstance(self.neck, nn.Sequential) else [self.neck]
            for m in necks:
                if hasattr(m, "init_weights"):
                    m.init_weights()
            self.neck.train()
        if not output_names:
            output_names = [f"out{i}" for i in range(len(output_shapes))]
        if len(output_names) != len(output_shapes):
            raise ValueError(
                f"MMDetBackbone: {len(output_names)} output_names for {len(output_shapes)} output_shapes"
            )
        self._output_shapes = list(output_shapes)
        self._output_names = list(output_names)
        self._out_features = list(output_names)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        outs = self.backbone(x)
        if self.neck is not None:
            outs = self.neck(outs)
        if not isinstance(outs, (list, tuple)):
            raise AssertionError(f"mmdet backbone should return a list/tuple of tensors, got {type(outs)}")
        if len(outs) != len(self._output_shapes):
            raise ValueError(
                "Length of output_shapes does not match outputs from the mmdet backbone: "
                f"{len(outs)} != {len(self._output_shapes)}"
            )
        return dict(zip(self._output_names, outs))

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return dict(zip(self._output_names, self._output_shapes))


class MMDetDetector(nn.Module):
    """An mmdet (2.x) detector with detectron2's input and output formats: takes the
    list of dicts of a DatasetMapper, returns losses in training and
    ``[{"instances": Instances}]`` at inference."""

    def __init__(
        self,
        detector: Union[nn.Module, Mapping],
        *,
        size_divisibility: int = 32,
        pixel_mean: Tuple[float, ...],
        pixel_std: Tuple[float, ...],
    ):
        """
        Args:
            detector: an mmdet detector module, or an mmdet config dict of one.
            size_divisibility: pad the batch to a multiple of this (mmdet's default 32).
            pixel_mean, pixel_std: per-channel normalization of the input images.
        """
        super().__init__()
        if isinstance(detector, Mapping):
            detector = _build("detector", detector)
        self.detector = detector
        self.size_divisibility = size_divisibility
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        if self.pixel_mean.shape != self.pixel_std.shape:
            raise AssertionError(f"{self.pixel_mean} and {self.pixel_std} have different shapes!")

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def forward(self, batched_inputs: List[Dict[str, Tensor]]):
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        images = ImageList.from_tensors(images, size_divisibility=self.size_divisibility).tensor
        rescale_set = {"height" in x for x in batched_inputs}
        if len(rescale_set) != 1:
            raise ValueError("Some inputs have original height/width, but some don't!")
        rescale = rescale_set.pop()
        metas, output_shapes = _image_metas(batched_inputs, images.shape[-2:], rescale)
        if self.training:
            return _parse_losses(self._forward_train(images, metas, batched_inputs))
        results = self.detector.simple_test(images, metas, rescale=rescale)
        return [{"instances": _convert_mmdet_result(r, s)} for r, s in zip(results, output_shapes)]

    def _forward_train(self, images: Tensor, metas: List[dict], batched_inputs: List[dict]) -> Dict[str, Any]:
        gt = [x["instances"].to(self.device) for x in batched_inputs]
        boxes, classes = [x.gt_boxes.tensor for x in gt], [x.gt_classes for x in gt]
        if not gt[0].has("gt_masks"):
            return self.detector.forward_train(images, metas, boxes, classes)
        core = _import_mmdet("mmdet.core", "Training an mmdet detector with masks")

        def convert(m, size):
            if isinstance(m, BitMasks):
                return core.BitmapMasks(m.tensor.cpu().numpy(), size[0], size[1])
            return core.PolygonMasks(m.polygons, size[0], size[1])

        masks = [convert(x.gt_masks, x.image_size) for x in gt]
        return self.detector.forward_train(images, metas, boxes, classes, gt_masks=masks)


def _image_metas(
    batched_inputs: List[dict], padded_hw: Sequence[int], rescale: bool
) -> Tuple[List[dict], List[Tuple[int, int]]]:
    """mmdet's per-image ``img_metas`` and the size each image's outputs are wanted at."""
    metas, output_shapes = [], []
    for x in batched_inputs:
        c, h, w = x["image"].shape
        meta = {"img_shape": (h, w, c), "ori_shape": (h, w, c), "flip": False}
        if rescale:
            meta["scale_factor"] = np.array([w / x["width"], h / x["height"]] * 2, dtype="float32")
            meta["ori_shape"] = (x["height"], x["width"], c)
            output_shapes.append((x["height"], x["width"]))
        else:
            meta["scale_factor"] = 1.0
            output_shapes.append((h, w))
        meta["pad_shape"] = (int(padded_hw[0]), int(padded_hw[1]), c)
        metas.append(meta)
    return metas, output_shapes


def _convert_mmdet_result(result: Any, shape: Tuple[int, int]) -> Instances:
    """mmdet's per-class arrays of (x0, y0, x1, y1, score) rows (and per-class mask
    lists) as Instances."""
    if isinstance(result, tuple):
        bbox_result, segm_result = result
        if isinstance(segm_result, tuple):  # (masks, mask scores)
            segm_result = segm_result[0]
    else:
        bbox_result, segm_result = result, None
    rows = torch.from_numpy(np.vstack(bbox_result)).reshape(-1, 5)
    labels = torch.cat(
        [torch.full((len(b),), i, dtype=torch.int32) for i, b in enumerate(bbox_result)]
    ) if len(bbox_result) else torch.zeros(0, dtype=torch.int32)
    inst = Instances(shape)
    inst.pred_boxes = Boxes(rows[:, :4])
    inst.scores = rows[:, 4]
    inst.pred_classes = labels
    if segm_result is not None and len(labels) > 0:
        masks = [torch.from_numpy(m) if isinstance(m, np.ndarray) else m for m in itertools.chain(*segm_result)]
        inst.pred_masks = torch.stack(masks, dim=0)
    return inst


def _parse_losses(losses: Dict[str, Any]) -> Dict[str, Tensor]:
    """Mean of each loss (lists are summed); entries without "loss" in their name are
    metrics: they go to the event storage and are not returned."""
    out: Dict[str, Tensor] = OrderedDict()
    for name, value in losses.items():
        if isinstance(value, Tensor):
            reduced = value.mean()
        elif isinstance(value, list):
            reduced = sum(v.mean() for v in value)
        else:
            raise TypeError(f"{name} is not a tensor or list of tensors")
        if "loss" in name:
            out[name] = reduced
        else:
            get_event_storage().put_scalar(name, reduced.detach().cpu().item())
    return out
