"""Live self-test: each CUDA op of detectron2.layers runs once per GPU and must match CPU.

Ops are looked up through their public import paths; one that is not there is reported
as skipped ("op not built"), never imitated.
"""
import copy
import importlib
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from detectron2.doctor import fixes
from detectron2.doctor.facts import Facts
from detectron2.doctor.result import FAIL, OK, SKIP, CheckResult


@dataclass(frozen=True)
class OpSpec:
    name: str
    targets: Tuple[str, ...]  # "module:attribute" candidates, first found wins
    run: Callable[[Any, Any], Any]  # run(op, device) -> output tensor, moved to CPU
    exact: bool = False  # integer outputs (indices) must be equal


def _rng(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def _rotated_boxes(n: int, seed: int):
    import torch

    g = _rng(seed)
    centers = torch.rand(n, 2, generator=g) * 100
    sizes = torch.rand(n, 2, generator=g) * 35 + 5
    angles = torch.rand(n, 1, generator=g) * 180 - 90
    return torch.cat([centers, sizes, angles], dim=1)


def _features(seed: int):
    import torch

    return torch.rand(2, 4, 24, 24, generator=_rng(seed))


def _run_nms_rotated(op, device):
    import torch

    boxes = _rotated_boxes(48, 1)
    scores = torch.randperm(48, generator=_rng(2)).float() / 48  # distinct: no tie-breaking ambiguity
    return op(boxes.to(device), scores.to(device), 0.5).cpu()


def _run_iou_rotated(op, device):
    boxes = _rotated_boxes(40, 3)
    return op(boxes[:16].to(device), boxes[16:].to(device)).cpu()


def _run_nms(op, device):
    import torch

    corners = _rotated_boxes(48, 4)[:, :4]
    boxes = torch.cat([corners[:, :2], corners[:, :2] + corners[:, 2:]], dim=1)
    scores = torch.randperm(48, generator=_rng(5)).float() / 48
    return op(boxes.to(device), scores.to(device), 0.5).cpu()


def _rois(seed: int, rotated: bool):
    import torch

    boxes = _rotated_boxes(12, seed)
    batch = (torch.arange(12) % 2).float()[:, None]
    if rotated:
        return torch.cat([batch, boxes], dim=1)
    return torch.cat([batch, boxes[:, :2], boxes[:, :2] + boxes[:, 2:4]], dim=1)


def _run_roi_align(cls, device):
    module = cls((7, 7), 0.25, 2, aligned=True)
    return module(_features(6).to(device), _rois(7, rotated=False).to(device)).cpu()


def _run_roi_align_rotated(cls, device):
    module = cls((7, 7), 0.25, 2)
    return module(_features(8).to(device), _rois(9, rotated=True).to(device)).cpu()


def _deform_inputs(seed: int, with_mask: bool):
    import torch

    g = _rng(seed)
    x = torch.rand(2, 4, 12, 12, generator=g)
    offset = torch.randn(2, 18, 12, 12, generator=g) * 2
    mask = torch.rand(2, 9, 12, 12, generator=g) if with_mask else None
    return x, offset, mask


def _seeded_module(cls, *args, **kwargs):
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(10)  # same weights on CPU and on every GPU
    try:
        return cls(*args, **kwargs)
    finally:
        torch.random.set_rng_state(state)


def _run_deform_conv(cls, device):
    x, offset, _ = _deform_inputs(11, with_mask=False)
    module = copy.deepcopy(_seeded_module(cls, 4, 6, 3, padding=1, bias=False)).to(device)
    return module(x.to(device), offset.to(device)).detach().cpu()


def _run_modulated_deform_conv(cls, device):
    x, offset, mask = _deform_inputs(12, with_mask=True)
    module = copy.deepcopy(_seeded_module(cls, 4, 6, 3, padding=1, bias=True)).to(device)
    return module(x.to(device), offset.to(device), mask.to(device)).detach().cpu()


OPS = (
    OpSpec("nms_rotated", ("detectron2.layers:nms_rotated",), _run_nms_rotated, exact=True),
    OpSpec("box_iou_rotated", ("detectron2.layers:pairwise_iou_rotated", "detectron2.layers.rotated_boxes:pairwise_iou_rotated"),
           _run_iou_rotated),
    OpSpec("roi_align_rotated", ("detectron2.layers:ROIAlignRotated",), _run_roi_align_rotated),
    OpSpec("roi_align", ("detectron2.layers:ROIAlign",), _run_roi_align),
    OpSpec("nms", ("detectron2.layers:nms",), _run_nms, exact=True),
    OpSpec("deform_conv", ("detectron2.layers:DeformConv",), _run_deform_conv),
    OpSpec("modulated_deform_conv", ("detectron2.layers:ModulatedDeformConv",), _run_modulated_deform_conv),
)


def resolve(targets: Tuple[str, ...]) -> Optional[Any]:
    for target in targets:
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, attribute):
            return getattr(module, attribute)
    return None


def _compare(spec: OpSpec, expected, actual) -> Optional[str]:
    """None when they agree, else what differs."""
    import torch

    if expected.shape != actual.shape:
        return f"shape {tuple(actual.shape)} on GPU vs {tuple(expected.shape)} on CPU"
    if spec.exact:
        return None if torch.equal(expected, actual) else f"values differ: GPU {actual.tolist()} vs CPU {expected.tolist()}"
    if torch.allclose(expected, actual, rtol=1e-4, atol=1e-4):
        return None
    return f"max abs difference {(expected - actual).abs().max().item():.3g} (tolerance 1e-4)"


def _one(spec: OpSpec, facts: Facts, devices: List[Any]) -> CheckResult:
    name = f"selftest.{spec.name}"
    op = resolve(spec.targets)
    if op is None:
        return CheckResult(name, SKIP, "op not built", [f"none of {', '.join(spec.targets)} exists"])
    try:
        expected = spec.run(op, "cpu")
    except Exception as e:  # no CPU kernel (or _C unavailable): nothing to compare against
        return CheckResult(name, SKIP, "no CPU result to compare with", [f"CPU: {type(e).__name__}: {e}"])
    evidence, failures = [], []
    for device in devices:
        try:
            problem = _compare(spec, expected, spec.run(op, device))
        except Exception as e:
            problem = f"{type(e).__name__}: {e}".splitlines()[0]
        evidence.append(f"{device}: {problem or 'matches CPU'}")
        if problem:
            failures.append(str(device))
    if failures:
        fix = ["see the ext-arch / driver checks above;"] + fixes.rebuild_lines(facts, cuda=True)
        return CheckResult(name, FAIL, f"{spec.name} on {', '.join(failures)} does not match CPU", evidence, fix)
    return CheckResult(name, OK, f"{spec.name} matches CPU on {len(devices)} GPU(s)", evidence)


def check_selftest(facts: Facts) -> List[CheckResult]:
    if not facts.gpus:
        return [CheckResult("selftest", SKIP, "no GPU")]
    if facts.torch is None or not facts.torch.is_cuda or not facts.torch_cuda_available:
        return [CheckResult("selftest", SKIP, "torch cannot use the GPU (see torch-cuda-build / driver)")]
    import torch

    devices = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if not devices:
        return [CheckResult("selftest", SKIP, "torch sees no GPU (CUDA_VISIBLE_DEVICES?)")]
    return [_one(spec, facts, devices) for spec in OPS]
