"""Panoptic-DeepLab (Cheng et al., 2020): a DeepLabV3+ semantic branch and a class-
agnostic instance branch (center heatmap + center offsets) on a shared backbone."""
from typing import Callable, Dict, List, Optional, Union

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.layers import Conv2d, DepthwiseSeparableConv2d, ShapeSpec, get_norm
from detectron2.layers._weight_init import c2_xavier_fill
from detectron2.modeling import META_ARCH_REGISTRY, SEM_SEG_HEADS_REGISTRY, build_backbone, build_sem_seg_head
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import BitMasks, ImageList, Instances
from detectron2.utils.registry import Registry

from .._errors import ProjectConfigError
from ..deeplab import DeepLabV3PlusHead
from ..deeplab.loss import DeepLabCE
from ..deeplab.semantic_seg import _crop_size
from .post_processing import get_panoptic_segmentation

__all__ = [
    "PanopticDeepLab",
    "INS_EMBED_BRANCHES_REGISTRY",
    "build_ins_embed_branch",
    "PanopticDeepLabSemSegHead",
    "PanopticDeepLabInsEmbedHead",
]

INS_EMBED_BRANCHES_REGISTRY = Registry("INS_EMBED_BRANCHES")
INS_EMBED_BRANCHES_REGISTRY.__doc__ = """
Registry for instance embedding branches, which make instance embedding predictions
from feature maps. A registered class is called as ``cls(cfg, input_shape)``.
"""


def _two_convs(in_channels: int, out_channels: int, norm, use_bias: bool) -> nn.Sequential:
    """3x3 conv (in -> in) and 3x3 conv (in -> out), each with norm and ReLU."""
    convs = nn.Sequential(
        Conv2d(in_channels, in_channels, kernel_size=3, padding=1, bias=use_bias, norm=get_norm(norm, in_channels), activation=F.relu),
        Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=use_bias, norm=get_norm(norm, out_channels), activation=F.relu),
    )
    c2_xavier_fill(convs[0])
    c2_xavier_fill(convs[1])
    return convs


def _ds_conv(in_channels: int, out_channels: int, norm) -> DepthwiseSeparableConv2d:
    # one 5x5 depthwise-separable conv has the receptive field of the two 3x3 convs
    return DepthwiseSeparableConv2d(
        in_channels, out_channels, kernel_size=5, padding=2, norm1=norm, activation1=F.relu, norm2=norm, activation2=F.relu
    )


def _weighted_mean(loss: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    loss = loss * weights
    total = weights.sum()
    return loss.sum() / total if total > 0 else loss.sum() * 0


@META_ARCH_REGISTRY.register()
class PanopticDeepLab(nn.Module):
    """Main class for panoptic segmentation architectures. Inference returns, per
    image, "sem_seg" logits, "panoptic_seg" (ids, None) with ids
    ``class * label_divisor + instance`` (-1 void), and optionally "instances"."""

    def __init__(self, cfg):
        super().__init__()
        self.backbone = build_backbone(cfg)
        self.sem_seg_head = build_sem_seg_head(cfg, self.backbone.output_shape())
        self.ins_embed_head = build_ins_embed_branch(cfg, self.backbone.output_shape())
        self.register_buffer("pixel_mean", torch.tensor(cfg.MODEL.PIXEL_MEAN).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD).view(-1, 1, 1), False)
        self.meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
        pd = cfg.MODEL.PANOPTIC_DEEPLAB
        self.stuff_area = pd.STUFF_AREA
        self.threshold = pd.CENTER_THRESHOLD
        self.nms_kernel = pd.NMS_KERNEL
        self.top_k = pd.TOP_K_INSTANCE
        self.predict_instances = pd.PREDICT_INSTANCES
        self.use_depthwise_separable_conv = pd.USE_DEPTHWISE_SEPARABLE_CONV
        if cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV != pd.USE_DEPTHWISE_SEPARABLE_CONV:
            raise ProjectConfigError(
                "MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV and MODEL.PANOPTIC_DEEPLAB."
                "USE_DEPTHWISE_SEPARABLE_CONV must be equal, got "
                f"{cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV} and {pd.USE_DEPTHWISE_SEPARABLE_CONV}"
            )
        self.size_divisibility = pd.SIZE_DIVISIBILITY
        self.benchmark_network_speed = pd.BENCHMARK_NETWORK_SPEED

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _batch(self, batched_inputs, key: str, size_divisibility: int, pad_value: float = 0.0) -> torch.Tensor:
        return ImageList.from_tensors([x[key].to(self.device) for x in batched_inputs], size_divisibility, pad_value).tensor

    def forward(self, batched_inputs: List[Dict[str, torch.Tensor]]):
        """
        Args:
            batched_inputs: per image "image" (C, H, W); in training the targets of
                PanopticDeeplabDatasetMapper ("sem_seg", "sem_seg_weights", "center",
                "center_weights", "offset", "offset_weights"); optional "height"/"width".

        Returns:
            training: dict of losses. Inference: a list of dicts (see the class doc).
        """
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        # a fixed divisibility keeps ASPP's pooling window valid for every image
        size_div = self.backbone.size_divisibility if self.size_divisibility < 0 else self.size_divisibility
        images = ImageList.from_tensors(images, size_div)
        features = self.backbone(images.tensor)

        targets = weights = None
        if "sem_seg" in batched_inputs[0]:
            targets = self._batch(batched_inputs, "sem_seg", size_div, self.sem_seg_head.ignore_value)
            if "sem_seg_weights" in batched_inputs[0]:
                weights = self._batch(batched_inputs, "sem_seg_weights", size_div)
        if self.training and targets is None:
            raise ValueError("PanopticDeepLab: training needs 'sem_seg' (use PanopticDeeplabDatasetMapper)")
        losses = {}
        sem_seg_results, sem_seg_losses = self.sem_seg_head(features, targets, weights)
        losses.update(sem_seg_losses)

        center_targets = center_weights = offset_targets = offset_weights = None
        if "center" in batched_inputs[0] and "offset" in batched_inputs[0]:
            center_targets = self._batch(batched_inputs, "center", size_div).unsqueeze(1)
            center_weights = self._batch(batched_inputs, "center_weights", size_div)
            offset_targets = self._batch(batched_inputs, "offset", size_div)
            offset_weights = self._batch(batched_inputs, "offset_weights", size_div)
        elif self.training:
            raise ValueError("PanopticDeepLab: training needs 'center' and 'offset' targets")
        center_results, offset_results, center_losses, offset_losses = self.ins_embed_head(
            features, center_targets, center_weights, offset_targets, offset_weights
        )
        losses.update(center_losses)
        losses.update(offset_losses)
        if self.training:
            return losses
        if self.benchmark_network_speed:
            return []
        return [
            self._postprocess(s, c, o, x, size)
            for s, c, o, x, size in zip(sem_seg_results, center_results, offset_results, batched_inputs, images.image_sizes)
        ]

    def _postprocess(self, sem_seg, center, offset, input_per_image, image_size) -> Dict:
        height = input_per_image.get("height", image_size[0])
        width = input_per_image.get("width", image_size[1])
        r = sem_seg_postprocess(sem_seg, image_size, height, width)
        c = sem_seg_postprocess(center, image_size, height, width)
        o = sem_seg_postprocess(offset, image_size, height, width)
        thing_ids = list(self.meta.thing_dataset_id_to_contiguous_id.values())
        panoptic, _ = get_panoptic_segmentation(
            r.argmax(dim=0, keepdim=True),
            c,
            o,
            thing_ids=thing_ids,
            label_divisor=self.meta.label_divisor,
            stuff_area=self.stuff_area,
            void_label=-1,
            threshold=self.threshold,
            nms_kernel=self.nms_kernel,
            top_k=self.top_k,
        )
        panoptic = panoptic.squeeze(0)
        result = {"sem_seg": r, "panoptic_seg": (panoptic, None)}
        if self.predict_instances:
            instances = self._instances(panoptic, F.softmax(r, dim=0), c, thing_ids, (height, width))
            if instances:
                result["instances"] = Instances.cat(instances)
        return result

    def _instances(self, panoptic, semantic_prob, center, thing_ids, image_size) -> List[Instances]:
        """One Instances per thing segment, scored by mean class probability times the
        center heatmap at the segment's mass center."""
        out = []
        for label in np.unique(panoptic.cpu().numpy()):
            if label == -1:
                continue
            pred_class = int(label) // self.meta.label_divisor
            if pred_class not in thing_ids:
                continue
            mask = panoptic == int(label)
            inst = Instances(image_size)
            inst.pred_classes = torch.tensor([pred_class], device=panoptic.device)
            inst.pred_masks = mask.unsqueeze(0)
            sem_score = torch.mean(semantic_prob[pred_class][mask])
            idx = torch.nonzero(mask).float()
            cy, cx = torch.mean(idx[:, 0]), torch.mean(idx[:, 1])
            center_score = center[0, int(cy.item()), int(cx.item())]
            inst.scores = torch.tensor([sem_score * center_score], device=panoptic.device)
            inst.pred_boxes = BitMasks(inst.pred_masks).get_bounding_boxes()
            out.append(inst)
        return out


@SEM_SEG_HEADS_REGISTRY.register()
class PanopticDeepLabSemSegHead(DeepLabV3PlusHead):
    """The semantic branch: a decoder-only DeepLabV3+ head followed by a ``head``
    (two 3x3 convs, or one 5x5 depthwise-separable conv) and a 1x1 ``predictor``."""

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        decoder_channels: List[int],
        norm: Union[str, Callable],
        head_channels: int,
        loss_weight: float,
        loss_type: str,
        loss_top_k: float,
        ignore_value: int,
        num_classes: int,
        **kwargs,
    ):
        """
        Args:
            head_channels: output channels of the head before the predictor.
            loss_top_k: fraction of pixels kept by the hard-pixel-mining loss.
            Others: see DeepLabV3PlusHead (which is built decoder-only here).
        """
        super().__init__(input_shape, decoder_channels=decoder_channels, norm=norm, ignore_value=ignore_value, **kwargs)
        self.loss_weight = loss_weight
        use_bias = norm == ""
        if self.use_depthwise_separable_conv:
            self.head = _ds_conv(decoder_channels[0], head_channels, norm)
        else:
            self.head = _two_convs(decoder_channels[0], head_channels, norm, use_bias)
        self.predictor = Conv2d(head_channels, num_classes, kernel_size=1)
        nn.init.normal_(self.predictor.weight, 0, 0.001)
        nn.init.constant_(self.predictor.bias, 0)
        if loss_type == "cross_entropy":
            self.loss = nn.CrossEntropyLoss(reduction="mean", ignore_index=ignore_value)
        elif loss_type == "hard_pixel_mining":
            self.loss = DeepLabCE(ignore_label=ignore_value, top_k_percent_pixels=loss_top_k)
        else:
            raise ValueError(f"loss_type must be 'cross_entropy' or 'hard_pixel_mining', got {loss_type!r}")

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        ret["head_channels"] = cfg.MODEL.SEM_SEG_HEAD.HEAD_CHANNELS
        ret["loss_top_k"] = cfg.MODEL.SEM_SEG_HEAD.LOSS_TOP_K
        return ret

    def forward(self, features: Dict[str, torch.Tensor], targets: Optional[torch.Tensor] = None, weights: Optional[torch.Tensor] = None):
        y = self.layers(features)
        if self.training:
            if targets is None:
                raise ValueError("PanopticDeepLabSemSegHead: training needs `targets`")
            return None, self.losses(y, targets, weights)
        y = F.interpolate(y, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        return y, {}

    def layers(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        y = super().layers(features)  # decoder-only: the decoder features
        return self.predictor(self.head(y))

    def losses(self, predictions, targets, weights=None) -> Dict[str, torch.Tensor]:
        predictions = F.interpolate(predictions, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        if isinstance(self.loss, DeepLabCE):
            loss = self.loss(predictions, targets, weights)
        else:
            loss = self.loss(predictions, targets)
        return {"loss_sem_seg": loss * self.loss_weight}


def build_ins_embed_branch(cfg, input_shape: Dict[str, ShapeSpec]) -> nn.Module:
    """Build the instance embedding branch named by ``cfg.MODEL.INS_EMBED_HEAD.NAME``."""
    return INS_EMBED_BRANCHES_REGISTRY.get(cfg.MODEL.INS_EMBED_HEAD.NAME)(cfg, input_shape)


@INS_EMBED_BRANCHES_REGISTRY.register()
class PanopticDeepLabInsEmbedHead(DeepLabV3PlusHead):
    """The instance branch: a decoder-only DeepLabV3+ head, then a center head +
    1-channel ``center_predictor`` (MSE loss) and an offset head + 2-channel
    ``offset_predictor`` (L1 loss, in pixels)."""

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        decoder_channels: List[int],
        norm: Union[str, Callable],
        head_channels: int,
        center_loss_weight: float,
        offset_loss_weight: float,
        **kwargs,
    ):
        super().__init__(input_shape, decoder_channels=decoder_channels, norm=norm, **kwargs)
        self.center_loss_weight = center_loss_weight
        self.offset_loss_weight = offset_loss_weight
        use_bias = norm == ""
        self.center_head = _two_convs(decoder_channels[0], head_channels, norm, use_bias)
        self.center_predictor = Conv2d(head_channels, 1, kernel_size=1)
        nn.init.normal_(self.center_predictor.weight, 0, 0.001)
        nn.init.constant_(self.center_predictor.bias, 0)
        if self.use_depthwise_separable_conv:
            self.offset_head = _ds_conv(decoder_channels[0], head_channels, norm)
        else:
            self.offset_head = _two_convs(decoder_channels[0], head_channels, norm, use_bias)
        self.offset_predictor = Conv2d(head_channels, 2, kernel_size=1)
        nn.init.normal_(self.offset_predictor.weight, 0, 0.001)
        nn.init.constant_(self.offset_predictor.bias, 0)
        self.center_loss = nn.MSELoss(reduction="none")
        self.offset_loss = nn.L1Loss(reduction="none")

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        head = cfg.MODEL.INS_EMBED_HEAD
        missing = [f for f in head.IN_FEATURES if f not in input_shape]
        if missing:
            raise ProjectConfigError(f"MODEL.INS_EMBED_HEAD.IN_FEATURES has {missing}, the backbone gives {sorted(input_shape)}")
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "project_channels": head.PROJECT_CHANNELS,
            "aspp_dilations": head.ASPP_DILATIONS,
            "aspp_dropout": head.ASPP_DROPOUT,
            "decoder_channels": [head.CONVS_DIM] * (len(head.IN_FEATURES) - 1) + [head.ASPP_CHANNELS],
            "common_stride": head.COMMON_STRIDE,
            "norm": head.NORM,
            "train_size": _crop_size(cfg),
            "head_channels": head.HEAD_CHANNELS,
            "center_loss_weight": head.CENTER_LOSS_WEIGHT,
            "offset_loss_weight": head.OFFSET_LOSS_WEIGHT,
            "use_depthwise_separable_conv": cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV,
        }

    def forward(self, features, center_targets=None, center_weights=None, offset_targets=None, offset_weights=None):
        center, offset = self.layers(features)
        if self.training:
            if center_targets is None or offset_targets is None:
                raise ValueError("PanopticDeepLabInsEmbedHead: training needs center and offset targets")
            return (
                None,
                None,
                self.center_losses(center, center_targets, center_weights),
                self.offset_losses(offset, offset_targets, offset_weights),
            )
        center = F.interpolate(center, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        # offsets are in pixels of the feature map: scale them with the upsampling
        offset = F.interpolate(offset, scale_factor=self.common_stride, mode="bilinear", align_corners=False) * self.common_stride
        return center, offset, {}, {}

    def layers(self, features: Dict[str, torch.Tensor]):
        y = super().layers(features)
        center = self.center_predictor(self.center_head(y))
        offset = self.offset_predictor(self.offset_head(y))
        return center, offset

    def center_losses(self, predictions, targets, weights) -> Dict[str, torch.Tensor]:
        predictions = F.interpolate(predictions, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        loss = _weighted_mean(self.center_loss(predictions, targets), weights)
        return {"loss_center": loss * self.center_loss_weight}

    def offset_losses(self, predictions, targets, weights) -> Dict[str, torch.Tensor]:
        predictions = F.interpolate(predictions, scale_factor=self.common_stride, mode="bilinear", align_corners=False) * self.common_stride
        loss = _weighted_mean(self.offset_loss(predictions, targets), weights)
        return {"loss_offset": loss * self.offset_loss_weight}
