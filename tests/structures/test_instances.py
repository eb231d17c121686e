import pickle

import pytest
import torch

from detectron2.structures import Boxes, Instances, Keypoints, PolygonMasks


def _instances(n=3, offset=0.0):
    inst = Instances((20, 30))
    inst.scores = torch.arange(n, dtype=torch.float32) + offset
    inst.boxes = Boxes(torch.rand(n, 4))
    inst.names = [f"obj{i}" for i in range(n)]
    return inst


def test_fields_set_get_has_remove():
    inst = Instances((20, 30), scores=torch.zeros(2))
    assert inst.image_size == (20, 30)
    inst.set("labels", torch.tensor([1, 2]))
    assert inst.has("labels") and inst.has("scores") and not inst.has("boxes")
    assert inst.get("labels").tolist() == [1, 2] and inst.labels.tolist() == [1, 2]
    assert list(inst.get_fields().keys()) == ["scores", "labels"]
    inst.remove("labels")
    assert not inst.has("labels")
    with pytest.raises(AttributeError, match="Cannot find field 'labels'"):
        inst.labels
    assert not hasattr(inst, "labels")


def test_length_mismatch_raises():
    inst = _instances(3)
    with pytest.raises(ValueError, match="length 2 to a Instances of length 3"):
        inst.extra = torch.zeros(2)


def test_len_and_iter():
    assert len(_instances(4)) == 4
    with pytest.raises(TypeError, match="Empty Instances"):
        len(Instances((1, 1)))
    with pytest.raises(TypeError, match="not iterable"):
        iter(_instances())


def test_indexing():
    inst = _instances(4)
    one = inst[1]
    assert len(one) == 1 and one.names == ["obj1"] and one.scores.tolist() == [1.0]
    assert inst[-1].names == ["obj3"]
    with pytest.raises(IndexError):
        inst[4]
    with pytest.raises(IndexError):
        inst[-5]
    assert inst[1:3].scores.tolist() == [1.0, 2.0]
    assert inst[1:3].names == ["obj1", "obj2"]
    inst.remove("names")  # a plain list cannot take tensor indices
    sel = inst[torch.tensor([True, False, False, True])]
    assert sel.scores.tolist() == [0.0, 3.0]
    torch.testing.assert_close(sel.boxes.tensor, inst.boxes.tensor[[0, 3]])
    picked = inst[torch.tensor([2, 0])]
    torch.testing.assert_close(picked.scores, torch.tensor([2.0, 0.0]))
    assert picked.image_size == (20, 30)


def test_to(device):
    inst = _instances(2)
    moved = inst.to(device)
    assert moved.scores.device.type == device.type and moved.boxes.device.type == device.type
    assert moved.names == inst.names  # lists have no .to and are kept
    assert moved.to("cpu").scores.device.type == "cpu"


def test_cat():
    a, b = _instances(2), _instances(3, offset=10)
    a.kps = Keypoints(torch.zeros(2, 5, 3))
    b.kps = Keypoints(torch.ones(3, 5, 3))
    a.polys = PolygonMasks([[[0, 0, 1, 0, 1, 1]]] * 2)
    b.polys = PolygonMasks([[[0, 0, 2, 0, 2, 2]]] * 3)
    c = Instances.cat([a, b])
    assert len(c) == 5
    assert c.scores.tolist() == [0.0, 1.0, 10.0, 11.0, 12.0]
    assert c.names == ["obj0", "obj1", "obj0", "obj1", "obj2"]
    assert isinstance(c.boxes, Boxes) and len(c.boxes) == 5
    assert isinstance(c.kps, Keypoints) and len(c.kps) == 5
    assert len(c.polys) == 5
    assert Instances.cat([a]) is a
    with pytest.raises(ValueError, match="image sizes differ"):
        Instances.cat([a, Instances((1, 1), scores=torch.zeros(1))])
    with pytest.raises(ValueError):
        Instances.cat([])
    odd = Instances((20, 30), x=(1, 2))
    with pytest.raises(ValueError, match="Unsupported type"):
        Instances.cat([odd, odd])


def test_str_format():
    inst = Instances((20, 30), scores=torch.tensor([0.5]))
    s = str(inst)
    assert s == "Instances(num_instances=1, image_height=20, image_width=30, fields=[scores: tensor([0.5000])])"
    assert repr(inst) == s


def test_pickle_round_trip():
    inst = _instances(2)
    back = pickle.loads(pickle.dumps(inst))
    assert back.image_size == inst.image_size
    torch.testing.assert_close(back.scores, inst.scores)
    assert back.names == inst.names
