"""@configurable on classes (__init__ + from_config) and on functions."""
import pytest
from omegaconf import OmegaConf

from detectron2.config import configurable, get_cfg


class _Model:
    @configurable
    def __init__(self, depth, width=16, *, norm="BN"):
        self.depth, self.width, self.norm = depth, width, norm

    @classmethod
    def from_config(cls, cfg, width=None):
        return {"depth": cfg.MODEL.RESNETS.DEPTH, "width": width or 32, "norm": cfg.MODEL.RESNETS.NORM}


class _Child(_Model):
    @configurable
    def __init__(self, extra, **kwargs):
        super().__init__(**kwargs)
        self.extra = extra

    @classmethod
    def from_config(cls, cfg):
        args = _Model.from_config(cfg)
        args["extra"] = "from_cfg"
        return args


class _VarArgs:
    @configurable
    def __init__(self, a, b=0):
        self.a, self.b = a, b

    @classmethod
    def from_config(cls, cfg, **kwargs):
        return {"a": cfg.SEED, **kwargs}


def test_class_positional_and_keyword_without_cfg():
    m = _Model(101, 8, norm="GN")
    assert (m.depth, m.width, m.norm) == (101, 8, "GN")
    m = _Model(depth=18)
    assert (m.depth, m.width, m.norm) == (18, 16, "BN")


def test_class_with_cfg_positional_and_keyword():
    cfg = get_cfg()
    m = _Model(cfg)
    assert (m.depth, m.width, m.norm) == (50, 32, "FrozenBN")
    m = _Model(cfg=cfg)
    assert (m.depth, m.width, m.norm) == (50, 32, "FrozenBN")


def test_class_cfg_with_overrides():
    cfg = get_cfg()
    m = _Model(cfg, width=4)  # an argument of from_config
    assert m.width == 4
    m = _Model(cfg, norm="SyncBN")  # not taken by from_config: overrides its result
    assert m.norm == "SyncBN" and m.depth == 50
    m = _Model(cfg, depth=152)
    assert m.depth == 152


def test_class_with_omegaconf_cfg():
    cfg = OmegaConf.create({"MODEL": {"RESNETS": {"DEPTH": 34, "NORM": "GN"}}})
    m = _Model(cfg)
    assert (m.depth, m.norm) == (34, "GN")


def test_subclass_and_var_kwargs():
    c = _Child(get_cfg())
    assert (c.extra, c.depth, c.width) == ("from_cfg", 50, 32)
    c = _Child("explicit", depth=1)
    assert (c.extra, c.depth) == ("explicit", 1)
    cfg = get_cfg()
    cfg.SEED = 7
    v = _VarArgs(cfg, b=3)
    assert (v.a, v.b) == (7, 3)


def test_function_forms():
    @configurable(from_config=lambda cfg: {"lr": cfg.SOLVER.BASE_LR, "steps": cfg.SOLVER.STEPS})
    def make_schedule(lr, steps=(1,), gamma=0.1):
        return lr, tuple(steps), gamma

    cfg = get_cfg()
    assert make_schedule(0.5) == (0.5, (1,), 0.1)
    assert make_schedule(lr=0.5, gamma=0.2) == (0.5, (1,), 0.2)
    assert make_schedule(cfg) == (0.001, (30000,), 0.1)
    assert make_schedule(cfg=cfg, gamma=0.5) == (0.001, (30000,), 0.5)
    assert make_schedule(cfg, lr=1.0) == (1.0, (30000,), 0.1)
    assert make_schedule.from_config(cfg)["lr"] == 0.001
    assert make_schedule.__name__ == "make_schedule"


def test_missing_from_config_classmethod():
    class NoFromConfig:
        @configurable
        def __init__(self, a):
            self.a = a

    with pytest.raises(AttributeError, match="from_config"):
        NoFromConfig(get_cfg())


def test_from_config_not_a_classmethod():
    class Plain:
        @configurable
        def __init__(self, a):
            self.a = a

        def from_config(self, cfg):
            return {"a": 1}

    with pytest.raises(TypeError, match="classmethod"):
        Plain(1)


def test_from_config_without_cfg_first():
    class WrongSignature:
        @configurable
        def __init__(self, a):
            self.a = a

        @classmethod
        def from_config(cls, config):
            return {"a": 1}

    with pytest.raises(TypeError, match="must take 'cfg' as the first argument"):
        WrongSignature(get_cfg())


def test_incorrect_decorator_usage():
    with pytest.raises(TypeError, match="Incorrect use"):

        @configurable
        def not_init(a):
            return a

    with pytest.raises(TypeError, match="must be a function"):
        configurable(from_config="not a function")


def test_bare_call_form_equals_bare_decorator():
    assert configurable() is configurable
