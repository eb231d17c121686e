"""env: version tuple, seeding, custom environment modules, module metadata fixup."""
import random
import sys

import numpy as np
import pytest
import torch

from detectron2.utils import env


def test_torch_version_tuple():
    assert isinstance(env.TORCH_VERSION, tuple) and len(env.TORCH_VERSION) == 2
    assert env.TORCH_VERSION == tuple(int(x) for x in torch.__version__.split(".")[:2])


def _draws():
    return random.random(), np.random.rand(), torch.rand(1).item()


def test_seed_all_rng_is_reproducible(monkeypatch):
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    env.seed_all_rng(123)
    a = _draws()
    env.seed_all_rng(123)
    assert _draws() == a
    import os

    assert os.environ["PYTHONHASHSEED"] == "123"
    env.seed_all_rng()  # a generated seed
    env.seed_all_rng(2**40)  # large seeds are accepted


def test_import_file(tmp_path):
    path = tmp_path / "some_mod.py"
    path.write_text("VALUE = 41 + 1\n")
    mod = env._import_file("d2_test_imported_mod", str(path))
    assert mod.VALUE == 42 and "d2_test_imported_mod" not in sys.modules
    mod = env._import_file("d2_test_imported_mod", str(path), make_importable=True)
    try:
        import d2_test_imported_mod

        assert d2_test_imported_mod is mod
    finally:
        del sys.modules["d2_test_imported_mod"]


def test_setup_custom_environment_from_file(tmp_path):
    path = tmp_path / "custom_env.py"
    marker = tmp_path / "called"
    path.write_text(f"def setup_environment():\n    open({str(marker)!r}, 'w').close()\n")
    env.setup_custom_environment(str(path))
    assert marker.exists()


def test_setup_custom_environment_requires_function(tmp_path):
    path = tmp_path / "no_setup.py"
    path.write_text("x = 1\n")
    with pytest.raises(AttributeError, match="setup_environment"):
        env.setup_custom_environment(str(path))


def test_setup_environment_runs_env_module_once(tmp_path, monkeypatch):
    pkg = tmp_path / "d2_custom_env_mod.py"
    pkg.write_text("CALLS = []\ndef setup_environment():\n    CALLS.append(1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DETECTRON2_ENV_MODULE", "d2_custom_env_mod")
    monkeypatch.setattr(env, "_ENV_SETUP_DONE", False)
    monkeypatch.setenv("OPENCV_OPENCL_RUNTIME", "")  # restored after the test
    env.setup_environment()
    env.setup_environment()
    import d2_custom_env_mod

    assert d2_custom_env_mod.CALLS == [1]


def test_fixup_module_metadata(monkeypatch):
    import types

    monkeypatch.setattr(env, "DOC_BUILDING", True)  # it only rewrites while building docs

    ns = types.ModuleType("d2_fake_pkg")
    code = "class Thing:\n    def method(self):\n        pass\n\ndef func():\n    pass\n"
    exec(compile(code, "<fake>", "exec"), ns.__dict__)
    ns.Thing.__module__ = "d2_fake_pkg._private_impl"
    ns.func.__module__ = "d2_fake_pkg._private_impl"
    namespace = {"Thing": ns.Thing, "func": ns.func, "_hidden": ns.func, "np": np}
    env.fixup_module_metadata("d2_fake_pkg", namespace)
    assert ns.Thing.__module__ == "d2_fake_pkg"
    assert ns.func.__module__ == "d2_fake_pkg"
    assert ns.Thing.method.__qualname__ == "Thing.method"
    assert np.__name__ == "numpy"  # objects of other packages are untouched


def test_module_names_stay_real_at_import():
    # As upstream, __module__ is rewritten only for doc builds: TorchScript and
    # inspect need the module that holds the source.
    import detectron2.config as config
    import detectron2.data.transforms as T

    assert config.CfgNode.__module__.startswith("detectron2.config.")
    assert T.ResizeTransform.__module__ == "detectron2.data.transforms.transform"
    import inspect

    assert "class ResizeTransform" in inspect.getsource(T.ResizeTransform)  # what TorchScript reads


def test_rng_state_round_trip_restores_every_generator():
    env.seed_all_rng(7)
    state = env.get_rng_state()
    first = (random.random(), np.random.rand(2), torch.rand(2))
    env.seed_all_rng(99)
    env.set_rng_state(state)
    again = (random.random(), np.random.rand(2), torch.rand(2))
    assert first[0] == again[0]
    assert np.array_equal(first[1], again[1])
    assert torch.equal(first[2], again[2])
