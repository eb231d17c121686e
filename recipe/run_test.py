"""Op self-test of an installed detectron2 package (conda-build runs it after the imports).

Checks the rotated-box ops against values worked out by hand, on the CPU and, when a GPU
is visible, on the GPU too. Exit status 0 only when every op gives the expected values.

    python run_test.py [--allow-missing-ops]

--allow-missing-ops reports ops that this build of _C does not register instead of
failing: only for packaging dry runs of a tree whose ops have not landed yet.
"""
import math
import sys

import torch

import detectron2
import detectron2._C as _C  # noqa: F401  (registers torch.ops.detectron2)

# Rotated boxes: (x_ctr, y_ctr, w, h, angle in degrees, counter-clockwise).
SQUARE = [0.0, 0.0, 2.0, 2.0, 0.0]


def check_box_iou_rotated(device):
    boxes1 = torch.tensor([SQUARE], device=device)
    boxes2 = torch.tensor([
        SQUARE,                       # identical: 1
        [1.0, 0.0, 2.0, 2.0, 0.0],    # shifted by half: overlap 2, union 6
        [0.0, 0.0, 2.0, 2.0, 90.0],   # a square turned 90 degrees is itself: 1
        [0.0, 0.0, 2.0, 2.0, 45.0],   # octagon 8(sqrt2-1) over 8-that: sqrt(2)/2
        [10.0, 10.0, 2.0, 2.0, 0.0],  # disjoint: 0
    ], device=device)
    got = torch.ops.detectron2.box_iou_rotated(boxes1, boxes2).cpu()
    want = torch.tensor([[1.0, 1.0 / 3.0, 1.0, math.sqrt(2.0) / 2.0, 0.0]])
    return torch.allclose(got, want, atol=1e-4), f"{got.tolist()} != {want.tolist()}"


def check_nms_rotated(device):
    boxes = torch.tensor([
        SQUARE,
        [0.1, 0.0, 2.0, 2.0, 0.0],   # IoU 3.8/4.2 with the first: suppressed
        [5.0, 5.0, 2.0, 2.0, 0.0],   # far away: kept
        [0.0, 0.0, 2.0, 2.0, 90.0],  # same square as the first: suppressed
    ], device=device)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6], device=device)
    keep = torch.ops.detectron2.nms_rotated(boxes, scores, 0.5).cpu().tolist()
    return keep == [0, 2], f"kept {keep}, expected [0, 2]"


def check_roi_align_rotated(device):
    # Feature value = column index, so bilinear sampling returns the x coordinate; a
    # 4x4 box at (5, 5) pooled to 2x2 with the half-pixel offset samples x = 3.5 and 5.5.
    feature = torch.arange(10.0).repeat(10, 1).view(1, 1, 10, 10).to(device)
    rois = torch.tensor([[0.0, 5.0, 5.0, 4.0, 4.0, 0.0],
                         [0.0, 5.0, 5.0, 4.0, 4.0, 90.0]], device=device)
    out = torch.ops.detectron2.roi_align_rotated_forward(feature, rois, 1.0, 2, 2, 2).cpu()
    want = torch.tensor([[[[3.5, 5.5], [3.5, 5.5]]],
                         # turned 90 degrees counter-clockwise, the box's rows run along x
                         [[[3.5, 3.5], [5.5, 5.5]]]])
    return torch.allclose(out, want, atol=1e-4), f"{out.tolist()} != {want.tolist()}"


CHECKS = {
    "box_iou_rotated": check_box_iou_rotated,
    "nms_rotated": check_nms_rotated,
    "roi_align_rotated_forward": check_roi_align_rotated,
}


def main(argv):
    allow_missing = "--allow-missing-ops" in argv
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"detectron2 {detectron2.__version__} from {detectron2.__file__}; torch {torch.__version__}; "
          f"devices: {', '.join(devices)}")
    failed, missing = [], []
    for op, check in CHECKS.items():
        if not hasattr(torch.ops.detectron2, op):
            missing.append(op)
            print(f"MISSING {op}: not registered by this detectron2._C")
            continue
        for device in devices:
            ok, detail = check(device)
            print(f"{'ok     ' if ok else 'FAILED '} {op} on {device}" + ("" if ok else f": {detail}"))
            if not ok:
                failed.append(f"{op}/{device}")
    if failed or (missing and not allow_missing):
        print(f"self-test FAILED: wrong {failed or 'none'}, missing {missing or 'none'}")
        return 1
    print("self-test passed" + (f" (missing ops allowed: {missing})" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
