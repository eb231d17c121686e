"""MViTv2 backbone."""
import pytest
import torch

from detectron2.modeling import MViT
from detectron2.modeling.backbone.mvit import MultiScaleAttention, MultiScaleBlock, attention_pool
from detectron2.modeling.backbone.utils import add_decomposed_rel_pos, get_rel_pos


def _tiny_mvit(**kwargs) -> MViT:
    args = dict(
        img_size=64,
        embed_dim=8,
        depth=5,
        num_heads=1,
        last_block_indexes=(0, 2, 3, 4),
        adaptive_window_size=8,
        rel_pos_zero_init=False,
    )
    args.update(kwargs)
    return MViT(**args)


def test_mvit_output_shapes():
    torch.manual_seed(0)
    model = _tiny_mvit().eval()
    shapes = model.output_shape()
    assert {k: (s.channels, s.stride) for k, s in shapes.items()} == {
        "scale2": (8, 4),
        "scale3": (16, 8),
        "scale4": (32, 16),
        "scale5": (64, 32),
    }
    out = model(torch.randn(2, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "scale2": (2, 8, 16, 24),
        "scale3": (2, 16, 8, 12),
        "scale4": (2, 32, 4, 6),
        "scale5": (2, 64, 2, 3),
    }
    assert all(torch.isfinite(v).all() for v in out.values())


def test_mvit_subset_of_outputs_and_abs_pos():
    model = _tiny_mvit(out_features=("scale3", "scale5"), use_abs_pos=True, pretrain_img_size=32).eval()
    assert model.pos_embed.shape == (1, 1 + 64, 8)
    assert not hasattr(model, "scale2_norm") and hasattr(model, "scale3_norm")
    out = model(torch.randn(1, 3, 64, 64))
    assert list(out) == ["scale3", "scale5"]
    with pytest.raises(ValueError, match="out_features"):
        _tiny_mvit(out_features=("scale6",))


def test_mvit_state_dict_keys():
    model = _tiny_mvit()
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    attn0 = {
        "rel_pos_h": (31, 8),  # 16 tokens a side, no pooling of q, kv pooled by 4: 2 * 16 - 1
        "rel_pos_w": (31, 8),
        "qkv.weight": (24, 8),
        "qkv.bias": (24,),
        "proj.weight": (8, 8),
        "proj.bias": (8,),
        "pool_q.weight": (8, 1, 3, 3),
        "norm_q.weight": (8,),
        "norm_q.bias": (8,),
        "pool_k.weight": (8, 1, 3, 3),
        "norm_k.weight": (8,),
        "norm_k.bias": (8,),
        "pool_v.weight": (8, 1, 3, 3),
        "norm_v.weight": (8,),
        "norm_v.bias": (8,),
    }
    for name, shape in attn0.items():
        assert keys["blocks.0.attn." + name] == shape, name
    # block 1 opens stage 3: channels 8 -> 16, 2 heads of 8, queries pooled by 2
    assert keys["blocks.1.proj.weight"] == (16, 8)
    assert keys["blocks.1.attn.qkv.weight"] == (48, 8)
    assert keys["blocks.1.attn.pool_q.weight"] == (8, 1, 3, 3)
    assert keys["blocks.1.attn.rel_pos_h"] == (15, 8)
    assert keys["blocks.1.mlp.fc1.weight"] == (64, 16)
    assert "blocks.2.proj.weight" not in keys
    for stage, ch in zip(range(2, 6), (8, 16, 32, 64)):
        assert keys[f"scale{stage}_norm.weight"] == (ch,)
    assert keys["patch_embed.proj.weight"] == (8, 3, 7, 7)
    assert isinstance(model.blocks[1].pool_skip, torch.nn.MaxPool2d)
    assert not hasattr(model.blocks[2], "pool_skip")
    # stage 2 and first blocks of stages 3/4 use windows; last blocks attend globally
    assert [b.attn.window_size for b in model.blocks] == [8, 8, 0, 0, 0]


def test_get_rel_pos_unequal_sizes_hand_case():
    # 4 queries, 2 keys: key coordinates are stretched by 2, offset = i - 2k + 2
    table = torch.arange(7, dtype=torch.float64)[:, None]
    got = get_rel_pos(4, 2, table)[..., 0]
    expected = torch.tensor([[i - 2 * k + 2 for k in range(2)] for i in range(4)], dtype=torch.float64)
    torch.testing.assert_close(got, expected)


def _explicit_msa(mod: MultiScaleAttention, x: torch.Tensor) -> torch.Tensor:
    """Global MultiScaleAttention with an explicit softmax."""
    B, H, W, _ = x.shape
    nh = mod.num_heads
    qkv = mod.qkv(x).reshape(B, H, W, 3, nh, -1).permute(3, 0, 4, 1, 2, 5)
    q, k, v = qkv.reshape(3, B * nh, H, W, -1).unbind(0)
    q = attention_pool(q, mod.pool_q, mod.norm_q)
    k = attention_pool(k, mod.pool_k, mod.norm_k)
    v = attention_pool(v, mod.pool_v, mod.norm_v)
    q_hw, kv_hw = q.shape[1:3], k.shape[1:3]
    pooled_q = q
    q, k, v = (t.reshape(t.shape[0], -1, t.shape[-1]) for t in (q, k, v))
    logits = (q * mod.scale) @ k.transpose(-2, -1)
    logits = add_decomposed_rel_pos(logits, q, mod.rel_pos_h, mod.rel_pos_w, q_hw, kv_hw)
    out = (logits.softmax(-1) @ v).view(-1, q_hw[0], q_hw[1], v.shape[-1]) + pooled_q
    out = out.view(B, nh, q_hw[0], q_hw[1], -1).permute(0, 2, 3, 1, 4).reshape(B, q_hw[0], q_hw[1], -1)
    return mod.proj(out)


@pytest.mark.parametrize("stride_q,stride_kv", [(1, 2), (2, 2), (2, 1)])
def test_multiscale_attention_matches_explicit(stride_q, stride_kv):
    torch.manual_seed(0)
    mod = MultiScaleAttention(
        8, 16, num_heads=2, stride_q=stride_q, stride_kv=stride_kv, use_rel_pos=True, rel_pos_zero_init=False,
        input_size=(8, 8),
    ).double()
    x = torch.randn(2, 8, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        got = mod(x)
        torch.testing.assert_close(got, _explicit_msa(mod, x))
    assert got.shape == (2, 8 // stride_q, 8 // stride_q, 16)


def test_windowed_attention_equals_per_window_global():
    # with 1x1 pooling every position is processed independently outside attention, so
    # 4x4 windows over an 8x8 map equal global attention on each 4x4 crop
    torch.manual_seed(0)
    kwargs = dict(
        num_heads=2, pool_kernel=(1, 1), use_rel_pos=True, rel_pos_zero_init=False, input_size=(4, 4)
    )
    win = MultiScaleAttention(8, 8, window_size=4, **kwargs).double()
    glob = MultiScaleAttention(8, 8, window_size=0, **kwargs).double()
    glob.load_state_dict(win.state_dict())
    x = torch.randn(2, 8, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        got = win(x)
        for r in (0, 4):
            for c in (0, 4):
                torch.testing.assert_close(got[:, r : r + 4, c : c + 4], glob(x[:, r : r + 4, c : c + 4]))
    # a window covering the whole map is global attention
    whole = MultiScaleAttention(8, 8, window_size=8, **dict(kwargs, input_size=(8, 8))).double()
    full = MultiScaleAttention(8, 8, window_size=0, **dict(kwargs, input_size=(8, 8))).double()
    full.load_state_dict(whole.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(whole(x), full(x))


def test_block_skip_path_pooling_and_projection():
    blk = MultiScaleBlock(8, 16, num_heads=2, stride_q=2, stride_kv=1, use_rel_pos=False)
    out = blk(torch.randn(1, 7, 9, 8))
    assert out.shape == (1, 4, 5, 16)  # ceil(7 / 2), ceil(9 / 2) on both paths


def test_mvit_gradients_flow():
    torch.manual_seed(0)
    model = _tiny_mvit(drop_path_rate=0.1).train()
    out = model(torch.randn(1, 3, 64, 64))
    sum(v.pow(2).mean() for v in out.values()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_mvit_act_checkpoint_same_result():
    torch.manual_seed(0)
    a = _tiny_mvit(depth=4, last_block_indexes=(0, 1, 2, 3)).train()
    b = _tiny_mvit(depth=4, last_block_indexes=(0, 1, 2, 3), use_act_checkpoint=True).train()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 32, 32)
    ya, yb = a(x)["scale5"], b(x)["scale5"]
    torch.testing.assert_close(ya, yb)
    ya.sum().backward()
    yb.sum().backward()
    torch.testing.assert_close(a.patch_embed.proj.weight.grad, b.patch_embed.proj.weight.grad)


def test_mvit_non_contiguous_and_bad_inputs():
    torch.manual_seed(0)
    model = _tiny_mvit().eval()
    x = torch.randn(1, 64, 64, 3)
    with torch.no_grad():
        a, b = model(x.permute(0, 3, 1, 2)), model(x.permute(0, 3, 1, 2).contiguous())
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    with pytest.raises(ValueError, match="in_chans"):
        model(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match="in_chans"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="last_block_indexes"):
        _tiny_mvit(last_block_indexes=(0, 1, 2))
    with pytest.raises(ValueError, match="num_heads"):
        MultiScaleAttention(8, 10, num_heads=3)
    with pytest.raises(ValueError, match="square input_size"):
        MultiScaleAttention(8, 8, num_heads=1, use_rel_pos=True, input_size=(4, 6))


@pytest.mark.cuda
def test_mvit_cuda_matches_cpu():
    torch.manual_seed(0)
    model = _tiny_mvit().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        got = model.cuda()(x.cuda())
    for k in ref:
        torch.testing.assert_close(got[k].cpu(), ref[k], rtol=1e-4, atol=1e-4)
    model.train()
    sum(v.sum() for v in model(x.cuda()).values()).backward()
    assert all(p.grad is not None for p in model.parameters())
