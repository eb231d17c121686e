"""The public names that upstream code imports from the modules added here."""
import importlib
import inspect

import pytest

NAMES = {
    "detectron2.export": [
        "TracingAdapter", "scripting_with_instances", "dump_torchscript_IR", "flatten_to_tuple",
        "STABLE_ONNX_OPSET_VERSION", "add_export_config", "Caffe2Tracer", "Caffe2Model",
        "export_caffe2_model", "export_onnx_model",
    ],
    "detectron2.export.flatten": [
        "Schema", "ListSchema", "TupleSchema", "IdentitySchema", "DictSchema", "InstancesSchema",
        "TensorWrapSchema", "flatten_to_tuple", "TracingAdapter",
    ],
    "detectron2.export.torchscript": ["scripting_with_instances", "export_torchscript_with_instances", "dump_torchscript_IR"],
    "detectron2.export.torchscript_patch": ["patch_instances", "patch_builtin_len", "freeze_training_mode", "patch_nonscriptable_classes"],
    "detectron2.tracking": [
        "TRACKER_HEADS_REGISTRY", "BaseTracker", "build_tracker_head", "BBoxIOUTracker", "BaseHungarianTracker",
        "VanillaHungarianBBoxIOUTracker", "IOUWeightedHungarianBBoxIOUTracker",
    ],
    "detectron2.tracking.utils": ["create_prediction_pairs", "LARGE_COST_VALUE"],
    "detectron2.modeling.mmdet_wrapper": ["MMDetBackbone", "MMDetDetector"],
    "detectron2.utils.testing": [
        "get_model_no_weights", "random_boxes", "get_sample_coco_image", "convert_scripted_instances",
        "assert_instances_allclose", "reload_script_model", "reload_lazy_config", "min_torch_version",
        "has_dynamic_axes", "register_custom_op_onnx_export", "unregister_custom_op_onnx_export",
        "skipIfOnCPUCI", "skipIfUnsupportedMinOpsetVersion", "skipIfUnsupportedMinTorchVersion",
    ],
    "detectron2.utils.torch_version_utils": ["min_torch_version"],
}

SIGNATURES = {
    ("detectron2.export.flatten", "TracingAdapter"): ["self", "model", "inputs", "inference_func", "allow_non_tensor"],
    ("detectron2.export.torchscript", "scripting_with_instances"): ["model", "fields"],
    ("detectron2.export.torchscript", "dump_torchscript_IR"): ["model", "dir"],
    ("detectron2.utils.testing", "assert_instances_allclose"): ["input", "other", "rtol", "msg", "size_as_tensor"],
    ("detectron2.modeling.mmdet_wrapper", "MMDetBackbone"): [
        "self", "backbone", "neck", "pretrained_backbone", "output_shapes", "output_names",
    ],
}


@pytest.mark.parametrize("module", sorted(NAMES))
def test_names_exist(module):
    mod = importlib.import_module(module)
    missing = [n for n in NAMES[module] if not hasattr(mod, n)]
    assert not missing, f"{module} lacks {missing}"


@pytest.mark.parametrize("key", sorted(SIGNATURES))
def test_signatures(key):
    obj = getattr(importlib.import_module(key[0]), key[1])
    fn = obj.__init__ if inspect.isclass(obj) else obj
    assert list(inspect.signature(fn).parameters) == SIGNATURES[key]


def test_min_torch_version():
    from detectron2.utils.torch_version_utils import min_torch_version

    assert min_torch_version("1.8") and not min_torch_version("999.0")
