"""Relocation with conda-pack: an environment made by the project's own channel tooling
(scripts/build_variant.py: our .conda installed by py-rattler into a fresh prefix) is
packed, unpacked at another path, fixed up with conda-unpack, and still imports, runs its
ops and passes the doctor there."""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import conda_pack
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_packed_environment_works_at_a_new_path(tmp_path):
    build = subprocess.run([sys.executable, "scripts/build_variant.py", "cpu", "--out", str(tmp_path / "channel"),
                            "--keep-work"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    work = Path(re.search(r"work directory kept: (\S+)", build.stdout).group(1))
    try:
        prefix = work / "prefix"
        archive = tmp_path / "detectron2-env.tar.gz"
        conda_pack.pack(prefix=str(prefix), output=str(archive), verbose=False)
        moved = tmp_path / "elsewhere" / "detectron2"
        moved.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(moved)
        # conda-unpack rewrites the recorded prefixes; it runs with any python (the
        # channel model has no python package, so this prefix has none of its own).
        subprocess.run([sys.executable, str(moved / "bin" / "conda-unpack")], check=True, cwd=tmp_path, timeout=300)
        shutil.rmtree(work)  # the original prefix is gone: nothing may still point there

        site = next(moved.glob("lib/python*/site-packages"))
        env = dict(os.environ, PYTHONPATH=str(site), CONDA_PREFIX=str(moved))
        probe = ("import torch, detectron2, detectron2._C as C; from detectron2.layers import nms_rotated;"
                 "b = torch.tensor([[5., 5, 4, 4, 0], [5, 5, 4, 4, 1]]);"
                 "print(detectron2.__file__); print(nms_rotated(b, torch.tensor([1., .9]), 0.5).tolist())")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        path, kept = done.stdout.splitlines()
        assert path.startswith(str(site)) and kept == "[0]"

        doctor = subprocess.run([sys.executable, "-m", "detectron2.doctor", "--json"], capture_output=True, text=True,
                                env=env, cwd=tmp_path, timeout=300)
        report = json.loads(doctor.stdout)
        assert doctor.returncode == 0 and report["healthy"], report["failed"]
        checks = {c["name"]: c for c in report["checks"]}
        assert checks["ext-import"]["status"] == "ok"
        assert str(site) in json.dumps(checks["source-tree"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
