"""Swin Transformer backbone."""
import pytest
import torch

from detectron2.modeling import SwinTransformer
from detectron2.modeling.backbone.swin import BasicLayer, PatchMerging, WindowAttention


def _tiny_swin(**kwargs) -> SwinTransformer:
    args = dict(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=4, drop_path_rate=0.1)
    args.update(kwargs)
    return SwinTransformer(**args)


def test_swin_output_shapes_with_padding():
    torch.manual_seed(0)
    model = _tiny_swin().eval()
    assert {k: (s.channels, s.stride) for k, s in model.output_shape().items()} == {
        "p0": (8, 4),
        "p1": (16, 8),
        "p2": (32, 16),
        "p3": (64, 32),
    }
    assert model.size_divisibility == 32
    out = model(torch.randn(2, 3, 70, 100))  # not multiples of the patch or the windows
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "p0": (2, 8, 18, 25),
        "p1": (2, 16, 9, 13),
        "p2": (2, 32, 5, 7),
        "p3": (2, 64, 3, 4),
    }
    assert all(torch.isfinite(v).all() for v in out.values())


def test_swin_state_dict_keys():
    model = _tiny_swin(out_indices=(1, 3), ape=True, pretrain_img_size=32)
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    block = {
        "norm1.weight": (8,),
        "norm1.bias": (8,),
        "attn.relative_position_bias_table": (49, 1),
        "attn.relative_position_index": (16, 16),
        "attn.qkv.weight": (24, 8),
        "attn.qkv.bias": (24,),
        "attn.proj.weight": (8, 8),
        "attn.proj.bias": (8,),
        "norm2.weight": (8,),
        "norm2.bias": (8,),
        "mlp.fc1.weight": (32, 8),
        "mlp.fc1.bias": (32,),
        "mlp.fc2.weight": (8, 32),
        "mlp.fc2.bias": (8,),
    }
    expected = {"layers.0.blocks.1." + k: v for k, v in block.items()}
    assert {k: v for k, v in keys.items() if k.startswith("layers.0.blocks.1.")} == expected
    assert keys["absolute_pos_embed"] == (1, 8, 8, 8)
    assert keys["patch_embed.proj.weight"] == (8, 3, 4, 4)
    assert keys["patch_embed.norm.weight"] == (8,)
    assert keys["layers.0.downsample.reduction.weight"] == (16, 32)
    assert keys["layers.0.downsample.norm.weight"] == (32,)
    assert "layers.3.downsample.reduction.weight" not in keys
    assert keys["layers.3.blocks.0.attn.relative_position_bias_table"] == (49, 4)
    norms = sorted(k for k in keys if k.startswith("norm"))
    assert norms == ["norm1.bias", "norm1.weight", "norm3.bias", "norm3.weight"]
    assert list(model(torch.randn(1, 3, 64, 64))) == ["p1", "p3"]


def test_relative_position_index_hand_case():
    attn = WindowAttention(4, (2, 2), num_heads=1)
    # positions (0,0),(0,1),(1,0),(1,1); index = (dh + 1) * 3 + (dw + 1)
    expected = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
    assert torch.equal(attn.relative_position_index, expected)


def test_shift_mask_separates_rolled_regions():
    layer = BasicLayer(8, depth=2, num_heads=1, window_size=4)
    mask = layer._shift_mask(4, 4, torch.device("cpu"))  # one window, shift 2: four quadrants
    assert mask.shape == (1, 16, 16)
    quadrant = torch.tensor([(r // 2) * 2 + c // 2 for r in range(4) for c in range(4)])
    same = quadrant[:, None] == quadrant[None, :]
    assert torch.equal(mask[0] == 0, same)
    assert torch.all(mask[0][~same] == -100.0)


def _explicit_window_attention(mod: WindowAttention, x, mask):
    B_, N, C = x.shape
    nh = mod.num_heads
    q, k, v = mod.qkv(x).reshape(B_, N, 3, nh, C // nh).permute(2, 0, 3, 1, 4).unbind(0)
    attn = (q * mod.scale) @ k.transpose(-2, -1)
    bias = mod.relative_position_bias_table[mod.relative_position_index.view(-1)].view(N, N, -1)
    attn = attn + bias.permute(2, 0, 1)[None]
    if mask is not None:
        nW = mask.shape[0]
        attn = (attn.view(B_ // nW, nW, nh, N, N) + mask[None, :, None]).view(B_, nh, N, N)
    return mod.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(B_, N, C))


@pytest.mark.parametrize("qk_scale", [None, 0.1])
def test_window_attention_matches_explicit(qk_scale):
    torch.manual_seed(0)
    mod = WindowAttention(8, (2, 2), num_heads=2, qk_scale=qk_scale).double().eval()
    x = torch.randn(3 * 2, 4, 8, dtype=torch.float64)  # batch 3, 2 windows each
    mask = torch.zeros(2, 4, 4, dtype=torch.float64)
    mask[1, :2, 2:] = -100.0
    mask[1, 2:, :2] = -100.0
    with torch.no_grad():
        for m in (None, mask):
            torch.testing.assert_close(mod(x, m), _explicit_window_attention(mod, x, m))


def test_patch_merging_order_and_odd_sizes():
    pm = PatchMerging(1)
    with torch.no_grad():
        pm.reduction.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]))
        pm.norm = torch.nn.Identity()
    x = torch.arange(9.0).view(1, 9, 1)  # 3x3 map, values r * 3 + c
    out = pm(x, 3, 3)
    assert out.shape == (1, 4, 2)
    # channel 0 picks (even row, even col), channel 1 picks (even row, odd col)
    torch.testing.assert_close(out[0, :, 0], torch.tensor([0.0, 2.0, 6.0, 8.0]))
    torch.testing.assert_close(out[0, :, 1], torch.tensor([1.0, 0.0, 7.0, 0.0]))


def test_frozen_stages():
    model = _tiny_swin(frozen_stages=2, ape=True, pretrain_img_size=32).train()
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not model.absolute_pos_embed.requires_grad
    assert not any(p.requires_grad for p in model.layers[0].parameters())
    assert all(p.requires_grad for p in model.layers[1].parameters())
    assert not model.patch_embed.training and not model.layers[0].training and model.layers[1].training
    unfrozen = _tiny_swin(frozen_stages=-1)
    assert all(p.requires_grad for p in unfrozen.parameters())


def test_swin_gradients_and_checkpointing():
    torch.manual_seed(0)
    a = _tiny_swin(drop_path_rate=0.0).train()
    b = _tiny_swin(drop_path_rate=0.0, use_checkpoint=True).train()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 64)
    ya, yb = a(x), b(x)
    sum(v.pow(2).mean() for v in ya.values()).backward()
    sum(v.pow(2).mean() for v in yb.values()).backward()
    assert [n for n, p in a.named_parameters() if p.grad is None] == []
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=name)


def test_swin_non_contiguous_and_bad_inputs():
    torch.manual_seed(0)
    model = _tiny_swin().eval()
    x = torch.randn(1, 64, 64, 3)
    with torch.no_grad():
        a, b = model(x.permute(0, 3, 1, 2)), model(x.permute(0, 3, 1, 2).contiguous())
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    with pytest.raises(ValueError, match="in_chans"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="in_chans"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="out_indices"):
        _tiny_swin(out_indices=(4,))
    with pytest.raises(ValueError, match="num_heads"):
        _tiny_swin(num_heads=(1, 2))
    with pytest.raises(ValueError, match="num_heads"):
        WindowAttention(10, (2, 2), num_heads=3)


@pytest.mark.cuda
def test_swin_cuda_matches_cpu():
    torch.manual_seed(0)
    model = _tiny_swin().eval()
    x = torch.randn(2, 3, 70, 100)
    with torch.no_grad():
        ref = model(x)
        got = model.cuda()(x.cuda())
    for k in ref:
        torch.testing.assert_close(got[k].cpu(), ref[k], rtol=1e-4, atol=1e-4)
    model.train()
    sum(v.sum() for v in model(x.cuda()).values()).backward()
    assert all(p.grad is not None for p in model.parameters())
