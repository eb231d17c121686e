"""Plain Vision Transformer backbone and the simple feature pyramid of ViTDet
("Exploring Plain Vision Transformer Backbones for Object Detection", Li et al., 2022)."""
import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from detectron2.layers import CNNBlockBase, Conv2d, get_norm
from detectron2.layers import _weight_init as weight_init

from .backbone import Backbone
from .fpn import _assert_strides_are_log2_contiguous
from .utils import (
    DropPath,
    Mlp,
    PatchEmbed,
    decomposed_rel_pos_bias,
    get_abs_pos,
    init_transformer_weights,
    window_partition,
    window_unpartition,
)

__all__ = ["ViT", "SimpleFeaturePyramid", "get_vit_lr_decay_rate"]


class Attention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) token grid, with optional decomposed
    relative position biases (tables ``rel_pos_h`` / ``rel_pos_w`` sized for ``input_size``)."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        input_size: Optional[Tuple[int, int]] = None,
    ):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"Attention: dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            if input_size is None:
                raise ValueError("Attention: input_size is required when use_rel_pos=True")
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))
            if not rel_pos_zero_init:
                nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
                nn.init.trunc_normal_(self.rel_pos_w, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = x.shape
        qkv = self.qkv(x).reshape(B, H * W, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, H*W, head_dim)
        bias = None
        if self.use_rel_pos:
            flat_q = q.reshape(B * self.num_heads, H * W, -1)
            bias = decomposed_rel_pos_bias(flat_q, self.rel_pos_h, self.rel_pos_w, (H, W), (H, W))
            bias = bias.view(B, self.num_heads, H * W, H * W).to(q.dtype)
        # The fused kernel takes the relative-position bias as an additive mask; its
        # default scale is head_dim ** -0.5, the same as self.scale.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.view(B, self.num_heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(out)


class ResBottleneckBlock(CNNBlockBase):
    """A residual 1x1 -> 3x3 -> 1x1 bottleneck without a projection shortcut; the last
    norm starts at zero so that the block starts as the identity."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bottleneck_channels: int,
        norm: str = "LN",
        act_layer: Callable[[], nn.Module] = nn.GELU,
    ):
        super().__init__(in_channels, out_channels, 1)
        if in_channels != out_channels:
            raise ValueError(
                f"ResBottleneckBlock: in_channels ({in_channels}) must equal out_channels ({out_channels})"
            )
        self.conv1 = Conv2d(in_channels, bottleneck_channels, 1, bias=False)
        self.norm1 = get_norm(norm, bottleneck_channels)
        self.act1 = act_layer()
        self.conv2 = Conv2d(bottleneck_channels, bottleneck_channels, 3, padding=1, bias=False)
        self.norm2 = get_norm(norm, bottleneck_channels)
        self.act2 = act_layer()
        self.conv3 = Conv2d(bottleneck_channels, out_channels, 1, bias=False)
        self.norm3 = get_norm(norm, out_channels)

        for conv in (self.conv1, self.conv2, self.conv3):
            weight_init.c2_msra_fill(conv)
        for norm_layer in (self.norm1, self.norm2):
            norm_layer.weight.data.fill_(1.0)
            norm_layer.bias.data.zero_()
        self.norm3.weight.data.zero_()
        self.norm3.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.children():
            out = layer(out)
        return x + out


class Block(nn.Module):
    """A transformer block (pre-norm attention and MLP, each residual) with optional
    window attention and an optional conv ResBottleneckBlock after it."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        window_size: int = 0,
        use_residual_block: bool = False,
        input_size: Optional[Tuple[int, int]] = None,
    ):
        """
        Args:
            window_size: side of the attention windows; 0 means global attention.
            input_size: token grid (h, w) that global attention's rel-pos tables are
                sized for (window blocks size them for the window instead).
        """
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            use_rel_pos=use_rel_pos,
            rel_pos_zero_init=rel_pos_zero_init,
            input_size=input_size if window_size == 0 else (window_size, window_size),
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer)
        self.window_size = window_size
        self.use_residual_block = use_residual_block
        if use_residual_block:
            self.residual = ResBottleneckBlock(
                in_channels=dim, out_channels=dim, bottleneck_channels=dim // 2, norm="LN", act_layer=act_layer
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)
            x = self.attn(x)
            x = window_unpartition(x, self.window_size, pad_hw, (H, W))
        else:
            x = self.attn(x)
        x = shortcut + self.drop_path(x)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        if self.use_residual_block:
            x = self.residual(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x


class ViT(Backbone):
    """Plain ViT (single-scale, stride ``patch_size``) with window attention in some
    blocks, as the ViTDet backbone. Outputs one feature, ``out_feature``."""

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        use_abs_pos: bool = True,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        window_size: int = 0,
        window_block_indexes: Sequence[int] = (),
        residual_block_indexes: Sequence[int] = (),
        use_act_checkpoint: bool = False,
        pretrain_img_size: int = 224,
        pretrain_use_cls_token: bool = True,
        out_feature: str = "last_feat",
    ):
        """
        Args:
            img_size: input size the rel-pos tables of global blocks are sized for.
            patch_size: patch side, which is also the output stride.
            drop_path_rate: stochastic depth rate, increasing linearly to this over blocks.
            use_abs_pos / use_rel_pos: absolute position embeddings / decomposed
                relative position biases.
            rel_pos_zero_init: start the rel-pos tables at zero.
            window_size: window side of the blocks in ``window_block_indexes``.
            residual_block_indexes: blocks followed by a conv ResBottleneckBlock.
            use_act_checkpoint: recompute block activations in backward to save memory.
            pretrain_img_size / pretrain_use_cls_token: the grid and cls token of the
                pretrained abs position embeddings (resized to the input at runtime).
            out_feature: name of the output feature.
        """
        super().__init__()
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.use_act_checkpoint = use_act_checkpoint

        self.patch_embed = PatchEmbed(
            kernel_size=(patch_size, patch_size),
            stride=(patch_size, patch_size),
            in_chans=in_chans,
            embed_dim=embed_dim,
        )
        if use_abs_pos:
            num_patches = (pretrain_img_size // patch_size) * (pretrain_img_size // patch_size)
            num_positions = num_patches + 1 if pretrain_use_cls_token else num_patches
            self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
        else:
            self.pos_embed = None

        dpr = [v.item() for v in torch.linspace(0, drop_path_rate, depth, device="cpu")]
        self.blocks = nn.ModuleList()
        for i in range(depth):
            self.blocks.append(
                Block(
                    dim=embed_dim,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_path=dpr[i],
                    norm_layer=norm_layer,
                    act_layer=act_layer,
                    use_rel_pos=use_rel_pos,
                    rel_pos_zero_init=rel_pos_zero_init,
                    window_size=window_size if i in window_block_indexes else 0,
                    use_residual_block=i in residual_block_indexes,
                    input_size=(img_size // patch_size, img_size // patch_size),
                )
            )

        self._out_feature_channels = {out_feature: embed_dim}
        self._out_feature_strides = {out_feature: patch_size}
        self._out_features = [out_feature]

        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(init_transformer_weights)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"ViT: input x must be a (N, C, H, W) tensor, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"ViT: input x must have {self.in_chans} channels (in_chans), got {x.shape[1]}")
        H, W = x.shape[-2:]
        if H % self.patch_size != 0 or W % self.patch_size != 0:
            raise ValueError(
                f"ViT: input height and width must be multiples of patch_size={self.patch_size}, got {H}x{W}"
            )

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        self._check_input(x)
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + get_abs_pos(self.pos_embed, self.pretrain_use_cls_token, (x.shape[1], x.shape[2]))
        for blk in self.blocks:
            if self.use_act_checkpoint and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return {self._out_features[0]: x.permute(0, 3, 1, 2)}


class SimpleFeaturePyramid(Backbone):
    """Multi-scale maps from the single last map of a plain backbone, by deconvolutions
    (upsampling), identity or max pooling (downsampling), then a 1x1 and a 3x3 conv per
    scale. Outputs are named "p{log2(stride)}"; parameters ``simfp_{stage}.*``."""

    def __init__(
        self,
        net: Backbone,
        in_feature: str,
        out_channels: int,
        scale_factors: Sequence[float],
        top_block: Optional[nn.Module] = None,
        norm: str = "LN",
        square_pad: int = 0,
    ):
        """
        Args:
            net: the plain backbone (e.g. ViT).
            in_feature: the feature of ``net`` to build the pyramid from.
            out_channels: channels of every output map.
            scale_factors: one per level, each of 4.0, 2.0, 1.0 or 0.5 (relative to
                ``in_feature``'s resolution), from fine to coarse.
            top_block: optional module adding coarser levels (e.g. LastLevelMaxPool),
                with ``num_levels`` and ``in_feature`` attributes.
            norm: norm of the convs ("" for none, then they get biases).
            square_pad: if > 0, inputs are padded to this square size.
        """
        super().__init__()
        if not isinstance(net, Backbone):
            raise TypeError(f"SimpleFeaturePyramid: net must be a Backbone, got {type(net).__name__}")
        input_shapes = net.output_shape()
        if in_feature not in input_shapes:
            raise ValueError(
                f"SimpleFeaturePyramid: in_feature {in_feature!r} is not an output of net ({list(input_shapes)})"
            )
        self.scale_factors = tuple(scale_factors)
        strides = [int(input_shapes[in_feature].stride / scale) for scale in scale_factors]
        _assert_strides_are_log2_contiguous(strides)
        dim = input_shapes[in_feature].channels
        use_bias = norm == ""

        self.stages = []
        for scale, stride in zip(scale_factors, strides):
            layers, out_dim = _rescale_layers(scale, dim, norm)
            layers.extend(
                [
                    Conv2d(out_dim, out_channels, kernel_size=1, bias=use_bias, norm=get_norm(norm, out_channels)),
                    Conv2d(
                        out_channels,
                        out_channels,
                        kernel_size=3,
                        padding=1,
                        bias=use_bias,
                        norm=get_norm(norm, out_channels),
                    ),
                ]
            )
            stage = nn.Sequential(*layers)
            self.add_module(f"simfp_{int(math.log2(stride))}", stage)
            self.stages.append(stage)

        self.net = net
        self.in_feature = in_feature
        self.top_block = top_block
        self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
        if top_block is not None:
            last = int(math.log2(strides[-1]))
            for s in range(last, last + top_block.num_levels):
                self._out_feature_strides[f"p{s + 1}"] = 2 ** (s + 1)
        self._out_features = list(self._out_feature_strides.keys())
        self._out_feature_channels = {k: out_channels for k in self._out_features}
        self._size_divisibility = strides[-1]
        self._square_pad = square_pad

    @property
    def padding_constraints(self) -> Dict[str, int]:
        return {"size_divisibility": self._size_divisibility, "square_size": self._square_pad}

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        bottom_up_features = self.net(x)
        features = bottom_up_features[self.in_feature]
        results = [stage(features) for stage in self.stages]
        if self.top_block is not None:
            name = self.top_block.in_feature
            if name in bottom_up_features:
                top_in = bottom_up_features[name]
            else:
                top_in = results[self._out_features.index(name)]
            results.extend(self.top_block(top_in))
        return dict(zip(self._out_features, results))


def _rescale_layers(scale: float, dim: int, norm: str):
    """The resampling head of one pyramid level and its output channels."""
    if scale == 4.0:
        layers = [
            nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2),
            get_norm(norm, dim // 2),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2),
        ]
        return layers, dim // 4
    if scale == 2.0:
        return [nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)], dim // 2
    if scale == 1.0:
        return [], dim
    if scale == 0.5:
        return [nn.MaxPool2d(kernel_size=2, stride=2)], dim
    raise ValueError(f"SimpleFeaturePyramid: scale_factors must be among 4.0, 2.0, 1.0, 0.5; got {scale}")


def get_vit_lr_decay_rate(name: str, lr_decay_rate: float = 1.0, num_layers: int = 12) -> float:
    """Layer-wise learning-rate decay factor of a ViT parameter (BEiT / ViTDet recipe).

    Args:
        name: parameter name, e.g. "backbone.net.blocks.3.attn.qkv.weight".
        lr_decay_rate: per-layer decay.
        num_layers: number of ViT blocks.

    Returns:
        lr_decay_rate ** (num_layers + 1 - layer_id), where patch and position
        embeddings are layer 0, block i is layer i + 1, and everything else (the
        pyramid, heads, residual conv blocks) is layer num_layers + 1 (factor 1).
    """
    layer_id = num_layers + 1
    if name.startswith("backbone"):
        if ".pos_embed" in name or ".patch_embed" in name:
            layer_id = 0
        elif ".blocks." in name and ".residual." not in name:
            layer_id = int(name[name.find(".blocks.") :].split(".")[2]) + 1
    return lr_decay_rate ** (num_layers + 1 - layer_id)
