"""DeepLab: the poly schedule, the hard-pixel-mining loss against a direct computation,
the DeepLab ResNet's strides/dilations and the V3 / V3+ models built from the shipped
configs training and inferring on tiny inputs on CPU."""
import math

import pytest
import torch
from torch.nn import functional as F

from detectron2.config import get_cfg
from detectron2.modeling import build_backbone, build_model
from detectron2.projects import get_project_config_file
from detectron2.projects.deeplab import (
    DeepLabCE,
    WarmupPolyLR,
    add_deeplab_config,
    build_lr_scheduler,
    build_resnet_deeplab_backbone,
)
from detectron2.utils.events import EventStorage

V3 = "Cityscapes-SemanticSegmentation/deeplab_v3_R_103_os16_mg124_poly_90k_bs16.yaml"
V3P = "Cityscapes-SemanticSegmentation/deeplab_v3_plus_R_103_os16_mg124_poly_90k_bs16.yaml"


def _cfg(path: str, crop=(64, 128)):
    cfg = get_cfg()
    add_deeplab_config(cfg)
    cfg.merge_from_file(get_project_config_file("DeepLab", path))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = 50
    cfg.MODEL.RESNETS.NORM = "BN"  # SyncBN needs a process group
    cfg.MODEL.SEM_SEG_HEAD.NORM = "BN"
    cfg.INPUT.CROP.SIZE = crop
    return cfg


def test_add_deeplab_config_defaults():
    cfg = get_cfg()
    add_deeplab_config(cfg)
    assert cfg.SOLVER.POLY_LR_POWER == 0.9 and cfg.SOLVER.POLY_LR_CONSTANT_ENDING == 0.0
    assert cfg.MODEL.SEM_SEG_HEAD.LOSS_TYPE == "hard_pixel_mining"
    assert cfg.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS == [6, 12, 18]
    assert cfg.MODEL.RESNETS.RES5_MULTI_GRID == [1, 2, 4] and cfg.MODEL.RESNETS.STEM_TYPE == "deeplab"


def test_warmup_poly_lr_follows_the_formula():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    sched = WarmupPolyLR(opt, max_iters=100, warmup_factor=0.1, warmup_iters=10, power=0.9)
    for it in range(100):
        warm = 0.1 * (1 - it / 10) + it / 10 if it < 10 else 1.0
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * warm * (1 - it / 100) ** 0.9, rel=1e-12)
        opt.step()
        sched.step()
    opt = torch.optim.SGD([p], lr=1.0)
    sched = WarmupPolyLR(opt, max_iters=100, warmup_iters=0, power=1.0, constant_ending=0.2)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert min(lrs) == pytest.approx(0.2) and lrs[79] == pytest.approx(0.21)
    assert sched.last_epoch == 100 and opt.param_groups[0]["lr"] == pytest.approx(0.2)  # at max_iters: defined
    opt.step()
    with pytest.raises(ValueError, match="past max_iters"):
        sched.step()


def test_build_lr_scheduler_picks_poly_or_falls_back():
    cfg = _cfg(V3)
    p = torch.nn.Parameter(torch.zeros(1))
    assert isinstance(build_lr_scheduler(cfg, torch.optim.SGD([p], lr=0.1)), WarmupPolyLR)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    assert not isinstance(build_lr_scheduler(cfg, torch.optim.SGD([p], lr=0.1)), WarmupPolyLR)


@pytest.mark.parametrize("top_k", [1.0, 0.2, 0.05])
def test_deeplab_ce_is_mean_of_the_worst_pixels(top_k):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 7, 9, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (2, 7, 9), generator=g)
    labels[0, :2] = 255
    loss = DeepLabCE(ignore_label=255, top_k_percent_pixels=top_k)(logits, labels)
    # reference: per-pixel -log softmax at the label, 0 where ignored, sort, average the top
    logp = torch.log_softmax(logits, dim=1)
    per = []
    for n in range(2):
        for y in range(7):
            for x in range(9):
                lab = int(labels[n, y, x])
                per.append(0.0 if lab == 255 else -float(logp[n, lab, y, x]))
    per.sort(reverse=True)
    k = int(top_k * len(per))
    assert float(loss) == pytest.approx(sum(per[:k]) / k, rel=1e-10)
    w = torch.rand(2, 7, 9, generator=g, dtype=torch.float64)
    weighted = DeepLabCE(ignore_label=255)(logits, labels, w)
    ce = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
    assert float(weighted) == pytest.approx(float((ce * w).mean()), rel=1e-10)


def test_deeplab_backbone_strides_dilations_and_stem():
    cfg = _cfg(V3P)
    bb = build_backbone(cfg)
    shapes = bb.output_shape()
    assert {k: v.stride for k, v in shapes.items()} == {"res2": 4, "res5": 16}
    assert shapes["res5"].channels == 2048
    # deeplab stem: three 3x3 convs 3 -> 64 -> 64 -> 128
    assert [tuple(c.weight.shape) for c in (bb.stem.conv1, bb.stem.conv2, bb.stem.conv3)] == [
        (64, 3, 3, 3), (64, 64, 3, 3), (128, 64, 3, 3)]
    # res5 is dilated 2 with multi-grid (1, 2, 4): dilations 2, 4, 8 in its 3x3 convs
    assert [b.conv2.dilation[0] for b in bb.res5] == [2, 4, 8]
    out = bb(torch.zeros(1, 3, 64, 96))
    assert out["res5"].shape[-2:] == (4, 6) and out["res2"].shape[-2:] == (16, 24)
    # independent count: torchvision's resnet50 (no fc) with the 7x7 stem replaced by three
    # 3x3 convs + BN (3->64->64->128) and res2's first block taking 128 input channels
    import torchvision

    tv = torchvision.models.resnet50()
    tv.conv1 = torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 3, bias=False), torch.nn.BatchNorm2d(64),
        torch.nn.Conv2d(64, 64, 3, bias=False), torch.nn.BatchNorm2d(64),
        torch.nn.Conv2d(64, 128, 3, bias=False))
    tv.bn1 = torch.nn.BatchNorm2d(128)
    tv.layer1[0].conv1 = torch.nn.Conv2d(128, 64, 1, bias=False)
    tv.layer1[0].downsample[0] = torch.nn.Conv2d(128, 256, 1, bias=False)
    tv.fc = torch.nn.Identity()
    assert sum(p.numel() for p in bb.parameters()) == sum(p.numel() for p in tv.parameters())
    cfg.MODEL.RESNETS.STEM_TYPE = "other"
    with pytest.raises(ValueError, match="STEM_TYPE"):
        build_backbone(cfg)
    cfg = _cfg(V3P)
    cfg.MODEL.RESNETS.RES4_DILATION = 3
    with pytest.raises(AssertionError, match="RES4_DILATION"):
        build_backbone(cfg)


@pytest.mark.parametrize("path", [V3, V3P])
def test_deeplab_models_train_and_infer(path):
    torch.manual_seed(0)
    cfg = _cfg(path)
    model = build_model(cfg)
    g = torch.Generator().manual_seed(0)
    inputs = [
        {"image": torch.rand(3, 64, 128, generator=g) * 255, "sem_seg": torch.randint(0, 19, (64, 128), generator=g)}
        for _ in range(2)
    ]
    inputs[1]["sem_seg"][:, :20] = 255
    model.train()
    with EventStorage():
        losses = model(inputs)
    assert set(losses) == {"loss_sem_seg"} and torch.isfinite(losses["loss_sem_seg"])
    losses["loss_sem_seg"].backward()
    assert model.sem_seg_head.predictor.weight.grad is not None
    model.eval()
    with torch.no_grad():
        out = model([{"image": inputs[0]["image"], "height": 32, "width": 64}])
    assert out[0]["sem_seg"].shape == (19, 32, 64)


def test_deeplab_v3_plus_head_keys_and_depthwise_variant():
    cfg = _cfg(V3P)
    model = build_model(cfg)
    keys = {k.split(".", 1)[1] for k in model.state_dict() if k.startswith("sem_seg_head.")}
    assert "decoder.res2.project_conv.weight" in keys
    assert "decoder.res2.fuse_conv.0.weight" in keys and "decoder.res2.fuse_conv.1.norm.running_mean" in keys
    assert "decoder.res5.project_conv.convs.0.weight" in keys  # ASPP
    assert "predictor.weight" in keys
    cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV = True
    model = build_model(cfg)
    keys = {k.split(".", 1)[1] for k in model.state_dict() if k.startswith("sem_seg_head.")}
    assert "decoder.res2.fuse_conv.depthwise.weight" in keys and "decoder.res2.fuse_conv.pointwise.weight" in keys
    cfg = _cfg(V3P, crop=(60, 128))
    with pytest.raises(ValueError, match="divisible"):
        build_model(cfg)
