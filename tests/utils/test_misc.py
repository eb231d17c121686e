"""serialize, tracing, develop and testing helpers."""
import pickle

import pytest
import torch

from detectron2.utils.develop import create_dummy_class, create_dummy_func
from detectron2.utils.serialize import PicklableWrapper
from detectron2.utils.testing import assert_instances_allclose, random_boxes
from detectron2.utils.tracing import assert_fx_safe, is_fx_tracing


def test_picklable_wrapper_lambda():
    offset = 3
    w = PicklableWrapper(lambda x: x + offset)
    assert w(1) == 4
    restored = pickle.loads(pickle.dumps(w))
    assert restored(2) == 5 and not isinstance(restored, PicklableWrapper)
    assert PicklableWrapper(w)._obj is w._obj  # no nesting


def test_picklable_wrapper_attribute_forwarding():
    w = PicklableWrapper([1, 2, 3])
    assert w.count(2) == 1
    with pytest.raises(AttributeError):
        w.not_an_attribute
    blank = PicklableWrapper.__new__(PicklableWrapper)
    with pytest.raises(AttributeError):
        blank.anything  # no infinite recursion on a half-built wrapper


def test_fx_helpers():
    assert is_fx_tracing() is False
    assert torch.equal(assert_fx_safe(True, "fine"), torch.ones(1))
    assert torch.equal(assert_fx_safe(torch.tensor(True), "fine"), torch.ones(1))
    with pytest.raises(AssertionError, match="boxes must be 4-d"):
        assert_fx_safe(False, "boxes must be 4-d")

    class M(torch.nn.Module):
        def forward(self, x):
            flags.append(is_fx_tracing())
            assert_fx_safe(x.shape[0] > 0, "empty")  # a Proxy while tracing
            return x + 1

    flags = []
    gm = torch.fx.symbolic_trace(M())
    assert flags == [True]
    assert torch.equal(gm(torch.zeros(2)), torch.ones(2))


def test_dummy_class_and_func():
    Dummy = create_dummy_class("Visualizer", "matplotlib", "Install it with pip.")
    assert Dummy.__name__ == "Visualizer"
    with pytest.raises(ImportError, match="Cannot import 'matplotlib', therefore 'Visualizer' is not available. Install"):
        Dummy()
    with pytest.raises(ImportError, match="matplotlib"):
        Dummy.some_classmethod
    f = create_dummy_func("draw", ["cv2", "PIL"])
    assert f.__name__ == "draw"
    with pytest.raises(ImportError, match="Cannot import 'cv2,PIL', therefore 'draw'"):
        f(1, k=2)


def test_random_boxes():
    torch.manual_seed(0)
    b = random_boxes(500, max_coord=64)
    assert b.shape == (500, 4) and b.dtype == torch.float32
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
    assert b.min() >= 1.0 and b.max() <= 64
    assert random_boxes(0).shape == (0, 4)


class _BoxLike:
    def __init__(self, tensor):
        self.tensor = tensor


class _InstancesLike:
    """The part of the Instances interface assert_instances_allclose relies on."""

    def __init__(self, image_size, **fields):
        self.image_size = image_size
        self._fields = fields

    def get_fields(self):
        return self._fields

    def get(self, name):
        return self._fields[name]


def _pair(**changes):
    base = dict(
        pred_boxes=_BoxLike(torch.tensor([[1.0, 2.0, 30.0, 40.0]])),
        scores=torch.tensor([0.9]),
        pred_classes=torch.tensor([3]),
    )
    other = dict(base, **changes)
    return _InstancesLike((10, 20), **base), _InstancesLike((10, 20), **other)


def test_assert_instances_allclose_accepts_close():
    a, b = _pair(scores=torch.tensor([0.9 + 1e-7]), pred_boxes=_BoxLike(torch.tensor([[1.0, 2.0, 30.0, 40.0005]])))
    assert_instances_allclose(a, b)
    assert_instances_allclose(a, _InstancesLike(torch.tensor([10, 20]), **a.get_fields()), size_as_tensor=True)


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"scores": torch.tensor([0.5])}, "scores differs"),
        ({"pred_classes": torch.tensor([4])}, "pred_classes is different"),
        ({"pred_boxes": _BoxLike(torch.tensor([[1.0, 2.0, 30.0, 41.0]]))}, "pred_boxes differs"),
        ({"extra": torch.zeros(1)}, "Fields are"),
    ],
)
def test_assert_instances_allclose_detects_differences(changes, pattern):
    a, b = _pair(**changes)
    with pytest.raises(AssertionError, match=pattern):
        assert_instances_allclose(a, b, msg="Mine!")


def test_assert_instances_allclose_size_and_types():
    a, _ = _pair()
    b = _InstancesLike((10, 21), **a.get_fields())
    with pytest.raises(AssertionError, match="image_size"):
        assert_instances_allclose(a, b)
    c = _InstancesLike((10, 20), **dict(a.get_fields(), scores=[0.9]))
    with pytest.raises(AssertionError, match="scores is a Tensor"):
        assert_instances_allclose(a, c)
    d = _InstancesLike((10, 20), **dict(a.get_fields(), scores="text"))
    with pytest.raises(ValueError, match="Don't know how to compare"):
        assert_instances_allclose(d, d)


def test_min_torch_version():
    from detectron2.utils.testing import min_torch_version

    assert min_torch_version("1.8")
    assert min_torch_version(torch.__version__.split("+")[0])
    assert not min_torch_version("999.0")
