"""Script and trace small Mask R-CNN / RetinaNet models on CUDA and compare with eager.

Run from the repo root: PYTHONPATH=src python3 scripts/gpu/export_torchscript_cuda.py
Writes a JSON summary to $OUT/export_torchscript_cuda.json (if OUT is set) and exits
non-zero on any mismatch.
"""
import json
import os
import sys
import time

import torch
from torch import Tensor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "export"))
from export_toys import MASK_RCNN, RETINANET, small_cfg  # noqa: E402

from detectron2.export import TracingAdapter, scripting_with_instances  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes  # noqa: E402
from detectron2.utils.testing import assert_instances_allclose, convert_scripted_instances  # noqa: E402


# D2_EXPORT_DEVICE=cpu checks the script itself on a machine without a GPU.
DEVICE = os.environ.get("D2_EXPORT_DEVICE", "cuda")


def _model(path: str):
    cfg = small_cfg(path)
    cfg.MODEL.DEVICE = DEVICE
    torch.manual_seed(0)
    return build_model(cfg).eval()


def main() -> int:
    name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else DEVICE
    results = {"device": name, "torch": torch.__version__}
    g = torch.Generator().manual_seed(0)
    inputs = [{"image": (torch.rand(3, 96, 128, generator=g) * 255).to(DEVICE)}]
    fields = {"proposal_boxes": Boxes, "objectness_logits": Tensor, "pred_boxes": Boxes, "scores": Tensor,
              "pred_classes": Tensor, "pred_masks": Tensor}
    ok = True
    for name, path, flds in (("mask_rcnn", MASK_RCNN, fields), ("retinanet", RETINANET, {k: fields[k] for k in ("pred_boxes", "scores", "pred_classes")})):
        model = _model(path)
        t = time.time()
        scripted = scripting_with_instances(model, flds)
        with torch.no_grad():
            if name == "mask_rcnn":
                exp = model.inference(inputs, do_postprocess=False)[0]
                got = convert_scripted_instances(scripted.inference(inputs, do_postprocess=False)[0])
                fn = lambda m, i: m.inference(i, do_postprocess=False)  # noqa: E731
            else:
                from detectron2.modeling.postprocessing import detector_postprocess

                exp = model(inputs)[0]["instances"]
                got = detector_postprocess(convert_scripted_instances(scripted(inputs)[0]), 96, 128)
                fn = None
            try:
                assert_instances_allclose(exp, got, rtol=1e-4)
                results[f"{name}_script"] = "equal"
            except AssertionError as e:
                ok, results[f"{name}_script"] = False, str(e)
            adapter = TracingAdapter(model, inputs, fn)
            traced = torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)
            out = adapter.outputs_schema(traced(*adapter.flattened_inputs))[0]
            out = out if fn is not None else out["instances"]
            try:
                assert_instances_allclose(exp, out, rtol=1e-4, size_as_tensor=True)
                results[f"{name}_trace"] = "equal"
            except AssertionError as e:
                ok, results[f"{name}_trace"] = False, str(e)
        results[f"{name}_seconds"] = round(time.time() - t, 2)
    print(json.dumps(results, indent=1))
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "export_torchscript_cuda.json"), "w") as f:
            json.dump(results, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
