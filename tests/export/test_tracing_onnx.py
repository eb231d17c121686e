"""Tracing through TracingAdapter, the flatten schemas, the ONNX path (run by
onnxruntime) and the Caffe2 names."""
import pytest
import torch

from detectron2.export import (
    Caffe2Model,
    Caffe2Tracer,
    TracingAdapter,
    export_caffe2_model,
    export_onnx_model,
    flatten_to_tuple,
)
from detectron2.export.flatten import DictSchema, InstancesSchema, ListSchema, TensorWrapSchema
from detectron2.structures import Boxes, Instances
from detectron2.utils.testing import assert_instances_allclose, random_boxes

from export_toys import MASK_RCNN, RETINANET, images, small_model


def _rcnn_inference(model, inputs):
    return model.inference(inputs, do_postprocess=False)


def test_flatten_round_trip_of_nested_structures():
    torch.manual_seed(0)
    inst = Instances((20, 30), pred_boxes=Boxes(random_boxes(5)), scores=torch.rand(5))
    obj = [{"instances": inst, "x": torch.rand(2)}, (torch.arange(3), "name")]
    flat, schema = flatten_to_tuple(obj)
    assert isinstance(schema, ListSchema) and isinstance(schema.schemas[0], DictSchema)
    assert isinstance(schema.schemas[0].schemas[0], InstancesSchema)
    assert isinstance(schema.schemas[0].schemas[0].schemas[0], TensorWrapSchema)
    rebuilt = schema(flat)
    assert isinstance(rebuilt[1], tuple) and rebuilt[1][1] == "name"
    assert torch.equal(rebuilt[0]["x"], obj[0]["x"])
    r = rebuilt[0]["instances"]
    assert_instances_allclose(inst, r, size_as_tensor=True)
    # Schemas are plain dataclasses: equal for equal structures.
    assert flatten_to_tuple(obj)[1] == schema
    with pytest.raises(KeyError, match="str keys"):
        flatten_to_tuple({1: torch.zeros(1)})


def test_trace_mask_rcnn_generalizes_to_new_images():
    model = small_model(MASK_RCNN)
    im1, im2 = images(3, sizes=((96, 128), (96, 128)))
    adapter = TracingAdapter(model, [{"image": im1}], _rcnn_inference)
    with torch.no_grad():
        traced = torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)
        for im in (im1, im2):
            expected = model.inference([{"image": im}], do_postprocess=False)[0]
            got = adapter.outputs_schema(traced(im))[0]
            assert len(expected) > 0
            assert_instances_allclose(expected, got, size_as_tensor=True)
        # the wrapper takes and returns the model's own formats
        got = adapter._create_wrapper(traced)([{"image": im2}])[0]
        assert_instances_allclose(expected, got, size_as_tensor=True)


def test_trace_retinanet_matches_eager():
    model = small_model(RETINANET)
    im1, im2 = images(5, sizes=((96, 128), (96, 128)))
    adapter = TracingAdapter(model, [{"image": im1}])
    with torch.no_grad():
        traced = torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)
        for im in (im1, im2):
            expected = model([{"image": im}])[0]["instances"]
            got = adapter.outputs_schema(traced(im))[0]["instances"]
            assert len(expected) > 0
            assert_instances_allclose(expected, got, size_as_tensor=True)


def test_tracing_adapter_rejects_non_tensor_inputs():
    model = small_model(MASK_RCNN)
    with pytest.raises(ValueError, match="only contain tensors"):
        TracingAdapter(model, [{"image": torch.zeros(3, 32, 32), "file_name": 3.5}])
    adapter = TracingAdapter(model, [{"image": torch.zeros(3, 32, 32), "k": 1}], allow_non_tensor=True)
    assert adapter.inputs_schema is None and len(adapter.flattened_inputs) == 1


def test_onnx_export_of_mask_rcnn_runs_in_onnxruntime():
    import onnxruntime as ort
    model = small_model(MASK_RCNN)
    im1, im2 = images(4, sizes=((96, 128), (96, 128)))
    onnx_model, adapter = export_onnx_model(None, model, [{"image": im1}])
    sess = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for im in (im1, im2):  # the second image was not seen while exporting
        outputs = [torch.from_numpy(x) for x in sess.run(None, {name: im.numpy()})]
        got = adapter.outputs_schema(outputs)[0]
        with torch.no_grad():
            expected = model.inference([{"image": im}], do_postprocess=False)[0]
        assert len(expected) > 0
        assert_instances_allclose(expected, got, rtol=1e-4, size_as_tensor=True)


@pytest.mark.parametrize(
    "call",
    [
        lambda: Caffe2Tracer(None, None, None),
        lambda: Caffe2Model(None, None),
        lambda: Caffe2Model.load_protobuf("x"),
        lambda: export_caffe2_model(None, None, None),
    ],
)
def test_caffe2_entry_points_raise_a_clear_error(call):
    with pytest.raises(ImportError, match="Caffe2 is no longer part of PyTorch.*TracingAdapter"):
        call()
