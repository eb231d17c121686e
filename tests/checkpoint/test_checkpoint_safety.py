"""Checkpoints: damaged files are called corrupt (not unsafe), a checkpoint of another
architecture loads what fits, resume handles a bad last_checkpoint and removes temporaries
of interrupted saves, and files get the user's umask (issue 15)."""
import logging
import os
import pickle
import stat

import pytest
import torch
from torch import nn

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.checkpoint.safe_load import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
    atomic_write,
    current_umask,
    load_torch,
    remove_stale_temporaries,
)
from detectron2.layers import FrozenBatchNorm2d


def _net(channels: int = 4, frozen: bool = True) -> nn.Module:
    norm = FrozenBatchNorm2d(channels) if frozen else nn.BatchNorm2d(channels)
    return nn.Sequential(nn.Conv2d(3, channels, 3), norm, nn.ReLU(), nn.Conv2d(channels, 2, 1))


def _good_file(tmp_path) -> bytes:
    path = tmp_path / "good.pth"
    torch.save({"model": _net().state_dict(), "iteration": 3}, str(path))
    return path.read_bytes()


def _damaged(tmp_path, kind: str) -> str:
    good = _good_file(tmp_path)
    data = {
        "empty": b"",
        "truncated_half": good[: len(good) // 2],
        "truncated_tail": good[:-30],
        "one_byte": good[:1],
        "random": bytes(torch.randint(0, 256, (700,), generator=torch.Generator().manual_seed(1)).tolist()),
        "text": b"this is not a checkpoint\n",
        "legacy_pickle_truncated": pickle.dumps({"model": {"w": list(range(100))}}, protocol=2)[:40],
    }[kind]
    path = tmp_path / f"{kind}.pth"
    path.write_bytes(data)
    return str(path)


DAMAGE = ["empty", "truncated_half", "truncated_tail", "one_byte", "random", "text", "legacy_pickle_truncated"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_file_is_corrupt_not_unsafe(tmp_path, kind):
    path = _damaged(tmp_path, kind)
    with pytest.raises(CorruptCheckpointError) as err:
        DetectionCheckpointer(_net()).load(path)
    assert not isinstance(err.value, UnsafeCheckpointError)
    message = str(err.value)
    assert path in message and "corrupt" in message and "\n" not in message
    # what torch.load raised for such files stays catchable
    assert isinstance(err.value, (EOFError)) and isinstance(err.value, RuntimeError)


@pytest.mark.parametrize("kind", ["empty", "truncated_half", "text"])
def test_damaged_file_with_the_restricted_unpickler(tmp_path, kind):
    path = _damaged(tmp_path, kind)
    with pytest.raises(CorruptCheckpointError, match="corrupt"):
        load_torch(path, weights_only=False)


def test_a_global_is_still_called_unsafe(tmp_path):
    path = str(tmp_path / "evil.pth")
    torch.save({"model": {}, "x": os.getcwd}, path)
    with pytest.raises(UnsafeCheckpointError, match="getcwd"):
        load_torch(path)


@pytest.mark.parametrize("model", [[1, 2], torch.zeros(3), "weights", 5, None])
def test_model_entry_not_a_dict(tmp_path, model):
    path = str(tmp_path / "m.pth")
    torch.save({"model": model}, path)
    with pytest.raises(ValueError, match=r"'model' entry holds a \w+, expected a dict"):
        DetectionCheckpointer(_net()).load(path)


def test_model_dict_with_non_string_keys(tmp_path):
    path = str(tmp_path / "m.pth")
    torch.save({"model": {0: torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="key 0"):
        DetectionCheckpointer(_net()).load(path)


@pytest.mark.parametrize("source_frozen", [True, False])
def test_other_architecture_loads_what_fits_and_warns(tmp_path, caplog, source_frozen):
    # BatchNorm2d checkpoints have version 2: FrozenBatchNorm2d then upgrades running_var
    src = _net(channels=6, frozen=source_frozen)
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
    path = str(tmp_path / "other.pth")
    torch.save({"model": src.state_dict()}, path)
    dst = _net(channels=4)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with caplog.at_level(logging.WARNING):
        DetectionCheckpointer(dst).load(path)
    after = dst.state_dict()
    # every shape differs (6 vs 4 channels) but the last conv's bias, which loads
    for key in before:
        expected = src.state_dict()[key] if key == "3.bias" else before[key]
        assert torch.equal(expected, after[key]), key
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "1.running_var" in text and "shape" in text


def test_other_architecture_partial_overlap_loads_matching_weights(tmp_path):
    src = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 5, 1))
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
        src[1].running_var.uniform_(1, 2)
    path = str(tmp_path / "other.pth")
    torch.save({"model": src.state_dict()}, path)
    dst = _net(channels=4)
    DetectionCheckpointer(dst).load(path)
    assert torch.equal(dst[0].weight, src[0].weight)
    # BatchNorm (version 2) statistics lose eps when read into FrozenBatchNorm2d (version 3)
    torch.testing.assert_close(dst[1].running_var, src[1].running_var - dst[1].eps)
    assert not torch.equal(dst[3].weight[:2], src[3].weight[:2])  # shape differed: kept


def _trained_dir(tmp_path) -> str:
    out = str(tmp_path / "out")
    os.makedirs(out)
    DetectionCheckpointer(_net(), out).save("model_0000009", iteration=9)
    return out


def test_resume_with_an_empty_last_checkpoint(tmp_path):
    out = _trained_dir(tmp_path)
    open(os.path.join(out, "last_checkpoint"), "w").close()
    with pytest.raises(ValueError, match=r"last_checkpoint is empty.*model_0000009|last_checkpoint is empty"):
        DetectionCheckpointer(_net(), out).resume_or_load("", resume=True)


def test_resume_with_a_last_checkpoint_naming_a_missing_file(tmp_path):
    out = _trained_dir(tmp_path)
    with open(os.path.join(out, "last_checkpoint"), "w") as f:
        f.write("model_gone.pth")
    with pytest.raises(FileNotFoundError, match="model_gone.pth"):
        DetectionCheckpointer(_net(), out).resume_or_load("", resume=True)


def test_resume_normal_and_without_resume_ignores_last_checkpoint(tmp_path):
    out = _trained_dir(tmp_path)
    assert DetectionCheckpointer(_net(), out).resume_or_load("", resume=True)["iteration"] == 9
    open(os.path.join(out, "last_checkpoint"), "w").close()
    assert DetectionCheckpointer(_net(), out).resume_or_load("", resume=False) == {}


def test_resume_removes_stale_temporaries_only(tmp_path):
    out = _trained_dir(tmp_path)
    stale = [".model_0000019.pth.ab12cd_9.tmp", ".last_checkpoint.zz99yy00.tmp"]
    kept = ["notes.tmp", ".hidden", "model_0000009.pth", ".model.pth.short.tmp"]
    for name in stale + kept[:2] + kept[3:]:
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"partial")
    DetectionCheckpointer(_net(), out).resume_or_load("", resume=True)
    names = set(os.listdir(out))
    assert not names & set(stale)
    assert set(kept) <= names


def test_remove_stale_temporaries_on_missing_dir(tmp_path):
    assert remove_stale_temporaries(str(tmp_path / "nope")) == []


def test_atomic_write_temporary_matches_the_stale_pattern(tmp_path):
    # a kill during write leaves exactly the kind of file resume removes
    seen = []

    def write(f):
        seen.extend(n for n in os.listdir(tmp_path) if n.endswith(".tmp"))
        f.write(b"x")

    atomic_write(str(tmp_path / "model_final.pth"), write)
    assert len(seen) == 1
    (tmp_path / seen[0]).write_bytes(b"left over")
    assert remove_stale_temporaries(str(tmp_path)) == [str(tmp_path / seen[0])]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002, 0o077])
def test_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        out = _trained_dir(tmp_path)
    finally:
        os.umask(old)
    for name in ("model_0000009.pth", "last_checkpoint"):
        mode = stat.S_IMODE(os.stat(os.path.join(out, name)).st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))


@pytest.mark.parametrize("data", [b"", b"\x80\x02}q\x00(X", b"not a pickle at all"], ids=["empty", "truncated", "text"])
def test_damaged_pkl_is_corrupt(tmp_path, data):
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    with pytest.raises(CorruptCheckpointError, match="model.pkl"):
        DetectionCheckpointer(_net()).load(str(path))


_KILLED_SAVE = """
import os, signal, sys, torch
from torch import nn
from detectron2.checkpoint import DetectionCheckpointer
import detectron2.checkpoint.detection_checkpoint as dc

out, mode = sys.argv[1], sys.argv[2]
model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))
ckpt = DetectionCheckpointer(model, out)
ckpt.save("model_0000004", iteration=4)
real_save = torch.save

def dying_save(obj, f):
    if mode == "mid-write":
        f.write(b"PK\\x03\\x04 partial")
        f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

dc.torch.save = dying_save
ckpt.save("model_0000009", iteration=9)
"""


@pytest.mark.parametrize("mode", ["mid-write", "before-write"])
def test_checkpoint_save_killed_then_resume(tmp_path, mode):
    import subprocess
    import sys

    out = str(tmp_path / "out")
    os.makedirs(out)
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..", "src"))
    proc = subprocess.run([sys.executable, "-c", _KILLED_SAVE, out, mode], env=env, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    temporaries = [n for n in os.listdir(out) if n.endswith(".tmp")]
    assert len(temporaries) == 1 and "model_0000009" in temporaries[0]
    assert not os.path.exists(os.path.join(out, "model_0000009.pth"))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))
    extra = DetectionCheckpointer(model, out).resume_or_load("", resume=True)
    assert extra["iteration"] == 4  # the last complete checkpoint
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
