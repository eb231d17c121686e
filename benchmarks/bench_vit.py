"""ViT-B/16 (+ SimpleFeaturePyramid) forward: ours vs plain-PyTorch peers at the same size.

Rows:
- "ViTDet-B backbone": our ViT (window 14 in 8 blocks, global in 4, decomposed rel-pos)
  vs a reference running the same weights with the textbook attention (explicit
  logits + rel-pos bias, softmax, matmul), as upstream computes it.
- "ViT-B global, abs-pos only": our ViT with global attention everywhere vs
  torchvision's vit_b_16 encoder (nn.MultiheadAttention) at the same token count.
- "ViTDet-B + SimpleFeaturePyramid": the full backbone (p2-p6), ours only vs row 1's
  reference plus our pyramid.
Inference mode, batch 1, 1024x1024 (ViTDet's input); --quick uses 128x128 and 1 block.

Usage: python benchmarks/bench_vit.py [--device cuda] [--quick] [--iters N]
"""
import os
import sys
from functools import partial

import torch
from torch import nn
from torchvision.models import vit_b_16

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.modeling import SimpleFeaturePyramid, ViT  # noqa: E402
from detectron2.modeling.backbone.fpn import LastLevelMaxPool  # noqa: E402
from detectron2.modeling.backbone.utils import (  # noqa: E402
    add_decomposed_rel_pos,
    get_abs_pos,
    window_partition,
    window_unpartition,
)


def _vitdet_b(img: int, depth: int, global_attn: bool) -> ViT:
    windows = [] if global_attn else [i for i in range(depth) if i % 3 != 2]
    return ViT(
        img_size=img,
        patch_size=16,
        embed_dim=768,
        depth=depth,
        num_heads=12,
        window_size=14,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        window_block_indexes=windows,
        use_rel_pos=not global_attn,
        rel_pos_zero_init=False,
        out_feature="last_feat",
    )


def _explicit_attention(mod, x: torch.Tensor) -> torch.Tensor:
    B, H, W, _ = x.shape
    qkv = mod.qkv(x).reshape(B, H * W, 3, mod.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(3, B * mod.num_heads, H * W, -1).unbind(0)
    attn = (q * mod.scale) @ k.transpose(-2, -1)
    if mod.use_rel_pos:
        attn = add_decomposed_rel_pos(attn, q, mod.rel_pos_h, mod.rel_pos_w, (H, W), (H, W))
    x = (attn.softmax(dim=-1) @ v).view(B, mod.num_heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
    return mod.proj(x)


def _reference_forward(vit: ViT, x: torch.Tensor) -> torch.Tensor:
    """Same weights and math as ``vit``, attention computed explicitly."""
    x = vit.patch_embed(x)
    x = x + get_abs_pos(vit.pos_embed, True, (x.shape[1], x.shape[2]))
    for blk in vit.blocks:
        shortcut = x
        y = blk.norm1(x)
        if blk.window_size > 0:
            H, W = y.shape[1], y.shape[2]
            y, pad_hw = window_partition(y, blk.window_size)
            y = window_unpartition(_explicit_attention(blk.attn, y), blk.window_size, pad_hw, (H, W))
        else:
            y = _explicit_attention(blk.attn, y)
        x = shortcut + y
        x = x + blk.mlp(blk.norm2(x))
    return x.permute(0, 3, 1, 2)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    device = torch.device(args.device)
    img, depth = (128, 1) if args.quick else (1024, 12)
    torch.manual_seed(0)
    x = torch.randn(1, 3, img, img, device=device)
    rows = []

    with torch.inference_mode():
        ours = _vitdet_b(img, depth, global_attn=False).to(device).eval()
        sfp = SimpleFeaturePyramid(
            ours, "last_feat", 256, (4.0, 2.0, 1.0, 0.5), top_block=LastLevelMaxPool(), square_pad=img
        ).to(device).eval()
        torch.testing.assert_close(ours(x)["last_feat"], _reference_forward(ours, x), rtol=1e-3, atol=1e-3)
        t_ours = time_fn(lambda: ours(x), args.device, iters=args.iters, warmup=1)
        t_ref = time_fn(lambda: _reference_forward(ours, x), args.device, iters=args.iters, warmup=1)
        rows.append(("ViTDet-B backbone", f"{img}x{img}", t_ours, t_ref, t_ours / t_ref))

        t_sfp = time_fn(lambda: sfp(x), args.device, iters=args.iters, warmup=1)

        def ref_sfp():
            feat = _reference_forward(ours, x)
            outs = [stage(feat) for stage in sfp.stages]
            return outs + sfp.top_block(outs[-1])

        t_ref_sfp = time_fn(ref_sfp, args.device, iters=args.iters, warmup=1)
        rows.append(("ViTDet-B + SimpleFeaturePyramid", f"{img}x{img}", t_sfp, t_ref_sfp, t_sfp / t_ref_sfp))
        del ours, sfp

        ours_global = _vitdet_b(img, depth, global_attn=True).to(device).eval()
        tv = vit_b_16(image_size=img).to(device).eval()
        tv.encoder.layers = tv.encoder.layers[:depth]

        def tv_forward():
            tokens = tv._process_input(x)
            cls = tv.class_token.expand(tokens.shape[0], -1, -1)
            return tv.encoder(torch.cat([cls, tokens], dim=1))

        t_ours = time_fn(lambda: ours_global(x), args.device, iters=args.iters, warmup=1)
        t_tv = time_fn(tv_forward, args.device, iters=args.iters, warmup=1)
        rows.append(("ViT-B global, abs-pos only (peer: torchvision)", f"{img}x{img}", t_ours, t_tv, t_ours / t_tv))

    print(f"# ViT-B/16 forward, batch 1, {depth} blocks, {describe_device(args.device)}")
    print_table(rows, ["case", "input", "ours (ms)", "peer (ms)", "ours/peer"])


if __name__ == "__main__":
    main()
