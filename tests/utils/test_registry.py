"""Registry (fvcore) lookups/errors, locate() and _convert_target_to_string()."""
import collections
import os.path

import pytest
import torch

from detectron2.utils.registry import Registry, _convert_target_to_string, locate


def test_register_and_get():
    reg = Registry("TEST_THINGS")

    @reg.register()
    class Foo:
        pass

    def bar():
        return 1

    reg.register(bar)
    assert reg.get("Foo") is Foo and reg.get("bar") is bar
    assert "Foo" in reg and "bar" in reg
    with pytest.raises(KeyError, match="No object named 'Baz' found in 'TEST_THINGS' registry"):
        reg.get("Baz")
    with pytest.raises(AssertionError, match="already registered"):
        reg.register(Foo)


def test_locate():
    assert locate("torch.nn.Conv2d") is torch.nn.Conv2d
    assert locate("os.path.join") is os.path.join
    assert locate("collections.OrderedDict.fromkeys") == collections.OrderedDict.fromkeys
    assert locate("int") is int and locate("builtins.dict") is dict
    assert locate("detectron2.utils.registry.Registry") is Registry
    with pytest.raises(ImportError, match="no attribute 'NotThere'"):
        locate("torch.nn.NotThere")
    with pytest.raises(ImportError, match="no_such_pkg"):
        locate("no_such_pkg.thing")
    with pytest.raises(ImportError):
        locate("")


def test_locate_does_not_hide_broken_modules(tmp_path, monkeypatch):
    (tmp_path / "broken_mod_for_locate.py").write_text("import module_that_does_not_exist_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="module_that_does_not_exist_xyz"):
        locate("broken_mod_for_locate.thing")


def test_convert_target_to_string_prefers_short_paths():
    # torch.nn.Conv2d lives in torch.nn.modules.conv but is reachable as torch.nn.Conv2d.
    assert _convert_target_to_string(torch.nn.Conv2d) == "torch.nn.Conv2d"
    assert _convert_target_to_string(collections.OrderedDict) == "collections.OrderedDict"
    name = _convert_target_to_string(_convert_target_to_string)
    assert locate(name) is _convert_target_to_string


class _Local:
    class Inner:
        pass


def test_convert_nested_class():
    name = _convert_target_to_string(_Local.Inner)
    assert name.endswith("_Local.Inner")
    assert locate(name) is _Local.Inner
