"""LazyConfig: load (python with relative imports, yaml), save round trip, overrides, to_py."""
import ast
import collections
import os
import pathlib

import pytest
from omegaconf import DictConfig, OmegaConf

from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig, instantiate

LAZY = pathlib.Path(__file__).parent / "data" / "lazy"


def _adder(a, b=0):
    return a + b


def test_lazycall_records_without_calling():
    cfg = L(_adder)(a=1, b=2)
    assert isinstance(cfg, DictConfig)
    assert cfg._target_ is _adder and cfg.a == 1 and cfg.b == 2
    assert instantiate(cfg) == 3
    with pytest.raises(TypeError, match="callable"):
        L(5)


def test_load_python_with_relative_imports():
    cfg = LazyConfig.load(str(LAZY / "sub" / "main.py"))
    assert set(cfg.keys()) == {"model", "train", "optimizer"}  # only configs, no privates
    assert cfg.train.max_iter == 200  # edited after the relative import
    assert cfg.train.output_dir == "./out"
    assert cfg.optimizer.lr == 0.1  # via "from .. import base" and a helper file
    assert cfg.model.width == 8
    model = instantiate(cfg.model)
    assert isinstance(model, collections.OrderedDict) and model["depth"] == 2


def test_load_selected_keys():
    train = LazyConfig.load(str(LAZY / "base.py"), "train")
    assert isinstance(train, DictConfig) and train.lr == 0.1  # plain dicts become configs
    model, train = LazyConfig.load(str(LAZY / "base.py"), ("model", "train"))
    assert model.depth == 2 and train.max_iter == 100


def test_loads_are_independent():
    a = LazyConfig.load(str(LAZY / "sub" / "main.py"))
    b = LazyConfig.load(str(LAZY / "base.py"))
    assert a.train.max_iter == 200 and b.train.max_iter == 100


def test_load_errors():
    with pytest.raises(ValueError, match="python or yaml"):
        LazyConfig.load(str(LAZY / "base.txt"))
    with pytest.raises(SyntaxError, match="bad_syntax.py"):
        LazyConfig.load(str(LAZY / "bad_syntax.py"))
    with pytest.raises(ImportError, match="does_not_exist"):
        LazyConfig.load(str(LAZY / "bad_import.py"))


def test_import_is_restored_after_a_failed_load():
    import builtins

    before = builtins.__import__
    with pytest.raises(ImportError):
        LazyConfig.load(str(LAZY / "bad_import.py"))
    assert builtins.__import__ is before


def test_load_rel():
    rel = os.path.relpath(LAZY / "base.py", pathlib.Path(__file__).parent)
    assert LazyConfig.load_rel(rel, "train").max_iter == 100


def test_save_load_round_trip(tmp_path):
    cfg = LazyConfig.load(str(LAZY / "sub" / "main.py"))
    cfg.train.schedule = [1, 2, 3]
    cfg.nested = {"adder": L(_adder)(a=L(_adder)(a=1, b=1), b=5)}
    path = str(tmp_path / "cfg.yaml")
    LazyConfig.save(cfg, path)
    assert not os.path.exists(path + ".pkl")  # yaml was enough
    again = LazyConfig.load(path)
    # Callables were saved under their dotted names and still instantiate.
    assert isinstance(again.model._target_, str)
    assert instantiate(again.nested.adder) == 7
    assert OmegaConf.to_container(again.train) == OmegaConf.to_container(cfg.train)
    assert dict(instantiate(again.model)) == dict(instantiate(cfg.model))
    # The saved file is a loadable (and savable again) config.
    LazyConfig.save(again, path)
    assert LazyConfig.load(path).train.max_iter == 200
    # The input config was not modified by save().
    assert cfg.nested.adder._target_ is _adder


def test_save_unrepresentable_falls_back_to_pickle(tmp_path):
    cfg = OmegaConf.create({"fn": lambda x: x + 1}, flags={"allow_objects": True})
    path = str(tmp_path / "lambda.yaml")
    LazyConfig.save(cfg, path)
    assert os.path.exists(path + ".pkl")
    import cloudpickle

    with open(path + ".pkl", "rb") as f:
        restored = cloudpickle.load(f)
    assert restored.fn(1) == 2


def test_apply_overrides():
    cfg = LazyConfig.load(str(LAZY / "sub" / "main.py"))
    LazyConfig.apply_overrides(
        cfg,
        [
            "train.max_iter=10",
            "train.lr=0.5",
            "train.output_dir='/tmp/x y'",
            "model.width=[1,2]",
            "train.new_key=null",
            "~train.output_dir",
        ],
    )
    assert cfg.train.max_iter == 10 and cfg.train.lr == 0.5
    assert list(cfg.model.width) == [1, 2]
    assert cfg.train.new_key is None
    assert "output_dir" not in cfg.train
    with pytest.raises(KeyError, match="not a config"):
        LazyConfig.apply_overrides(cfg, ["train.max_iter.sub=1"])
    with pytest.raises(KeyError, match="does not exist"):
        LazyConfig.apply_overrides(cfg, ["~train.not_there"])


def test_to_py():
    cfg = LazyConfig.load(str(LAZY / "sub" / "main.py"))
    cfg.train.nested = {"a": 1}
    code = LazyConfig.to_py(cfg)
    ast.parse(code)  # valid python syntax
    lines = code.splitlines()
    assert "cfg.train.max_iter = 200" in lines
    assert "cfg.train.nested.a = 1" in lines
    assert "cfg.model = collections.OrderedDict(depth=2, width=8)" in lines
    assert "cfg.optimizer = builtins.dict(lr=0.1, params=[])" in lines
    assert LazyConfig.to_py(cfg, prefix="c.").startswith("c.")


def test_yaml_config_load(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text("a: 1\nb:\n  c: [1, 2]\n")
    cfg = LazyConfig.load(str(path))
    assert cfg.a == 1 and list(cfg.b.c) == [1, 2]


def test_save_plain_dict(tmp_path):
    path = str(tmp_path / "plain.yaml")
    LazyConfig.save({"a": 1, "call": {"_target_": _adder, "a": 2}}, path)
    again = LazyConfig.load(path)
    assert again.a == 1 and instantiate(again.call) == 2


def test_to_py_formats_with_black_when_installed(monkeypatch):
    # black is optional: stand in a module with its API and check to_py hands the text
    # over (mode=black.Mode()) and keeps its own text when black rejects it.
    import sys
    import types

    calls = []

    class InvalidInput(ValueError):
        pass

    def format_str(code, *, mode):
        calls.append((code, mode))
        if "REJECT" in code:
            raise InvalidInput("cannot parse")
        return "# formatted\n" + code

    fake = types.ModuleType("black")
    fake.InvalidInput, fake.format_str, fake.Mode = InvalidInput, format_str, lambda: "MODE"
    cfg = OmegaConf.create({"train": {"max_iter": 5}})
    plain = LazyConfig.to_py(cfg)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "black", fake)
        assert LazyConfig.to_py(cfg) == "# formatted\n" + plain
        assert calls == [(plain, "MODE")]
        rejected = OmegaConf.create({"REJECT": 1})
        assert LazyConfig.to_py(rejected) == "cfg.REJECT = 1"
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "black", None)  # not installed
        assert LazyConfig.to_py(cfg) == plain == "cfg.train.max_iter = 5"


def test_dataclass_in_lazycall_survives_save_load(tmp_path):
    # A ShapeSpec given to a LazyCall (as upstream's model-zoo configs do) comes back as
    # a ShapeSpec after save/load, so instantiate builds the same module.
    import torch

    from detectron2.layers import ShapeSpec
    from detectron2.modeling.roi_heads import FastRCNNConvFCHead

    cfg = OmegaConf.create(
        {"head": L(FastRCNNConvFCHead)(input_shape=ShapeSpec(channels=4, height=3, width=3), conv_dims=[], fc_dims=[6]),
         "shape": ShapeSpec(channels=2, stride=8)},
        flags={"allow_objects": True},
    )
    path = str(tmp_path / "cfg.yaml")
    LazyConfig.save(cfg, path)
    assert not os.path.exists(path + ".pkl")  # plain YAML was enough
    again = LazyConfig.load(path)
    head = instantiate(again.head)
    assert isinstance(head, FastRCNNConvFCHead)
    assert head.output_shape.channels == 6
    assert head(torch.zeros(2, 4, 3, 3)).shape == (2, 6)
    shape = instantiate(again.shape)
    assert isinstance(shape, ShapeSpec) and shape == ShapeSpec(channels=2, stride=8)


def test_zoo_lazy_config_survives_save_load(tmp_path):
    # Upstream's own model config nests ShapeSpec(...) in LazyCalls.
    from detectron2 import model_zoo
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.roi_heads import FastRCNNConvFCHead, MaskRCNNConvUpsampleHead

    cfg = model_zoo.get_config("common/models/mask_rcnn_fpn.py")
    path = str(tmp_path / "model.yaml")
    LazyConfig.save(cfg, path)
    again = LazyConfig.load(path)
    assert isinstance(instantiate(again.model.roi_heads.box_head.input_shape), ShapeSpec)
    box_head = instantiate(again.model.roi_heads.box_head)
    mask_head = instantiate(again.model.roi_heads.mask_head)
    assert isinstance(box_head, FastRCNNConvFCHead) and isinstance(mask_head, MaskRCNNConvUpsampleHead)
    original = instantiate(cfg.model.roi_heads.box_head)
    assert box_head.output_shape == original.output_shape
