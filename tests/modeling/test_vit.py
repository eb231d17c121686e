"""ViT backbone, SimpleFeaturePyramid and get_vit_lr_decay_rate."""
from functools import partial

import pytest
import torch
from torch import nn

from detectron2.modeling import SimpleFeaturePyramid, ViT, get_vit_lr_decay_rate
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.modeling.backbone.utils import (
    DropPath,
    Mlp,
    PatchEmbed,
    add_decomposed_rel_pos,
    get_abs_pos,
    window_partition,
    window_unpartition,
)
from detectron2.modeling.backbone.vit import Attention, Block


def _tiny_vit(**kwargs) -> ViT:
    args = dict(
        img_size=64,
        patch_size=8,
        embed_dim=32,
        depth=4,
        num_heads=2,
        window_size=4,
        window_block_indexes=(0, 2),
        residual_block_indexes=(1,),
        use_rel_pos=True,
        rel_pos_zero_init=False,
        pretrain_img_size=32,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
    )
    args.update(kwargs)
    return ViT(**args)


def _tiny_sfp(**kwargs) -> SimpleFeaturePyramid:
    # 16 px patches as ViTDet: pyramid strides 4..32 plus the max-pooled 64
    kwargs = dict(dict(patch_size=16, img_size=128, pretrain_img_size=64), **kwargs)
    return SimpleFeaturePyramid(
        _tiny_vit(**kwargs),
        in_feature="last_feat",
        out_channels=16,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        top_block=LastLevelMaxPool(),
        norm="LN",
        square_pad=128,
    )


def test_simple_feature_pyramid_shapes():
    torch.manual_seed(0)
    model = _tiny_sfp().eval()
    shapes = model.output_shape()
    assert list(shapes) == ["p2", "p3", "p4", "p5", "p6"]
    assert [shapes[k].stride for k in shapes] == [4, 8, 16, 32, 64]
    assert all(s.channels == 16 for s in shapes.values())
    assert model.padding_constraints == {"size_divisibility": 32, "square_size": 128}
    out = model(torch.randn(2, 3, 128, 128))
    assert list(out) == list(shapes)
    for name, t in out.items():
        side = 128 // shapes[name].stride
        assert t.shape == (2, 16, side, side), name
        assert torch.isfinite(t).all()


def test_simple_feature_pyramid_non_square_and_subset_of_scales():
    model = SimpleFeaturePyramid(_tiny_vit(), "last_feat", 8, (2.0, 1.0), norm="").eval()
    assert list(model.output_shape()) == ["p2", "p3"]
    out = model(torch.randn(1, 3, 48, 80))
    assert out["p2"].shape == (1, 8, 12, 20)
    assert out["p3"].shape == (1, 8, 6, 10)
    # norm="" gives biased convs and no norm modules
    assert model.simfp_3[0].bias is not None and model.simfp_3[0].norm is None


def test_vit_output_and_windowed_padding():
    torch.manual_seed(0)
    vit = _tiny_vit().eval()
    assert vit.output_shape()["last_feat"].channels == 32
    assert vit.output_shape()["last_feat"].stride == 8
    # 7x5 token grid: windows of 4 need padding on both axes
    out = vit(torch.randn(1, 3, 56, 40))["last_feat"]
    assert out.shape == (1, 32, 7, 5)
    assert torch.isfinite(out).all()


def test_window_partition_roundtrip():
    x = torch.randn(2, 7, 5, 3)
    windows, pad_hw = window_partition(x, 4)
    assert pad_hw == (8, 8)
    assert windows.shape == (2 * 4, 4, 4, 3)
    # window 1 of image 0 is rows 0-3, columns 4-7 (columns 5-7 are padding)
    assert torch.equal(windows[1, :, :1], x[0, 0:4, 4:5])
    assert torch.equal(windows[1, :, 1:], torch.zeros(4, 3, 3))
    # image 1 starts after image 0's 4 windows
    assert torch.equal(windows[4 + 2, :3, :], x[1, 4:7, 0:4])
    assert torch.equal(window_unpartition(windows, 4, pad_hw, (7, 5)), x)


def _loop_rel_pos_bias(q, rel_pos_h, rel_pos_w, hw):
    """Bias of query (i, j) to key (k, l): q_ij . Rh[i - k + h - 1] + q_ij . Rw[j - l + w - 1]."""
    h, w = hw
    B = q.shape[0]
    bias = torch.zeros(B, h * w, h * w, dtype=q.dtype)
    for b in range(B):
        for i in range(h):
            for j in range(w):
                qv = q[b, i * w + j]
                for k in range(h):
                    for m in range(w):
                        bias[b, i * w + j, k * w + m] = qv @ rel_pos_h[i - k + h - 1] + qv @ rel_pos_w[j - m + w - 1]
    return bias


def test_add_decomposed_rel_pos_against_loop():
    torch.manual_seed(0)
    h, w, c = 3, 4, 5
    q = torch.randn(2, h * w, c, dtype=torch.float64)
    rel_h = torch.randn(2 * h - 1, c, dtype=torch.float64)
    rel_w = torch.randn(2 * w - 1, c, dtype=torch.float64)
    attn = torch.randn(2, h * w, h * w, dtype=torch.float64)
    got = add_decomposed_rel_pos(attn, q, rel_h, rel_w, (h, w), (h, w))
    torch.testing.assert_close(got, attn + _loop_rel_pos_bias(q, rel_h, rel_w, (h, w)))


def test_rel_pos_table_is_resized_for_other_sizes():
    # a table for 3 positions (5 entries) used at 6 positions: linearly resized to 11
    # entries; a linear ramp stays a ramp with the same end points.
    c = 2
    table = torch.linspace(0, 1, 5)[:, None].repeat(1, c).double()
    q = torch.ones(1, 6 * 1, c, dtype=torch.float64)
    zero = torch.zeros(3, c, dtype=torch.float64)  # width axis is 1 long: its table needs 1 entry
    attn = torch.zeros(1, 6, 6, dtype=torch.float64)
    bias = add_decomposed_rel_pos(attn, q, table, zero[:1], (6, 1), (6, 1))
    # diagonal: offset 0, the centre of the ramp -> 0.5 per channel
    torch.testing.assert_close(torch.diagonal(bias[0]), torch.full((6,), 0.5 * c, dtype=torch.float64))
    # bias grows with query index minus key index
    assert (bias[0, 5, 0] > bias[0, 4, 0]) and (bias[0, 0, 5] < bias[0, 0, 4])


def _explicit_attention(attn_mod: Attention, x: torch.Tensor) -> torch.Tensor:
    B, H, W, C = x.shape
    nh = attn_mod.num_heads
    qkv = attn_mod.qkv(x).reshape(B, H * W, 3, nh, -1).permute(2, 0, 3, 1, 4).reshape(3, B * nh, H * W, -1)
    q, k, v = qkv.unbind(0)
    logits = (q * attn_mod.scale) @ k.transpose(-2, -1)
    if attn_mod.use_rel_pos:
        logits = logits + _loop_rel_pos_bias(q, attn_mod.rel_pos_h, attn_mod.rel_pos_w, (H, W))
    out = (logits.softmax(-1) @ v).view(B, nh, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
    return attn_mod.proj(out)


@pytest.mark.parametrize("use_rel_pos", [False, True])
def test_attention_matches_explicit_softmax(use_rel_pos):
    torch.manual_seed(0)
    mod = Attention(16, num_heads=2, use_rel_pos=use_rel_pos, rel_pos_zero_init=False, input_size=(3, 4)).double()
    x = torch.randn(2, 3, 4, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(mod(x), _explicit_attention(mod, x))


def test_window_block_equals_attention_per_window():
    torch.manual_seed(0)
    blk = Block(16, num_heads=2, window_size=4, use_rel_pos=True, rel_pos_zero_init=False).double().eval()
    x = torch.randn(1, 8, 8, 16, dtype=torch.float64)
    with torch.no_grad():
        got = blk(x)
        y = blk.norm1(x)
        attn = torch.zeros_like(y)
        for r in (0, 4):
            for c in (0, 4):
                attn[:, r : r + 4, c : c + 4] = blk.attn(y[:, r : r + 4, c : c + 4])
        y = x + attn
        expected = y + blk.mlp(blk.norm2(y))
    torch.testing.assert_close(got, expected)
    assert blk.attn.rel_pos_h.shape == (7, 8)  # sized for the window, not the image


def test_global_block_rel_pos_sized_for_input():
    blk = Block(16, num_heads=4, use_rel_pos=True, input_size=(10, 6))
    assert blk.attn.rel_pos_h.shape == (19, 4)
    assert blk.attn.rel_pos_w.shape == (11, 4)
    # other grids than input_size still run (tables resized)
    assert blk(torch.randn(1, 5, 7, 16)).shape == (1, 5, 7, 16)


def test_get_abs_pos_interpolation_from_pretrain_size():
    torch.manual_seed(0)
    grid = torch.randn(1, 16, 8)
    cls = torch.full((1, 1, 8), 1e6)
    pos = torch.cat([cls, grid], dim=1)
    # same grid: a plain reshape, cls token dropped
    torch.testing.assert_close(get_abs_pos(pos, True, (4, 4)), grid.reshape(1, 4, 4, 8))
    torch.testing.assert_close(get_abs_pos(grid, False, (4, 4)), grid.reshape(1, 4, 4, 8))
    # resized: shape follows hw, values stay bounded by the grid's (the cls value does not leak)
    big = get_abs_pos(pos, True, (8, 6))
    assert big.shape == (1, 8, 6, 8)
    assert big.abs().max() < 10
    # a constant embedding stays constant under bicubic resizing
    const = torch.full((1, 16, 8), 0.25)
    torch.testing.assert_close(get_abs_pos(const, False, (7, 9)), torch.full((1, 7, 9, 8), 0.25))
    with pytest.raises(ValueError, match="square"):
        get_abs_pos(torch.zeros(1, 15, 8), False, (4, 4))


def test_vit_uses_interpolated_abs_pos():
    torch.manual_seed(0)
    vit = _tiny_vit(depth=1, window_block_indexes=(), residual_block_indexes=(), use_rel_pos=False).eval()
    assert vit.pos_embed.shape == (1, 1 + 16, 32)  # 32 px pretrain / 8 px patches, plus cls
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        out = vit(x)["last_feat"]
        tokens = vit.patch_embed(x) + get_abs_pos(vit.pos_embed, True, (8, 6))
        expected = vit.blocks[0](tokens).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, expected)
    no_cls = _tiny_vit(pretrain_use_cls_token=False, use_abs_pos=True)
    assert no_cls.pos_embed.shape == (1, 16, 32)
    assert _tiny_vit(use_abs_pos=False).pos_embed is None


def _vit_b_expected_keys():
    """ViTDet ViT-B (window 14, rel-pos, global blocks 2, 5, 8, 11) keys and shapes, from
    the architecture: 1024 px / 16 = 64 tokens a side, head_dim 64."""
    keys = {
        "net.pos_embed": (1, 197, 768),
        "net.patch_embed.proj.weight": (768, 3, 16, 16),
        "net.patch_embed.proj.bias": (768,),
    }
    for i in range(12):
        p = f"net.blocks.{i}."
        side = 64 if i in (2, 5, 8, 11) else 14
        keys.update(
            {
                p + "norm1.weight": (768,),
                p + "norm1.bias": (768,),
                p + "attn.rel_pos_h": (2 * side - 1, 64),
                p + "attn.rel_pos_w": (2 * side - 1, 64),
                p + "attn.qkv.weight": (2304, 768),
                p + "attn.qkv.bias": (2304,),
                p + "attn.proj.weight": (768, 768),
                p + "attn.proj.bias": (768,),
                p + "norm2.weight": (768,),
                p + "norm2.bias": (768,),
                p + "mlp.fc1.weight": (3072, 768),
                p + "mlp.fc1.bias": (3072,),
                p + "mlp.fc2.weight": (768, 3072),
                p + "mlp.fc2.bias": (768,),
            }
        )
    convs = {2: ["0", "1", "3", "4", "5"], 3: ["0", "1", "2"], 4: ["0", "1"], 5: ["1", "2"]}
    in_dims = {2: 192, 3: 384, 4: 768, 5: 768}
    for stage, names in convs.items():
        p = f"simfp_{stage}."
        conv1x1, conv3x3 = names[-2], names[-1]
        if stage == 2:
            keys.update(
                {p + "0.weight": (768, 384, 2, 2), p + "0.bias": (384,), p + "1.weight": (384,), p + "1.bias": (384,)}
            )
            keys.update({p + "3.weight": (384, 192, 2, 2), p + "3.bias": (192,)})
        if stage == 3:
            keys.update({p + "0.weight": (768, 384, 2, 2), p + "0.bias": (384,)})
        keys[p + conv1x1 + ".weight"] = (256, in_dims[stage], 1, 1)
        keys[p + conv3x3 + ".weight"] = (256, 256, 3, 3)
        for c in (conv1x1, conv3x3):
            keys[p + c + ".norm.weight"] = (256,)
            keys[p + c + ".norm.bias"] = (256,)
    return keys


def test_vit_b_state_dict_matches_upstream_layout():
    with torch.device("meta"):  # shapes only: no 86M-parameter initialisation
        model = _vit_b_sfp()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == _vit_b_expected_keys()
    # ViT-B: 12 blocks of 4 * 768^2 (attn) + 8 * 768^2 (mlp) weights plus biases and norms,
    # the patch embedding, 197 abs positions and the rel-pos tables.
    d = 768
    per_block = (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d) + 4 * d
    rel = 8 * 2 * 27 * 64 + 4 * 2 * 127 * 64
    expected = 12 * per_block + (3 * 16 * 16 * d + d) + 197 * d + rel
    assert sum(p.numel() for p in model.net.parameters()) == expected
    assert 85.8e6 < expected < 86.0e6


def _vit_b_sfp() -> SimpleFeaturePyramid:
    net = ViT(
        img_size=1024,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        drop_path_rate=0.1,
        window_size=14,
        mlp_ratio=4,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        window_block_indexes=[0, 1, 3, 4, 6, 7, 9, 10],
        residual_block_indexes=[],
        use_rel_pos=True,
        out_feature="last_feat",
    )
    model = SimpleFeaturePyramid(
        net, "last_feat", 256, (4.0, 2.0, 1.0, 0.5), top_block=LastLevelMaxPool(), norm="LN", square_pad=1024
    )
    return model


def test_vit_residual_blocks_keys_and_identity_init():
    vit = _tiny_vit()
    keys = [k for k in vit.state_dict() if ".residual." in k]
    assert sorted(keys) == sorted(
        f"blocks.1.residual.{n}"
        for n in [
            "conv1.weight",
            "norm1.weight",
            "norm1.bias",
            "conv2.weight",
            "norm2.weight",
            "norm2.bias",
            "conv3.weight",
            "norm3.weight",
            "norm3.bias",
        ]
    )
    res = vit.blocks[1].residual
    x = torch.randn(1, 32, 5, 5)
    torch.testing.assert_close(res(x), x)  # zero-initialised last norm: identity at start
    assert not hasattr(vit.blocks[0], "residual")


def test_get_vit_lr_decay_rate_hand_cases():
    r = 0.5
    assert get_vit_lr_decay_rate("backbone.net.pos_embed", r, 12) == r**13
    assert get_vit_lr_decay_rate("backbone.net.patch_embed.proj.weight", r, 12) == r**13
    assert get_vit_lr_decay_rate("backbone.net.blocks.0.attn.qkv.weight", r, 12) == r**12
    assert get_vit_lr_decay_rate("backbone.net.blocks.11.mlp.fc2.bias", r, 12) == r**1
    assert get_vit_lr_decay_rate("backbone.net.blocks.3.norm1.weight", r, 4) == r**1
    # residual conv blocks, the pyramid, heads and non-backbone params: factor 1
    assert get_vit_lr_decay_rate("backbone.net.blocks.2.residual.conv1.weight", r, 12) == 1.0
    assert get_vit_lr_decay_rate("backbone.simfp_2.0.weight", r, 12) == 1.0
    assert get_vit_lr_decay_rate("roi_heads.box_head.fc1.weight", r, 12) == 1.0
    assert get_vit_lr_decay_rate("net.blocks.0.attn.qkv.weight", r, 12) == 1.0
    assert get_vit_lr_decay_rate("backbone.net.blocks.5.attn.proj.weight") == 1.0


def test_gradients_flow_everywhere():
    torch.manual_seed(0)
    model = _tiny_sfp(drop_path_rate=0.1).train()
    out = model(torch.randn(1, 3, 64, 64))
    sum(t.float().pow(2).mean() for t in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    nonzero = [n for n, p in model.named_parameters() if p.grad.abs().sum() > 0]
    # everything but the convs feeding the zero-initialised residual norm3 gets signal
    assert "net.pos_embed" in nonzero and "net.blocks.0.attn.rel_pos_h" in nonzero
    assert "net.blocks.1.residual.norm3.weight" in nonzero


def test_activation_checkpointing_same_result():
    torch.manual_seed(0)
    plain = _tiny_vit(depth=2, residual_block_indexes=()).train()
    ckpt = _tiny_vit(depth=2, residual_block_indexes=(), use_act_checkpoint=True).train()
    ckpt.load_state_dict(plain.state_dict())
    assert list(plain.state_dict()) == list(ckpt.state_dict())
    x = torch.randn(1, 3, 32, 32)
    outs = []
    for m in (plain, ckpt):
        y = m(x)["last_feat"]
        y.sum().backward()
        outs.append((y.detach(), m.blocks[0].attn.qkv.weight.grad.clone()))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])


def test_drop_path_and_mlp():
    dp = DropPath(0.5)
    x = torch.ones(64, 3, 4)
    assert torch.equal(dp.eval()(x), x)
    torch.manual_seed(0)
    y = dp.train()(x)
    per_sample = y.flatten(1)
    # whole samples are either dropped or scaled by 1 / keep
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()
    assert 0 < (per_sample[:, 0] == 0).sum() < 64
    with pytest.raises(ValueError, match="drop_prob"):
        DropPath(1.0)
    mlp = Mlp(8, hidden_features=24, out_features=4)
    assert [k for k in mlp.state_dict()] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert mlp(torch.randn(2, 8)).shape == (2, 4)


def test_patch_embed_channels_last_tokens():
    pe = PatchEmbed(kernel_size=(4, 4), stride=(4, 4), in_chans=2, embed_dim=6)
    assert pe(torch.randn(1, 2, 16, 12)).shape == (1, 4, 3, 6)


def test_non_contiguous_input_same_result():
    torch.manual_seed(0)
    model = _tiny_sfp().eval()
    x = torch.randn(1, 64, 64, 3)
    with torch.no_grad():
        a = model(x.permute(0, 3, 1, 2))
        b = model(x.permute(0, 3, 1, 2).contiguous())
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_bad_inputs_raise():
    model = _tiny_sfp().eval()
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="multiples of patch_size"):
        model(torch.randn(1, 3, 60, 64))
    with pytest.raises(ValueError, match="N, C, H, W"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="scale_factors"):
        SimpleFeaturePyramid(_tiny_vit(), "last_feat", 8, (3.0,))
    with pytest.raises(ValueError, match="double"):
        SimpleFeaturePyramid(_tiny_vit(), "last_feat", 8, (4.0, 1.0))
    with pytest.raises(ValueError, match="in_feature"):
        SimpleFeaturePyramid(_tiny_vit(), "res5", 8, (1.0,))
    with pytest.raises(TypeError, match="Backbone"):
        SimpleFeaturePyramid(nn.Identity(), "last_feat", 8, (1.0,))
    with pytest.raises(ValueError, match="num_heads"):
        Attention(10, num_heads=3)
    with pytest.raises(ValueError, match="input_size"):
        Attention(8, num_heads=2, use_rel_pos=True)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    model = _tiny_sfp().eval()
    x = torch.randn(2, 3, 64, 64)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # full fp32 for parity
    try:
        with torch.no_grad():
            ref = model(x)
            got = model.cuda()(x.cuda())
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    for k in ref:
        torch.testing.assert_close(got[k].cpu(), ref[k], rtol=1e-4, atol=1e-4)
    # training step on CUDA: gradients everywhere
    model.train()
    out = model(x.cuda())
    sum(t.sum() for t in out.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, 2, 64, 64, device="cuda"))
