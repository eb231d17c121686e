"""Errors keep upstream's observable exception types (AssertionError where upstream
asserts, KeyError where its dict lookup fails) while staying the natural Python type
with a clear message: code written against either keeps catching them."""
import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.layers._errors import (
    IndexAssertionError,
    KeyAssertionError,
    TypeAssertionError,
    ValueAssertionError,
    ValueKeyError,
)
from detectron2.modeling.matcher import Matcher
from detectron2.structures import BitMasks, Boxes, BoxMode, ImageList, Instances, Keypoints, RotatedBoxes


def test_error_classes_are_both_types():
    assert issubclass(ValueAssertionError, ValueError) and issubclass(ValueAssertionError, AssertionError)
    assert issubclass(TypeAssertionError, TypeError) and issubclass(TypeAssertionError, AssertionError)
    assert issubclass(IndexAssertionError, IndexError) and issubclass(IndexAssertionError, AssertionError)
    assert issubclass(ValueKeyError, ValueError) and issubclass(ValueKeyError, KeyError)
    assert issubclass(KeyAssertionError, KeyError) and issubclass(KeyAssertionError, AssertionError)
    assert str(ValueKeyError("no such interp 7")) == "no such interp 7"  # not repr()-quoted like KeyError
    assert str(KeyAssertionError("key 'a' twice")) == "key 'a' twice"


# (callable that must fail, the upstream type, a fragment of our message)
CASES = [
    (lambda: Boxes(torch.zeros(3, 5)), AssertionError, "shape"),
    (lambda: Boxes(torch.zeros(3, 4))[0:1, 0], AssertionError, "Indexing"),
    (lambda: Boxes.cat([torch.zeros(1, 4)]), AssertionError, "Boxes"),
    (lambda: Boxes(torch.tensor([[0, 0, float("inf"), 1.0]])).clip((5, 5)), AssertionError, "infinite"),
    (lambda: RotatedBoxes(torch.zeros(3, 4)), AssertionError, "shape"),
    (lambda: BoxMode.convert([1, 2, 3], BoxMode.XYXY_ABS, BoxMode.XYWH_ABS), AssertionError, "length"),
    (lambda: BoxMode.convert([1, 2, 3, 4], BoxMode.XYXY_REL, BoxMode.XYWH_ABS), AssertionError, "relative"),
    (lambda: ImageList.from_tensors([]), AssertionError, "empty"),
    (lambda: ImageList.from_tensors([np.zeros((3, 4, 4))]), AssertionError, "tensor"),
    (lambda: Instances((4, 4), a=torch.zeros(2)).set("b", torch.zeros(3)), AssertionError, "length"),
    (lambda: Instances.cat([Instances((4, 4)), 3]), AssertionError, "Instances"),
    (lambda: Keypoints(torch.zeros(2, 3)), AssertionError, "shape"),
    (lambda: BitMasks(torch.zeros(2, 3)), AssertionError, "shape"),
    (lambda: Matcher([0.3, 0.7], [0, 1]), AssertionError, "labels"),
    (lambda: Matcher([0.7, 0.3], [0, -1, 1]), AssertionError, "non-decreasing"),
    (lambda: T.ResizeShortestEdge((800,), sample_style="nope"), AssertionError, "sample_style"),
    (lambda: T.RandomApply(T.NoOpTransform(), prob=1.5), AssertionError, "prob"),
    (lambda: T.AugInput([[1, 2]]), AssertionError, "numpy"),
    (lambda: T.AugInput(np.zeros((4,), np.uint8)), AssertionError, "HxW"),
    (lambda: T.ResizeTransform(4, 4, 2, 2).apply_image(np.zeros((5, 4), np.uint8)), AssertionError, "size"),
    (lambda: T.ResizeTransform(4, 4, 2, 2, Image.BOX).apply_image(np.zeros((4, 4), np.float32)), KeyError, "torch"),
    (lambda: MetadataCatalog.get(""), AssertionError, "name"),
    (lambda: _two_evaluators_with_one_key(), AssertionError, "both produced"),
]


def _two_evaluators_with_one_key():
    from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators

    class Fixed(DatasetEvaluator):
        def evaluate(self):
            return {"bbox": {"AP": 1.0}}

    return DatasetEvaluators([Fixed(), Fixed()]).evaluate()


@pytest.mark.parametrize("fn,upstream_type,fragment", CASES)
def test_upstream_type_kept(fn, upstream_type, fragment):
    with pytest.raises(upstream_type) as info:
        fn()
    # ...and also a natural Python type with a message that names the problem.
    assert isinstance(info.value, (ValueError, TypeError, IndexError, KeyError))
    assert fragment.lower() in str(info.value).lower()
