"""Multiscale Vision Transformer v2 backbone ("MViTv2: Improved Multiscale Vision
Transformers for Classification and Detection", Li et al., 2022): pooling attention,
decomposed relative positions, residual pooling and hybrid window attention."""
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from .backbone import Backbone
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

__all__ = ["MViT"]


def attention_pool(x: torch.Tensor, pool: nn.Module, norm: Optional[nn.Module] = None) -> torch.Tensor:
    """Apply a spatial pooling module (conv or max pool) to a (B, H, W, C) map, then an
    optional norm over C; returns (B, H', W', C)."""
    x = pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    if norm is not None:
        x = norm(x)
    return x


class MultiScaleAttention(nn.Module):
    """Attention whose queries, keys and values are pooled per head by depthwise convs
    (strides ``stride_q`` / ``stride_kv``), optionally inside windows, with decomposed
    relative position biases and a residual connection from the pooled queries."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        qkv_bias: bool = True,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        pool_kernel: Tuple[int, int] = (3, 3),
        stride_q: int = 1,
        stride_kv: int = 1,
        residual_pooling: bool = True,
        window_size: int = 0,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        input_size: Optional[Tuple[int, int]] = None,
    ):
        """
        Args:
            dim, dim_out: input and output channels.
            pool_kernel: kernel of the q/k/v pooling convs.
            stride_q, stride_kv: pooling strides of queries and of keys/values.
            residual_pooling: add the pooled queries to the attention output.
            window_size: side of attention windows before pooling (0: global).
            input_size: token grid the rel-pos tables are sized for (square).
        """
        super().__init__()
        if dim_out % num_heads != 0:
            raise ValueError(f"MultiScaleAttention: dim_out ({dim_out}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        head_dim = dim_out // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim_out * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim_out, dim_out)

        padding = [k // 2 for k in pool_kernel]

        def pool(stride: int) -> nn.Conv2d:
            return nn.Conv2d(
                head_dim, head_dim, pool_kernel, stride=stride, padding=padding, groups=head_dim, bias=False
            )

        self.pool_q = pool(stride_q)
        self.norm_q = norm_layer(head_dim)
        self.pool_k = pool(stride_kv)
        self.norm_k = norm_layer(head_dim)
        self.pool_v = pool(stride_kv)
        self.norm_v = norm_layer(head_dim)

        self.window_size = window_size
        if window_size:
            self.q_win_size = window_size // stride_q
            self.kv_win_size = window_size // stride_kv
        self.residual_pooling = residual_pooling

        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            if input_size is None or input_size[0] != input_size[1]:
                raise ValueError(f"MultiScaleAttention: use_rel_pos needs a square input_size, got {input_size}")
            size = input_size[0]
            rel_dim = 2 * max(size // stride_q, size // stride_kv) - 1
            self.rel_pos_h = nn.Parameter(torch.zeros(rel_dim, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(rel_dim, head_dim))
            if not rel_pos_zero_init:
                nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
                nn.init.trunc_normal_(self.rel_pos_w, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = x.shape
        qkv = self.qkv(x).reshape(B, H, W, 3, self.num_heads, -1).permute(3, 0, 4, 1, 2, 5)
        q, k, v = qkv.reshape(3, B * self.num_heads, H, W, -1).unbind(0)  # (B*heads, H, W, C)

        q = attention_pool(q, self.pool_q, self.norm_q)
        k = attention_pool(k, self.pool_k, self.norm_k)
        v = attention_pool(v, self.pool_v, self.norm_v)

        pooled_q = q
        if self.window_size:
            q, q_hw_pad = window_partition(q, self.q_win_size)
            k, _ = window_partition(k, self.kv_win_size)
            v, _ = window_partition(v, self.kv_win_size)
            q_hw = (self.q_win_size, self.q_win_size)
            kv_hw = (self.kv_win_size, self.kv_win_size)
        else:
            q_hw = (q.shape[1], q.shape[2])
            kv_hw = (k.shape[1], k.shape[2])

        q = q.reshape(q.shape[0], q_hw[0] * q_hw[1], -1)
        k = k.reshape(k.shape[0], kv_hw[0] * kv_hw[1], -1)
        v = v.reshape(v.shape[0], kv_hw[0] * kv_hw[1], -1)

        bias = None
        if self.use_rel_pos:
            bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, q_hw, kv_hw).to(q.dtype)
        # fused attention; its default scale equals self.scale
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x.view(x.shape[0], q_hw[0], q_hw[1], -1)

        if self.window_size:
            x = window_unpartition(x, self.q_win_size, q_hw_pad, (pooled_q.shape[1], pooled_q.shape[2]))
        if self.residual_pooling:
            x = x + pooled_q

        H, W = x.shape[1], x.shape[2]
        x = x.view(B, self.num_heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(x)


class MultiScaleBlock(nn.Module):
    """A pre-norm MViTv2 block: pooling attention and an MLP, each residual; the skip
    path is projected when channels change (``proj``) and max-pooled when queries are
    strided (``pool_skip``)."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        qkv_pool_kernel: Tuple[int, int] = (3, 3),
        stride_q: int = 1,
        stride_kv: int = 1,
        residual_pooling: bool = True,
        window_size: int = 0,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        input_size: Optional[Tuple[int, int]] = None,
    ):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = MultiScaleAttention(
            dim,
            dim_out,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            norm_layer=norm_layer,
            pool_kernel=qkv_pool_kernel,
            stride_q=stride_q,
            stride_kv=stride_kv,
            residual_pooling=residual_pooling,
            window_size=window_size,
            use_rel_pos=use_rel_pos,
            rel_pos_zero_init=rel_pos_zero_init,
            input_size=input_size,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim_out)
        self.mlp = Mlp(
            in_features=dim_out, hidden_features=int(dim_out * mlp_ratio), out_features=dim_out, act_layer=act_layer
        )
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)
        if stride_q > 1:
            kernel_skip = stride_q + 1
            self.pool_skip = nn.MaxPool2d(kernel_skip, stride_q, kernel_skip // 2, ceil_mode=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        x_block = self.attn(x_norm)
        if hasattr(self, "proj"):
            x = self.proj(x_norm)
        if hasattr(self, "pool_skip"):
            x = attention_pool(x, self.pool_skip)
        x = x + self.drop_path(x_block)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class MViT(Backbone):
    """MViTv2 backbone with stages "scale2".."scale5" (strides 4..32); each stage ends at
    a block of ``last_block_indexes``, after which channels and heads double, queries
    are pooled by 2 and the key/value stride and window halve. Outputs are normed by
    ``{name}_norm``."""

    def __init__(
        self,
        img_size: int = 224,
        patch_kernel: Tuple[int, int] = (7, 7),
        patch_stride: Tuple[int, int] = (4, 4),
        patch_padding: Tuple[int, int] = (3, 3),
        in_chans: int = 3,
        embed_dim: int = 96,
        depth: int = 16,
        num_heads: int = 1,
        last_block_indexes: Sequence[int] = (0, 2, 11, 15),
        qkv_pool_kernel: Tuple[int, int] = (3, 3),
        adaptive_kv_stride: int = 4,
        adaptive_window_size: int = 56,
        residual_pooling: bool = True,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        use_abs_pos: bool = False,
        use_rel_pos: bool = True,
        rel_pos_zero_init: bool = True,
        use_act_checkpoint: bool = False,
        pretrain_img_size: int = 224,
        pretrain_use_cls_token: bool = True,
        out_features: Sequence[str] = ("scale2", "scale3", "scale4", "scale5"),
    ):
        """
        Args:
            img_size: input size the rel-pos tables are sized for.
            patch_kernel, patch_stride, patch_padding: the patch embedding conv.
            last_block_indexes: index of the last block of each of the 4 stages.
            adaptive_kv_stride: key/value pooling stride of the first stage (halved per stage).
            adaptive_window_size: window size of the first stage (halved per stage); the
                last blocks of stages 3-5 and all of stage 5 attend globally.
            Other arguments as in ViT.
        """
        super().__init__()
        if len(last_block_indexes) != 4:
            raise ValueError(f"MViT: last_block_indexes must have 4 entries, got {tuple(last_block_indexes)}")
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.in_chans = in_chans
        self.use_act_checkpoint = use_act_checkpoint
        self.patch_embed = PatchEmbed(
            kernel_size=patch_kernel, stride=patch_stride, padding=patch_padding, in_chans=in_chans, embed_dim=embed_dim
        )
        if use_abs_pos:
            num_patches = (pretrain_img_size // patch_stride[0]) * (pretrain_img_size // patch_stride[1])
            num_positions = num_patches + 1 if pretrain_use_cls_token else num_patches
            self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
        else:
            self.pos_embed = None

        dpr = [v.item() for v in torch.linspace(0, drop_path_rate, depth, device="cpu")]
        dim_out = embed_dim
        stride_kv = adaptive_kv_stride
        window_size = adaptive_window_size
        input_size = (img_size // patch_stride[0], img_size // patch_stride[1])
        stage = 2
        stride = patch_stride[0]
        self._out_feature_strides: Dict[str, int] = {}
        self._out_feature_channels: Dict[str, int] = {}
        self.blocks = nn.ModuleList()
        for i in range(depth):
            # the last blocks of stages 3 and 4 pool keys/values twice as much, and the
            # last blocks of stages 3-5 attend globally
            extra_kv = 2 if i in (last_block_indexes[1], last_block_indexes[2]) else 1
            self.blocks.append(
                MultiScaleBlock(
                    dim=embed_dim,
                    dim_out=dim_out,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_path=dpr[i],
                    norm_layer=norm_layer,
                    act_layer=act_layer,
                    qkv_pool_kernel=qkv_pool_kernel,
                    stride_q=2 if i - 1 in last_block_indexes else 1,
                    stride_kv=stride_kv * extra_kv,
                    residual_pooling=residual_pooling,
                    window_size=0 if i in last_block_indexes[1:] else window_size,
                    use_rel_pos=use_rel_pos,
                    rel_pos_zero_init=rel_pos_zero_init,
                    input_size=input_size,
                )
            )
            embed_dim = dim_out
            if i in last_block_indexes:
                name = f"scale{stage}"
                if name in out_features:
                    self._out_feature_channels[name] = dim_out
                    self._out_feature_strides[name] = stride
                    self.add_module(f"{name}_norm", norm_layer(dim_out))
                dim_out *= 2
                num_heads *= 2
                stride_kv = max(stride_kv // 2, 1)
                stride *= 2
                stage += 1
            if i - 1 in last_block_indexes:
                window_size = window_size // 2
                input_size = (input_size[0] // 2, input_size[1] // 2)

        self._out_features = list(out_features)
        self._last_block_indexes = tuple(last_block_indexes)
        for name in self._out_features:
            if name not in self._out_feature_channels:
                raise ValueError(f"MViT: unknown out_features entry {name!r}; expected scale2..scale5")

        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(init_transformer_weights)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"MViT: input x must be (N, {self.in_chans}, H, W) (in_chans={self.in_chans}), "
                f"got shape {tuple(x.shape)}"
            )
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + get_abs_pos(self.pos_embed, self.pretrain_use_cls_token, (x.shape[1], x.shape[2]))
        outputs = {}
        stage = 2
        for i, blk in enumerate(self.blocks):
            if self.use_act_checkpoint and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
            if i in self._last_block_indexes:
                name = f"scale{stage}"
                if name in self._out_features:
                    outputs[name] = getattr(self, f"{name}_norm")(x).permute(0, 3, 1, 2)
                stage += 1
        return outputs
