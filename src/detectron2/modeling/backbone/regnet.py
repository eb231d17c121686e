"""AnyNet / RegNet backbones ("Designing Network Design Spaces", Radosavovic et al.
2020), with module names as upstream (``stem.conv``, ``s1.b1.f.a``, ``s1.b1.proj``)
so that pycls-converted checkpoints load."""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from detectron2.layers import CNNBlockBase, ShapeSpec, get_norm

from .backbone import Backbone

__all__ = [
    "AnyNet",
    "RegNet",
    "ResStem",
    "SimpleStem",
    "VanillaBlock",
    "ResBasicBlock",
    "ResBottleneckBlock",
]


def conv2d(w_in: int, w_out: int, k: int, *, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """A k x k conv with "same" padding (k must be odd)."""
    if k % 2 != 1:
        raise ValueError(f"conv2d: kernel size must be odd, got {k}")
    return nn.Conv2d(w_in, w_out, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias=bias)


def gap2d() -> nn.Module:
    return nn.AdaptiveAvgPool2d((1, 1))


def pool2d(k: int, *, stride: int = 1) -> nn.Module:
    if k % 2 != 1:
        raise ValueError(f"pool2d: kernel size must be odd, got {k}")
    return nn.MaxPool2d(k, stride=stride, padding=(k - 1) // 2)


def init_weights(m: nn.Module) -> None:
    """pycls' initialization: He-normal (fan-out) convs, unit BN, small-normal linear."""
    if isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        m.weight.data.normal_(mean=0.0, std=float(np.sqrt(2.0 / fan_out)))
    elif isinstance(m, nn.BatchNorm2d):
        m.weight.data.fill_(1.0)
        m.bias.data.zero_()
    elif isinstance(m, nn.Linear):
        m.weight.data.normal_(mean=0.0, std=0.01)
        m.bias.data.zero_()


def _sequential_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    for layer in module.children():
        x = layer(x)
    return x


class ResStem(CNNBlockBase):
    """The ResNet stem: 7x7 stride-2 conv, norm, activation, 3x3 stride-2 max pool."""

    def __init__(self, w_in: int, w_out: int, norm, activation_class: Callable[[], nn.Module]):
        super().__init__(w_in, w_out, 4)
        self.conv = conv2d(w_in, w_out, 7, stride=2)
        self.bn = get_norm(norm, w_out)
        self.af = activation_class()
        self.pool = pool2d(3, stride=2)

    def forward(self, x):
        return _sequential_forward(self, x)


class SimpleStem(CNNBlockBase):
    """The RegNet stem: 3x3 stride-2 conv, norm, activation."""

    def __init__(self, w_in: int, w_out: int, norm, activation_class: Callable[[], nn.Module]):
        super().__init__(w_in, w_out, 2)
        self.conv = conv2d(w_in, w_out, 3, stride=2)
        self.bn = get_norm(norm, w_out)
        self.af = activation_class()

    def forward(self, x):
        return _sequential_forward(self, x)


class SE(nn.Module):
    """Squeeze-and-excitation: channel gates from globally pooled features."""

    def __init__(self, w_in: int, w_se: int, activation_class: Callable[[], nn.Module]):
        super().__init__()
        self.avg_pool = gap2d()
        self.f_ex = nn.Sequential(
            conv2d(w_in, w_se, 1, bias=True),
            activation_class(),
            conv2d(w_se, w_in, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.f_ex(self.avg_pool(x))


class VanillaBlock(CNNBlockBase):
    """Two [3x3 conv, norm, activation] without a residual connection."""

    def __init__(self, w_in, w_out, stride, norm, activation_class, _params):
        super().__init__(w_in, w_out, stride)
        self.a = conv2d(w_in, w_out, 3, stride=stride)
        self.a_bn = get_norm(norm, w_out)
        self.a_af = activation_class()
        self.b = conv2d(w_out, w_out, 3)
        self.b_bn = get_norm(norm, w_out)
        self.b_af = activation_class()

    def forward(self, x):
        return _sequential_forward(self, x)


class BasicTransform(nn.Module):
    """[3x3 conv, norm, activation], [3x3 conv, norm]: the residual branch of ResBasicBlock."""

    def __init__(self, w_in, w_out, stride, norm, activation_class, _params):
        super().__init__()
        self.a = conv2d(w_in, w_out, 3, stride=stride)
        self.a_bn = get_norm(norm, w_out)
        self.a_af = activation_class()
        self.b = conv2d(w_out, w_out, 3)
        self.b_bn = get_norm(norm, w_out)
        self.b_bn.final_bn = True  # marks the last norm of a residual branch (pycls zero-init)

    def forward(self, x):
        return _sequential_forward(self, x)


class _ResidualBlock(CNNBlockBase):
    """x (or a 1x1 projection of it) + f(x), then the activation."""

    transform_class: type = BasicTransform

    def __init__(self, w_in, w_out, stride, norm, activation_class, params):
        super().__init__(w_in, w_out, stride)
        self.proj, self.bn = None, None
        if w_in != w_out or stride != 1:
            self.proj = conv2d(w_in, w_out, 1, stride=stride)
            self.bn = get_norm(norm, w_out)
        self.f = self.transform_class(w_in, w_out, stride, norm, activation_class, params)
        self.af = activation_class()

    def forward(self, x):
        shortcut = self.bn(self.proj(x)) if self.proj is not None else x
        return self.af(shortcut + self.f(x))


class ResBasicBlock(_ResidualBlock):
    """Residual block with a BasicTransform branch."""

    transform_class = BasicTransform


class BottleneckTransform(nn.Module):
    """1x1 conv, grouped 3x3 conv (+ optional SE), 1x1 conv, each followed by a norm."""

    def __init__(self, w_in, w_out, stride, norm, activation_class, params):
        super().__init__()
        w_b = int(round(w_out * params["bot_mul"]))
        w_se = int(round(w_in * params["se_r"]))
        groups = w_b // params["group_w"]
        self.a = conv2d(w_in, w_b, 1)
        self.a_bn = get_norm(norm, w_b)
        self.a_af = activation_class()
        self.b = conv2d(w_b, w_b, 3, stride=stride, groups=groups)
        self.b_bn = get_norm(norm, w_b)
        self.b_af = activation_class()
        self.se = SE(w_b, w_se, activation_class) if w_se else None
        self.c = conv2d(w_b, w_out, 1)
        self.c_bn = get_norm(norm, w_out)
        self.c_bn.final_bn = True

    def forward(self, x):
        for layer in self.children():
            if layer is not None:
                x = layer(x)
        return x


class ResBottleneckBlock(_ResidualBlock):
    """Residual block with a BottleneckTransform branch (the RegNet block)."""

    transform_class = BottleneckTransform


class AnyStage(nn.Module):
    """``d`` blocks ``b1``..``b{d}``; only the first has the stride and changes width."""

    def __init__(self, w_in, w_out, stride, d, block_class, norm, activation_class, params):
        super().__init__()
        for i in range(d):
            self.add_module(f"b{i + 1}", block_class(w_in, w_out, stride, norm, activation_class, params))
            stride, w_in = 1, w_out

    def forward(self, x):
        return _sequential_forward(self, x)


class AnyNet(Backbone):
    """A stem followed by stages ``s1``, ``s2``, ... with explicit per-stage settings."""

    def __init__(
        self,
        *,
        stem_class,
        stem_width: int,
        block_class,
        depths: Sequence[int],
        widths: Sequence[int],
        group_widths: Sequence[int],
        strides: Sequence[int],
        bottleneck_ratios: Sequence[float],
        se_ratio: float,
        activation_class: Callable[[], nn.Module],
        freeze_at: int = 0,
        norm="BN",
        out_features: Optional[List[str]] = None,
    ):
        """
        Args:
            stem_class, stem_width: the stem (ResStem or SimpleStem) and its width.
            block_class: the block type of every stage (e.g. ResBottleneckBlock).
            depths, widths, group_widths, strides, bottleneck_ratios: per stage.
            se_ratio: squeeze-and-excitation width relative to the block input (0: no SE).
            activation_class: a callable returning the activation module.
            freeze_at: freeze the stem (>= 1) and the first ``freeze_at - 1`` stages.
            norm: normalization of every conv (see layers.get_norm).
            out_features: names among "stem", "s1", "s2", ... (default: the last stage).
        """
        super().__init__()
        lengths = {len(depths), len(widths), len(group_widths), len(strides), len(bottleneck_ratios)}
        if len(lengths) != 1:
            raise ValueError("AnyNet: depths, widths, group_widths, strides and bottleneck_ratios differ in length")
        self.stem = stem_class(3, stem_width, norm, activation_class)

        stride = self.stem.stride
        self._out_feature_strides = {"stem": stride}
        self._out_feature_channels = {"stem": self.stem.out_channels}
        self.stages_and_names: List[Tuple[nn.Module, str]] = []
        prev_w = stem_width
        name = "stem"
        for i, (d, w, s, b, g) in enumerate(zip(depths, widths, strides, bottleneck_ratios, group_widths)):
            params = {"bot_mul": b, "group_w": g, "se_r": se_ratio}
            stage = AnyStage(prev_w, w, s, d, block_class, norm, activation_class, params)
            name = f"s{i + 1}"
            self.add_module(name, stage)
            self.stages_and_names.append((stage, name))
            stride = int(stride * np.prod([k.stride for k in stage.children()]))
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = list(stage.children())[-1].out_channels
            prev_w = w

        self.apply(init_weights)

        if out_features is None:
            out_features = [name]
        if len(out_features) == 0:
            raise ValueError("AnyNet: out_features must not be empty")
        children = [x[0] for x in self.named_children()]
        for f in out_features:
            if f not in children:
                raise ValueError(f"AnyNet: out_features has {f!r}, available: {', '.join(children)}")
        self._out_features = list(out_features)
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__} takes an (N, C, H, W) input, got shape {tuple(x.shape)}")
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for stage, name in self.stages_and_names:
            x = stage(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }

    def freeze(self, freeze_at: int = 0) -> "AnyNet":
        """As ResNet.freeze: 1 freezes the stem, 2 also s1, and so on."""
        if freeze_at >= 1:
            self.stem.freeze()
        for idx, (stage, _) in enumerate(self.stages_and_names, start=2):
            if freeze_at >= idx:
                for block in stage.children():
                    block.freeze()
        return self


def adjust_block_compatibility(ws: Sequence[int], bs: Sequence[float], gs: Sequence[int]):
    """Round widths so that each bottleneck width is a multiple of its group width
    (and of the bottleneck ratio's denominator), as pycls does."""
    if not len(ws) == len(bs) == len(gs):
        raise ValueError("adjust_block_compatibility: ws, bs and gs must have equal lengths")
    if not all(w > 0 and b > 0 and g > 0 for w, b, g in zip(ws, bs, gs)):
        raise ValueError("adjust_block_compatibility: widths, ratios and group widths must be positive")
    vs = [int(max(1, w * b)) for w, b in zip(ws, bs)]
    gs = [int(min(g, v)) for g, v in zip(gs, vs)]
    ms = [np.lcm(g, b) if b > 1 else g for g, b in zip(gs, bs)]
    vs = [max(m, int(round(v / m) * m)) for v, m in zip(vs, ms)]
    ws = [int(v / b) for v, b in zip(vs, bs)]
    assert all(w * b % g == 0 for w, b, g in zip(ws, bs, gs))
    return ws, bs, gs


def generate_regnet_parameters(w_a: float, w_0: int, w_m: float, d: int, q: int = 8):
    """Per-stage widths and depths of a RegNet: block j has the continuous width
    w_0 + w_a * j, snapped to w_0 * w_m^k (k integer) and rounded to a multiple of q;
    consecutive blocks of equal width form a stage.

    Returns: (widths, depths, num_stages, total_stages, per-block widths, continuous widths)
    """
    if not (w_a >= 0 and w_0 > 0 and w_m > 1 and w_0 % q == 0):
        raise ValueError(f"Invalid RegNet parameters: w_a={w_a}, w_0={w_0}, w_m={w_m} (q={q})")
    ws_cont = np.arange(d) * w_a + w_0
    ks = np.round(np.log(ws_cont / w_0) / np.log(w_m))
    ws_all = w_0 * np.power(w_m, ks)
    ws_all = np.round(np.divide(ws_all, q)).astype(int) * q
    ws, ds = np.unique(ws_all, return_counts=True)
    num_stages, total_stages = len(ws), ks.max() + 1
    ws, ds, ws_all, ws_cont = (x.tolist() for x in (ws, ds, ws_all, ws_cont))
    return ws, ds, num_stages, total_stages, ws_all, ws_cont


def _default_activation() -> nn.Module:
    return nn.ReLU(inplace=True)


class RegNet(AnyNet):
    """An AnyNet whose stage widths and depths come from the RegNet quantized linear
    rule (see generate_regnet_parameters)."""

    def __init__(
        self,
        *,
        stem_class,
        stem_width: int,
        block_class,
        depth: int,
        w_a: float,
        w_0: int,
        w_m: float,
        group_width: int,
        stride: int = 2,
        bottleneck_ratio: float = 1.0,
        se_ratio: float = 0.0,
        activation_class: Optional[Callable[[], nn.Module]] = None,
        freeze_at: int = 0,
        norm="BN",
        out_features: Optional[List[str]] = None,
    ):
        """
        Args:
            depth: total number of blocks.
            w_a, w_0, w_m: slope, initial width and width multiplier of the rule.
            group_width: group width of the 3x3 convs in every stage.
            stride: stride of the first block of every stage.
            bottleneck_ratio, se_ratio: as AnyNet's per-stage values, for all stages.
            activation_class: defaults to an in-place ReLU.
            Other arguments as in AnyNet.
        """
        ws, ds = generate_regnet_parameters(w_a, w_0, w_m, depth)[0:2]
        ws, bs, gs = adjust_block_compatibility(ws, [bottleneck_ratio] * len(ws), [group_width] * len(ws))
        super().__init__(
            stem_class=stem_class,
            stem_width=stem_width,
            block_class=block_class,
            depths=ds,
            widths=ws,
            strides=[stride] * len(ws),
            group_widths=gs,
            bottleneck_ratios=bs,
            se_ratio=se_ratio,
            activation_class=_default_activation if activation_class is None else activation_class,
            freeze_at=freeze_at,
            norm=norm,
            out_features=out_features,
        )
