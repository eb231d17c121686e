"""get_cfg() must hold exactly upstream's keys and default values."""
import pathlib

import yaml

from detectron2.config import CfgNode, get_cfg

DATA = pathlib.Path(__file__).parent / "data"


def _plain(x):
    """Nested dicts/lists only (tuples and CfgNodes normalized away)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def _upstream():
    return _flatten(_plain(yaml.safe_load((DATA / "upstream_defaults.yaml").read_text())))


def test_keys_equal_upstream():
    ours = _flatten(_plain(get_cfg()))
    ref = _upstream()
    assert sorted(set(ref) - set(ours)) == [], "keys missing from get_cfg()"
    assert sorted(set(ours) - set(ref)) == [], "keys upstream does not have"


def test_values_and_types_equal_upstream():
    ours = _flatten(_plain(get_cfg()))
    for key, ref_value in _upstream().items():
        assert ours[key] == ref_value, key
        # 1 and 1.0 compare equal: the yaml types (int/float/bool/None/str) must match too.
        assert type(ours[key]) is type(ref_value), (key, type(ours[key]), type(ref_value))


def test_dump_is_identical_to_upstream_dump():
    # Byte-identical dumps also pin down which sequences are tuples (shared as YAML
    # anchors by upstream's dump) and which are lists.
    expected = "".join((DATA / "upstream_defaults.yaml").read_text().splitlines(keepends=True)[1:])
    assert get_cfg().dump().rstrip("\n") == expected.rstrip("\n")


def test_defaults_of_note():
    cfg = get_cfg()
    assert cfg.VERSION == 2
    assert cfg.MODEL.DEVICE == "cuda"
    assert list(cfg.MODEL.PIXEL_MEAN) == [103.53, 116.28, 123.675]
    assert list(cfg.MODEL.PIXEL_STD) == [1.0, 1.0, 1.0]
    assert isinstance(cfg, CfgNode) and isinstance(cfg.MODEL.RPN, CfgNode)


def test_get_cfg_returns_independent_copies():
    a = get_cfg()
    a.MODEL.DEVICE = "cpu"
    a.SOLVER.STEPS = (1, 2)
    b = get_cfg()
    assert b.MODEL.DEVICE == "cuda"
    assert tuple(b.SOLVER.STEPS) == (30000,)
