"""Config files never run code unless asked, and malformed files or _BASE_ chains get
one-line errors naming the files (issue 15)."""
import logging
import os

import pytest
import yaml

from detectron2.config import CfgNode, LazyConfig, get_cfg
from detectron2.config.config import ConfigFileError, UnsafeConfigError

# Each payload would create the file named by the test's marker path if it ran.
_PAYLOADS = {
    "object/apply": "!!python/object/apply:os.system ['touch {marker}']",
    "object/new": "!!python/object/new:subprocess.call [['touch', '{marker}']]",
    "name": "!!python/name:os.system",
    "object": "!!python/object:argparse.Namespace {{a: 1}}",
    "module": "!!python/module:os",
}


def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _tagged_file(tmp_path, kind: str) -> tuple:
    marker = tmp_path / "ran"
    payload = _PAYLOADS[kind].format(marker=marker)
    return _write(tmp_path / "evil.yaml", f"MODEL:\n  DEVICE: {payload}\n"), marker


LOADERS = {
    "merge_from_file": lambda path, **kw: get_cfg().merge_from_file(path, **kw),
    "load_yaml_with_base": lambda path, **kw: CfgNode.load_yaml_with_base(path, **kw),
    "LazyConfig.load": lambda path, **kw: LazyConfig.load(path, **kw),
}


@pytest.mark.parametrize("kind", sorted(_PAYLOADS))
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_python_tags_are_refused_by_default(tmp_path, kind, loader):
    path, marker = _tagged_file(tmp_path, kind)
    with pytest.raises(UnsafeConfigError) as info:
        LOADERS[loader](path)
    message = str(info.value)
    assert "evil.yaml" in message and "allow_unsafe=True" in message and "\n" not in message
    assert isinstance(info.value, yaml.constructor.ConstructorError)  # what fvcore raised
    assert not marker.exists()


def test_python_tag_in_a_base_file_names_the_chain(tmp_path):
    marker = tmp_path / "ran"
    _write(tmp_path / "base.yaml", f"MODEL:\n  DEVICE: !!python/object/apply:os.system ['touch {marker}']\n")
    child = _write(tmp_path / "child.yaml", "_BASE_: base.yaml\n")
    with pytest.raises(UnsafeConfigError, match=r"'.*child\.yaml' -> '.*base\.yaml'"):
        get_cfg().merge_from_file(child)
    assert not marker.exists()


@pytest.mark.parametrize("loader", ["load_yaml_with_base", "LazyConfig.load"])
def test_allow_unsafe_is_an_explicit_opt_in_with_a_warning(tmp_path, loader, caplog):
    marker = tmp_path / "ran"
    path = _write(tmp_path / "evil.yaml", f"A: !!python/object/apply:os.system ['touch {marker}']\n")
    with caplog.at_level(logging.WARNING):
        LOADERS[loader](path, allow_unsafe=True)
    assert marker.exists()  # the user asked for it
    assert any("allow_unsafe=True" in r.getMessage() and "evil.yaml" in r.getMessage() for r in caplog.records)


def test_merge_from_file_allow_unsafe_loads_python_values(tmp_path):
    path = _write(tmp_path / "cfg.yaml", "MODEL:\n  DEVICE: !!python/object/apply:os.path.join ['c', 'pu']\n")
    cfg = get_cfg()
    cfg.merge_from_file(path, allow_unsafe=True)
    assert cfg.MODEL.DEVICE == os.path.join("c", "pu")


def test_plain_and_tuple_yaml_loads_without_warning(tmp_path, caplog):
    path = _write(tmp_path / "cfg.yaml", "INPUT:\n  MIN_SIZE_TRAIN: !!python/tuple [1, 2]\n")
    with caplog.at_level(logging.WARNING):
        cfg = get_cfg()
        cfg.merge_from_file(path)
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == (1, 2)
    assert not [r for r in caplog.records if "unsafe" in r.getMessage()]


def _assert_one_line(err, *parts):
    message = str(err.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)
    assert isinstance(err.value, (ValueError, AssertionError))


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_empty_file(tmp_path, loader):
    path = _write(tmp_path / "empty.yaml", "")
    with pytest.raises(ConfigFileError) as err:
        LOADERS[loader](path)
    _assert_one_line(err, "empty.yaml", "empty")


@pytest.mark.parametrize("text,kind", [("- 1\n- 2\n", "list"), ("3\n", "int"), ("just text\n", "str")])
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_wrong_top_level_type(tmp_path, loader, text, kind):
    path = _write(tmp_path / "top.yaml", text)
    with pytest.raises(ConfigFileError) as err:
        LOADERS[loader](path)
    _assert_one_line(err, "top.yaml", "mapping", kind)


def test_self_reference(tmp_path):
    path = _write(tmp_path / "self.yaml", "_BASE_: self.yaml\nMODEL:\n  DEVICE: cpu\n")
    with pytest.raises(ConfigFileError) as err:
        get_cfg().merge_from_file(path)
    _assert_one_line(err, "cycle", "self.yaml' -> '")


@pytest.mark.parametrize("length", [2, 3, 5])
def test_base_cycle(tmp_path, length):
    names = [f"c{i}.yaml" for i in range(length)]
    for i, name in enumerate(names):
        _write(tmp_path / name, f"_BASE_: {names[(i + 1) % length]}\n")
    with pytest.raises(ConfigFileError) as err:
        CfgNode.load_yaml_with_base(str(tmp_path / names[0]))
    _assert_one_line(err, "cycle", *names)


def test_cycle_through_a_base_list_and_a_subdirectory(tmp_path):
    os.makedirs(tmp_path / "sub")
    _write(tmp_path / "a.yaml", "_BASE_: [ok.yaml, sub/b.yaml]\n")
    _write(tmp_path / "ok.yaml", "MODEL:\n  DEVICE: cpu\n")
    _write(tmp_path / "sub" / "b.yaml", "_BASE_: ../a.yaml\n")
    with pytest.raises(ConfigFileError) as err:
        get_cfg().merge_from_file(str(tmp_path / "a.yaml"))
    _assert_one_line(err, "cycle", "b.yaml")


def test_diamond_is_not_a_cycle(tmp_path):
    _write(tmp_path / "root.yaml", "SOLVER:\n  BASE_LR: 0.5\n")
    _write(tmp_path / "l.yaml", "_BASE_: root.yaml\nSOLVER:\n  MAX_ITER: 7\n")
    _write(tmp_path / "r.yaml", "_BASE_: root.yaml\nSOLVER:\n  IMS_PER_BATCH: 3\n")
    _write(tmp_path / "top.yaml", "_BASE_: [l.yaml, r.yaml]\n")
    cfg = get_cfg()
    cfg.merge_from_file(str(tmp_path / "top.yaml"))
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER, cfg.SOLVER.IMS_PER_BATCH) == (0.5, 7, 3)


def test_missing_base(tmp_path):
    _write(tmp_path / "mid.yaml", "_BASE_: gone.yaml\n")
    path = _write(tmp_path / "top.yaml", "_BASE_: mid.yaml\n")
    with pytest.raises(ConfigFileError) as err:
        get_cfg().merge_from_file(path)
    _assert_one_line(err, "top.yaml", "mid.yaml", "gone.yaml", "does not exist")
    assert isinstance(err.value, FileNotFoundError)  # what opening the missing file raised


@pytest.mark.parametrize("base", ["3", "''", "[base.yaml, 4]", "{a: 1}"])
def test_base_of_the_wrong_type(tmp_path, base):
    _write(tmp_path / "base.yaml", "MODEL:\n  DEVICE: cpu\n")
    path = _write(tmp_path / "top.yaml", f"_BASE_: {base}\n")
    with pytest.raises(ConfigFileError) as err:
        CfgNode.load_yaml_with_base(path)
    _assert_one_line(err, "top.yaml", "_BASE_")


def test_invalid_yaml_syntax(tmp_path):
    path = _write(tmp_path / "bad.yaml", "MODEL: [unclosed\n")
    with pytest.raises(ConfigFileError, match="bad.yaml"):
        CfgNode.load_yaml_with_base(path)


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object:os.PathLike {}",  # not detectron2
        "!!python/object:detectron2.config.config.CfgNode {}",  # detectron2, not a dataclass
        "!!python/object:detectron2.layers.nonexistent.Thing {}",
        "!!python/object:detectron2.layers.ShapeSpec.__init__ {}",
    ],
)
def test_only_detectron2_dataclasses_pass_the_safe_loader(tmp_path, tag):
    path = tmp_path / "cfg.yaml"
    path.write_text(f"a: {tag}\n")
    with pytest.raises(UnsafeConfigError):
        LazyConfig.load(str(path))


def test_a_detectron2_dataclass_is_rebuilt_by_the_safe_loader(tmp_path):
    from detectron2.layers import ShapeSpec

    path = tmp_path / "cfg.yaml"
    path.write_text("a: !!python/object:detectron2.layers.shape_spec.ShapeSpec {channels: 3, stride: 4}\n")
    cfg = LazyConfig.load(str(path))
    assert cfg.a == ShapeSpec(channels=3, stride=4)
