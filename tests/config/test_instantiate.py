"""instantiate(): _target_ resolution, recursion, dataclasses."""
import collections
import dataclasses

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.config.instantiate import dump_dataclass


@dataclasses.dataclass
class _Point:
    x: int = 0
    y: int = 0


@dataclasses.dataclass
class _Segment:
    a: _Point = dataclasses.field(default_factory=_Point)
    b: _Point = dataclasses.field(default_factory=_Point)


class _Layer:
    def __init__(self, in_ch, out_ch, act=None):
        self.in_ch, self.out_ch, self.act = in_ch, out_ch, act


def _activation(kind):
    return {"kind": kind}


class _Net:
    def __init__(self, layers, head):
        self.layers, self.head = layers, head


def test_plain_dict_with_string_target():
    obj = instantiate({"_target_": "collections.OrderedDict", "a": 1})
    assert isinstance(obj, collections.OrderedDict) and obj["a"] == 1


def test_nested_objects_are_built_first():
    cfg = L(_Net)(
        layers=[L(_Layer)(in_ch=3, out_ch=8), L(_Layer)(in_ch=8, out_ch=16, act=L(_activation)(kind="relu"))],
        head={"_target_": "test_instantiate._Layer", "in_ch": 16, "out_ch": 1},
    )
    # The head's string target resolves through this module's import name.
    cfg.head._target_ = _Layer
    net = instantiate(cfg)
    assert isinstance(net, _Net)
    assert [type(x) for x in net.layers] == [_Layer, _Layer]
    assert net.layers[1].act == {"kind": "relu"}
    assert (net.head.in_ch, net.head.out_ch) == (16, 1)


def test_lists_and_non_targets_pass_through():
    assert instantiate([1, {"a": 2}]) == [1, {"a": 2}]
    lc = instantiate(OmegaConf.create([L(_activation)(kind=1), 2]))
    assert isinstance(lc, ListConfig) and lc[0] == {"kind": 1} and lc[1] == 2
    assert instantiate(5) == 5
    plain = OmegaConf.create({"a": 1})
    assert instantiate(plain) is plain


def test_edit_before_instantiate():
    cfg = L(_Layer)(in_ch=3, out_ch=8)
    cfg.out_ch = 32
    assert instantiate(cfg).out_ch == 32


def test_target_errors():
    with pytest.raises(ImportError, match="no_such_module"):
        instantiate({"_target_": "no_such_module.Thing"})
    with pytest.raises(TypeError, match="does not define a callable"):
        instantiate({"_target_": "math.pi"})
    with pytest.raises(TypeError):
        instantiate(L(_Layer)(in_ch=1, wrong=2))


def test_structured_dataclass_config():
    cfg = OmegaConf.structured(_Segment(a=_Point(1, 2)))
    seg = instantiate(cfg)
    assert seg == _Segment(a=_Point(1, 2), b=_Point(0, 0))


def test_lazycall_on_dataclass_and_dump_dataclass():
    cfg = L(_Point)(x=3, y=4)
    assert isinstance(cfg, DictConfig) and isinstance(cfg._target_, str)
    assert instantiate(cfg) == _Point(3, 4)
    dumped = dump_dataclass(_Segment(a=_Point(5, 6)))
    assert dumped["a"] == {"_target_": dumped["a"]["_target_"], "x": 5, "y": 6}
    assert instantiate(dumped) == _Segment(a=_Point(5, 6))
    with pytest.raises(TypeError):
        dump_dataclass(_Point)
