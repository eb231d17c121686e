"""DetectionCheckpointer: round trips, Detectron1 .pkl files, refusing malicious pickles,
atomic saves."""
import logging
import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from detectron2.checkpoint import Checkpointer, DetectionCheckpointer, PeriodicCheckpointer
from detectron2.checkpoint.safe_load import UnsafeCheckpointError, load_torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone.fpn import build_resnet_fpn_backbone


class _Detector(nn.Module):
    """Just enough of a GeneralizedRCNN for its state_dict keys: backbone + pixel stats."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        cfg = get_cfg()
        cfg.MODEL.RESNETS.DEPTH = 50
        # R50-FPN structure (the key names), narrow so the file stays small
        cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 8
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 16
        cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 4
        cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
        cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
        cfg.MODEL.FPN.OUT_CHANNELS = 8
        self.backbone = build_resnet_fpn_backbone(cfg, ShapeSpec(channels=3))
        for p in self.parameters():
            nn.init.normal_(p)
        for name, b in self.named_buffers():
            if "running" in name or name.endswith("norm.weight") or name.endswith("norm.bias"):
                b.copy_(torch.rand_like(b) + 0.5)
        self.register_buffer("pixel_mean", torch.tensor([103.5, 116.3, 123.7]).view(-1, 1, 1), False)


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_exports():
    assert issubclass(DetectionCheckpointer, Checkpointer)
    import fvcore.common.checkpoint as fv

    assert Checkpointer is fv.Checkpointer and PeriodicCheckpointer is fv.PeriodicCheckpointer


def test_round_trip_upstream_format(tmp_path):
    model = _Detector(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ckpt = DetectionCheckpointer(model, str(tmp_path), optimizer=opt)
    ckpt.save("model_0000009", iteration=9)
    path = tmp_path / "model_0000009.pth"
    data = torch.load(path, weights_only=True)
    assert set(data) == {"model", "optimizer", "iteration"} and data["iteration"] == 9
    _assert_same(data["model"], model.state_dict())
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    fresh = _Detector(1)
    assert not torch.equal(fresh.backbone.fpn_lateral2.weight, model.backbone.fpn_lateral2.weight)
    reader = DetectionCheckpointer(fresh, str(tmp_path), optimizer=torch.optim.SGD(fresh.parameters(), lr=0.1))
    assert reader.has_checkpoint()
    extra = reader.resume_or_load("", resume=True)
    assert extra == {"iteration": 9}
    _assert_same(fresh.state_dict(), model.state_dict())


def test_load_bare_state_dict_and_query_heuristics(tmp_path):
    model = _Detector(0)
    bare = tmp_path / "bare.pth"
    torch.save(model.state_dict(), bare)
    fresh = _Detector(1)
    DetectionCheckpointer(fresh).load(str(bare))
    _assert_same(fresh.state_dict(), model.state_dict())

    # a backbone saved on its own: names lack "backbone."; the heuristics restore them
    bb = tmp_path / "backbone.pth"
    torch.save({"model": model.backbone.bottom_up.state_dict()}, bb)
    fresh = _Detector(2)
    DetectionCheckpointer(fresh).load(str(bb) + "?matching_heuristics=True")
    _assert_same(fresh.backbone.bottom_up.state_dict(), model.backbone.bottom_up.state_dict())
    with pytest.raises(ValueError, match="Unsupported query"):
        DetectionCheckpointer(fresh).load(str(bb) + "?foo=1")


def test_incompatible_keys_reported_in_table(tmp_path, caplog):
    model = _Detector(0)
    sd = model.state_dict()
    sd["backbone.fpn_output2.weight"] = torch.zeros(3, 3, 3, 3)  # wrong shape
    del sd["backbone.fpn_lateral3.bias"]  # missing
    sd["roi_heads.box_head.fc1.weight"] = torch.zeros(2)  # unexpected
    f = tmp_path / "partial.pth"
    torch.save({"model": sd}, f)
    fresh = _Detector(1)
    before = fresh.backbone.fpn_output2.weight.clone()
    with caplog.at_level(logging.WARNING):
        DetectionCheckpointer(fresh).load(str(f))
    assert torch.equal(fresh.backbone.fpn_output2.weight, before)  # skipped, not crashed
    text = caplog.text
    assert "backbone.fpn_output2.weight" in text and "shape mismatch" in text and "(3, 3, 3, 3)" in text
    assert "backbone.fpn_lateral3.bias" in text and "missing in checkpoint" in text
    assert "roi_heads.box_head.fc1.weight" in text and "unexpected" in text
    assert "pixel_mean" not in text  # config-derived buffer: never reported


def _c2_blobs(model: _Detector) -> dict:
    """Some R50-FPN weights under their Detectron1 names, as float32 numpy arrays."""
    sd = model.state_dict()
    names = {
        "conv1_w": "backbone.bottom_up.stem.conv1.weight",
        "res_conv1_bn_s": "backbone.bottom_up.stem.conv1.norm.weight",
        "res_conv1_bn_b": "backbone.bottom_up.stem.conv1.norm.bias",
        "res2_0_branch1_w": "backbone.bottom_up.res2.0.shortcut.weight",
        "res2_0_branch2a_w": "backbone.bottom_up.res2.0.conv1.weight",
        "res2_0_branch2a_bn_s": "backbone.bottom_up.res2.0.conv1.norm.weight",
        "res3_3_branch2c_bn_b": "backbone.bottom_up.res3.3.conv3.norm.bias",
        "res5_2_branch2b_w": "backbone.bottom_up.res5.2.conv2.weight",
        "fpn_inner_res5_2_sum_w": "backbone.fpn_lateral5.weight",
        "fpn_inner_res2_2_sum_lateral_b": "backbone.fpn_lateral2.bias",
        "fpn_res4_5_sum_w": "backbone.fpn_output4.weight",
    }
    rng = np.random.RandomState(0)
    blobs = {c2: rng.randn(*sd[ours].shape).astype(np.float32) for c2, ours in names.items()}
    return blobs, names


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_detectron1_pkl_loads_with_conversion(tmp_path, protocol, caplog):
    model = _Detector(0)
    blobs, names = _c2_blobs(model)
    blobs_with_momentum = dict(blobs, conv1_w_momentum=np.zeros(3, np.float32))
    f = tmp_path / "model_final.pkl"
    with open(f, "wb") as fh:
        pickle.dump({"blobs": blobs_with_momentum, "cfg": "a yaml string"}, fh, protocol=protocol)
    with caplog.at_level(logging.INFO):
        DetectionCheckpointer(model).load(str(f))
    sd = model.state_dict()
    for c2, ours in names.items():
        np.testing.assert_array_equal(sd[ours].numpy(), blobs[c2], err_msg=ours)
    assert "momentum" not in caplog.text
    assert "res2_0_branch2a_w" in caplog.text  # the match table names the Detectron1 blob


def test_detectron2_zoo_pkl_loads_directly(tmp_path):
    model = _Detector(0)
    f = tmp_path / "zoo.pkl"
    with open(f, "wb") as fh:
        data = {k: v.numpy() for k, v in model.state_dict().items()}
        pickle.dump({"model": data, "__author__": "Detectron2 Model Zoo"}, fh)
    fresh = _Detector(1)
    DetectionCheckpointer(fresh).load(str(f))
    _assert_same(fresh.state_dict(), model.state_dict())


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_malicious_pickle_is_refused(tmp_path, suffix):
    marker = tmp_path / "pwned"
    f = tmp_path / ("evil" + suffix)
    payload = {"model": {"w": np.zeros(2, np.float32)}, "__author__": "x", "x": _Evil(marker)}
    if suffix == ".pth":
        torch.save(dict(payload, model={"w": torch.zeros(2)}), f)
    else:
        with open(f, "wb") as fh:
            pickle.dump(payload, fh)
    with pytest.raises(UnsafeCheckpointError) as info:
        DetectionCheckpointer(_Detector(0)).load(str(f))
    msg = str(info.value)
    assert str(f) in msg and "system" in msg
    assert not marker.exists()


def test_builtin_callables_are_refused_in_pkl(tmp_path):
    f = tmp_path / "eval.pkl"
    with open(f, "wb") as fh:
        pickle.dump({"blobs": {"a": _EvalEvil()}}, fh)
    with pytest.raises(UnsafeCheckpointError, match=r"builtins\.eval"):
        DetectionCheckpointer(_Detector(0)).load(str(f))


def test_restricted_torch_unpickler_for_old_torch(tmp_path):
    """The fallback used where torch lacks weights_only, exercised directly."""
    good = tmp_path / "good.pth"
    sd = {"a": torch.arange(4.0), "b": torch.zeros(2, 3, dtype=torch.float16)}
    torch.save({"model": sd, "iteration": 3}, good)
    loaded = load_torch(str(good), weights_only=False)
    assert loaded["iteration"] == 3
    _assert_same(loaded["model"], sd)

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"model": sd, "x": _Evil(marker)}, evil)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_torch(str(evil), weights_only=False)
    assert not marker.exists()


def test_non_dict_checkpoint_rejected(tmp_path):
    f = tmp_path / "list.pkl"
    with open(f, "wb") as fh:
        pickle.dump([1, 2], fh)
    with pytest.raises(ValueError, match="expected a dict"):
        DetectionCheckpointer(_Detector(0)).load(str(f))


def _failing_save(obj, f, *args, **kwargs):
    f.write(b"partial garbage")
    raise RuntimeError("disk full")


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = _Detector(0)
    ckpt = DetectionCheckpointer(model, str(tmp_path))
    ckpt.save("model_final", iteration=1)
    ckpt.save("model_0000001")
    good = torch.load(tmp_path / "model_final.pth", weights_only=True)
    with torch.no_grad():
        model.backbone.fpn_lateral2.weight.add_(1.0)

    monkeypatch.setattr(torch, "save", _failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.save("model_final", iteration=2)
    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.save("model_0000002")
    monkeypatch.undo()

    after = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert after["iteration"] == 1
    _assert_same(after["model"], good["model"])
    assert not (tmp_path / "model_0000002.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000001.pth", "model_final.pth"]


def test_failed_rename_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = _Detector(0)
    ckpt = DetectionCheckpointer(model, str(tmp_path))
    ckpt.save("model_final", iteration=1)

    def no_replace(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError, match="killed"):
        ckpt.save("model_final", iteration=2)
    monkeypatch.undo()
    assert torch.load(tmp_path / "model_final.pth", weights_only=True)["iteration"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_final.pth"]


def test_save_to_disk_false_writes_nothing(tmp_path):
    DetectionCheckpointer(_Detector(0), str(tmp_path), save_to_disk=False).save("m")
    assert list(tmp_path.iterdir()) == []


def test_periodic_checkpointer_saves_through_detection_checkpointer(tmp_path):
    ckpt = DetectionCheckpointer(_Detector(0), str(tmp_path))
    periodic = PeriodicCheckpointer(ckpt, period=2, max_iter=4, max_to_keep=1)
    for it in range(4):
        periodic.step(it)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["last_checkpoint", "model_0000003.pth", "model_final.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"


def test_pycls_pyth_loads_with_heuristics(tmp_path):
    model = _Detector(0)
    bottom_up = model.backbone.bottom_up.state_dict()
    state = dict(bottom_up, **{"stem.conv1.norm.num_batches_tracked": torch.tensor(5)})
    f = tmp_path / "RegNet.pyth"
    torch.save({"model_state": state, "epoch": 10}, f)
    fresh = _Detector(1)
    DetectionCheckpointer(fresh).load(str(f))
    _assert_same(fresh.backbone.bottom_up.state_dict(), bottom_up)

    bad = tmp_path / "bad.pyth"
    torch.save({"weights": state}, bad)
    with pytest.raises(ValueError, match="model_state"):
        DetectionCheckpointer(fresh).load(str(bad))
