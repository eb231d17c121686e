"""DeepLabV3 and DeepLabV3+ semantic segmentation heads."""
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import ASPP, Conv2d, DepthwiseSeparableConv2d, ShapeSpec, get_norm
from detectron2.layers._weight_init import c2_xavier_fill
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY

from .._errors import ProjectConfigError
from .loss import DeepLabCE

__all__ = ["DeepLabV3PlusHead", "DeepLabV3Head"]


def _build_loss(loss_type: str, ignore_value: int) -> nn.Module:
    if loss_type == "cross_entropy":
        return nn.CrossEntropyLoss(reduction="mean", ignore_index=ignore_value)
    if loss_type == "hard_pixel_mining":
        return DeepLabCE(ignore_label=ignore_value, top_k_percent_pixels=0.2)
    raise ValueError(f"loss_type must be 'cross_entropy' or 'hard_pixel_mining', got {loss_type!r}")


def _aspp_pool_kernel(train_size: Optional[Tuple[int, int]], stride: int) -> Optional[Tuple[int, int]]:
    """ASPP's image-pooling window for fixed-size training crops (None: global pooling)."""
    if train_size is None:
        return None
    h, w = train_size
    if h % stride or w % stride:
        raise ValueError(f"the crop size {tuple(train_size)} must be divisible by the encoder stride {stride}")
    return (h // stride, w // stride)


def _crop_size(cfg) -> Optional[Tuple[int, int]]:
    if not cfg.INPUT.CROP.ENABLED:
        return None
    if cfg.INPUT.CROP.TYPE != "absolute":
        raise ProjectConfigError(f"DeepLab needs INPUT.CROP.TYPE 'absolute' when cropping, got {cfg.INPUT.CROP.TYPE!r}")
    return tuple(cfg.INPUT.CROP.SIZE)


@SEM_SEG_HEADS_REGISTRY.register()
class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+ (Chen et al., 2018): ASPP on the coarsest feature, then a decoder that
    upsamples and fuses with projected finer features down to ``common_stride``.
    With ``num_classes=None`` it is decoder-only and returns the decoder features."""

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        project_channels: List[int],
        aspp_dilations: List[int],
        aspp_dropout: float,
        decoder_channels: List[int],
        common_stride: int,
        norm: Union[str, Callable],
        train_size: Optional[Tuple],
        loss_weight: float = 1.0,
        loss_type: str = "cross_entropy",
        ignore_value: int = -1,
        num_classes: Optional[int] = None,
        use_depthwise_separable_conv: bool = False,
    ):
        """
        Args:
            input_shape: the features to use, from finest to coarsest once sorted by stride.
            project_channels: channels of the 1x1 projection of each feature but the last.
            aspp_dilations, aspp_dropout: of the ASPP on the coarsest feature.
            decoder_channels: output channels of each decoder stage (the last is ASPP's).
            common_stride: output stride of the prediction.
            norm: normalization of all convs.
            train_size: fixed (h, w) training crop, fixing ASPP's pooling window; or None.
            loss_weight, loss_type, ignore_value: the loss.
            num_classes: classes to predict; None for a decoder-only head.
            use_depthwise_separable_conv: one 5x5 depthwise-separable conv replaces the
                two 3x3 convs of each fusion (Panoptic-DeepLab), also inside ASPP.
        """
        super().__init__()
        shapes = sorted(input_shape.items(), key=lambda x: x[1].stride)
        self.in_features = [k for k, _ in shapes]
        in_channels = [v.channels for _, v in shapes]
        in_strides = [v.stride for _, v in shapes]
        aspp_channels = decoder_channels[-1]
        self.ignore_value = ignore_value
        self.common_stride = common_stride
        self.loss_weight = loss_weight
        self.loss_type = loss_type
        self.decoder_only = num_classes is None
        self.use_depthwise_separable_conv = use_depthwise_separable_conv
        if len(project_channels) != len(self.in_features) - 1:
            raise ProjectConfigError(
                f"DeepLabV3PlusHead: expected {len(self.in_features) - 1} project_channels, got {len(project_channels)}"
            )
        if len(decoder_channels) != len(self.in_features):
            raise ProjectConfigError(
                f"DeepLabV3PlusHead: expected {len(self.in_features)} decoder_channels, got {len(decoder_channels)}"
            )

        self.decoder = nn.ModuleDict()
        use_bias = norm == ""
        for idx, in_channel in enumerate(in_channels):
            stage = nn.ModuleDict()
            if idx == len(self.in_features) - 1:
                project_conv = ASPP(
                    in_channel,
                    aspp_channels,
                    aspp_dilations,
                    norm=norm,
                    activation=F.relu,
                    pool_kernel_size=_aspp_pool_kernel(train_size, in_strides[-1]),
                    dropout=aspp_dropout,
                    use_depthwise_separable_conv=use_depthwise_separable_conv,
                )
                fuse_conv = None
            else:
                project_conv = Conv2d(
                    in_channel,
                    project_channels[idx],
                    kernel_size=1,
                    bias=use_bias,
                    norm=get_norm(norm, project_channels[idx]),
                    activation=F.relu,
                )
                c2_xavier_fill(project_conv)
                fuse_in = project_channels[idx] + decoder_channels[idx + 1]
                if use_depthwise_separable_conv:
                    # one 5x5 depthwise-separable conv has the receptive field of two 3x3 convs
                    fuse_conv = DepthwiseSeparableConv2d(
                        fuse_in,
                        decoder_channels[idx],
                        kernel_size=5,
                        padding=2,
                        norm1=norm,
                        activation1=F.relu,
                        norm2=norm,
                        activation2=F.relu,
                    )
                else:
                    fuse_conv = nn.Sequential(
                        Conv2d(
                            fuse_in,
                            decoder_channels[idx],
                            kernel_size=3,
                            padding=1,
                            bias=use_bias,
                            norm=get_norm(norm, decoder_channels[idx]),
                            activation=F.relu,
                        ),
                        Conv2d(
                            decoder_channels[idx],
                            decoder_channels[idx],
                            kernel_size=3,
                            padding=1,
                            bias=use_bias,
                            norm=get_norm(norm, decoder_channels[idx]),
                            activation=F.relu,
                        ),
                    )
                    c2_xavier_fill(fuse_conv[0])
                    c2_xavier_fill(fuse_conv[1])
            stage["project_conv"] = project_conv
            stage["fuse_conv"] = fuse_conv
            self.decoder[self.in_features[idx]] = stage

        if not self.decoder_only:
            self.predictor = Conv2d(decoder_channels[0], num_classes, kernel_size=1, stride=1, padding=0)
            nn.init.normal_(self.predictor.weight, 0, 0.001)
            nn.init.constant_(self.predictor.bias, 0)
            self.loss = _build_loss(self.loss_type, self.ignore_value)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        head = cfg.MODEL.SEM_SEG_HEAD
        missing = [f for f in head.IN_FEATURES if f not in input_shape]
        if missing:
            raise ProjectConfigError(f"MODEL.SEM_SEG_HEAD.IN_FEATURES has {missing}, the backbone gives {sorted(input_shape)}")
        decoder_channels = [head.CONVS_DIM] * (len(head.IN_FEATURES) - 1) + [head.ASPP_CHANNELS]
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "project_channels": head.PROJECT_CHANNELS,
            "aspp_dilations": head.ASPP_DILATIONS,
            "aspp_dropout": head.ASPP_DROPOUT,
            "decoder_channels": decoder_channels,
            "common_stride": head.COMMON_STRIDE,
            "norm": head.NORM,
            "train_size": _crop_size(cfg),
            "loss_weight": head.LOSS_WEIGHT,
            "loss_type": head.LOSS_TYPE,
            "ignore_value": head.IGNORE_VALUE,
            "num_classes": head.NUM_CLASSES,
            "use_depthwise_separable_conv": head.USE_DEPTHWISE_SEPARABLE_CONV,
        }

    def forward(self, features: Dict[str, torch.Tensor], targets: Optional[torch.Tensor] = None):
        """Decoder-only: the decoder features. Otherwise training: (None, losses);
        inference: (logits upsampled by common_stride, {})."""
        y = self.layers(features)
        if self.decoder_only:
            return y
        if self.training:
            if targets is None:
                raise ValueError(f"{type(self).__name__}: training needs `targets`")
            return None, self.losses(y, targets)
        y = F.interpolate(y, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        return y, {}

    def layers(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        y = None
        for f in self.in_features[::-1]:  # coarsest (ASPP) first
            proj = self.decoder[f]["project_conv"](features[f])
            fuse = self.decoder[f]["fuse_conv"]
            if fuse is None:
                y = proj
            else:
                y = F.interpolate(y, size=proj.shape[2:], mode="bilinear", align_corners=False)
                y = fuse(torch.cat([proj, y], dim=1))
        if not self.decoder_only:
            y = self.predictor(y)
        return y

    def losses(self, predictions: torch.Tensor, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        predictions = F.interpolate(predictions, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        return {"loss_sem_seg": self.loss(predictions, targets) * self.loss_weight}


@SEM_SEG_HEADS_REGISTRY.register()
class DeepLabV3Head(nn.Module):
    """DeepLabV3 (Chen et al., 2017): ASPP on one feature and a 1x1 predictor."""

    def __init__(self, cfg, input_shape: Dict[str, ShapeSpec]):
        super().__init__()
        head = cfg.MODEL.SEM_SEG_HEAD
        self.in_features = head.IN_FEATURES
        if len(self.in_features) != 1:
            raise ProjectConfigError(f"DeepLabV3Head takes one feature in MODEL.SEM_SEG_HEAD.IN_FEATURES, got {self.in_features}")
        if self.in_features[0] not in input_shape:
            raise ProjectConfigError(f"DeepLabV3Head: feature {self.in_features[0]!r} not among {sorted(input_shape)}")
        self.ignore_value = head.IGNORE_VALUE
        self.common_stride = head.COMMON_STRIDE
        self.loss_weight = head.LOSS_WEIGHT
        self.loss_type = head.LOSS_TYPE
        self.aspp = ASPP(
            input_shape[self.in_features[0]].channels,
            head.ASPP_CHANNELS,
            head.ASPP_DILATIONS,
            norm=head.NORM,
            activation=F.relu,
            pool_kernel_size=_aspp_pool_kernel(_crop_size(cfg), self.common_stride),
            dropout=head.ASPP_DROPOUT,
            use_depthwise_separable_conv=head.USE_DEPTHWISE_SEPARABLE_CONV,
        )
        self.predictor = Conv2d(head.CONVS_DIM, head.NUM_CLASSES, kernel_size=1, stride=1, padding=0)
        nn.init.normal_(self.predictor.weight, 0, 0.001)
        nn.init.constant_(self.predictor.bias, 0)
        self.loss = _build_loss(self.loss_type, self.ignore_value)

    def forward(self, features: Dict[str, torch.Tensor], targets: Optional[torch.Tensor] = None):
        x = self.predictor(self.aspp(features[self.in_features[0]]))
        if self.training:
            if targets is None:
                raise ValueError("DeepLabV3Head: training needs `targets`")
            return None, self.losses(x, targets)
        x = F.interpolate(x, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        return x, {}

    def losses(self, predictions: torch.Tensor, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        predictions = F.interpolate(predictions, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        return {"loss_sem_seg": self.loss(predictions, targets) * self.loss_weight}
