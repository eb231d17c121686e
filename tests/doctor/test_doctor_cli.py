"""The doctor end to end: JSON schema, table, exit codes, and a real run on this machine."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detectron2.doctor.__main__ import main
from detectron2.doctor.checks import CHECKS
from detectron2.doctor.report import SCHEMA_VERSION, exit_code, render_table, to_json
from detectron2.doctor.result import FAIL, OK, SKIP, STATUSES, WARN, CheckResult
from detectron2.doctor.runner import run_checks

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _validate(report):
    """The JSON contract scripts rely on."""
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["tool"] == "detectron2-doctor"
    assert isinstance(report["healthy"], bool) and isinstance(report["elapsed_s"], float)
    assert isinstance(report["failed"], list) and isinstance(report["warned"], list)
    env = report["environment"]
    for key in ("python", "platform", "environment", "prefix", "detectron2", "torch", "extension", "driver", "gpus"):
        assert key in env
    assert env["environment"] in ("conda", "pip")
    assert isinstance(env["gpus"], list)
    names = []
    for check in report["checks"]:
        assert set(check) == {"name", "title", "status", "summary", "evidence", "fix"}
        assert check["status"] in STATUSES
        assert isinstance(check["summary"], str) and check["summary"] and check["title"]
        assert all(isinstance(x, str) for x in check["evidence"] + check["fix"])
        if check["status"] == FAIL:
            assert check["fix"], f"{check['name']} fails without a fix"
        names.append(check["name"])
    assert report["failed"] == [c["name"] for c in report["checks"] if c["status"] == FAIL]
    assert report["healthy"] == (not report["failed"])
    return names


def _run_doctor(*args, env=None):
    environ = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    environ.update(env or {})
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "detectron2.doctor", *args], capture_output=True, text=True,
                          env=environ, timeout=120, cwd=os.path.dirname(SRC))
    return done, time.perf_counter() - start


def _import_torch_seconds():
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True, timeout=120)
    return time.perf_counter() - start


def test_json_run_on_this_machine():
    done, seconds = _run_doctor("--json")
    report = json.loads(done.stdout)
    names = _validate(report)
    assert done.returncode == (1 if report["failed"] else 0)
    assert names[: len(CHECKS) - 1] == [c.name for c in CHECKS][:-1]
    import torch

    env = report["environment"]
    assert env["torch"]["version"] == torch.__version__ and env["torch"]["cuda"] == torch.version.cuda
    has_driver = os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")
    assert env["driver"]["present"] == has_driver
    by_name = {c["name"]: c for c in report["checks"]}
    if not has_driver:  # this development machine: no GPU, so nothing GPU-side may be claimed
        assert env["gpus"] == []
        assert by_name["driver"]["status"] == SKIP
        assert by_name["selftest"]["status"] == SKIP
        assert by_name["ext-arch"]["status"] == SKIP
    # The budget is 5 s on a healthy machine; `import torch` alone can take longer on a
    # loaded one, so the doctor's own share is what is held to the budget there.
    baseline = _import_torch_seconds()
    assert seconds < 5.0 or seconds - baseline < 2.5, (seconds, baseline, report["timings_s"])


def test_table_run_names_failed_checks():
    # A real fault: the CUDA toolkit's stub libcuda on LD_LIBRARY_PATH.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        stubs = Path(tmp) / "cuda" / "lib64" / "stubs"
        stubs.mkdir(parents=True)
        (stubs / "libcuda.so").write_bytes(b"\x7fELF")
        done, _ = _run_doctor("--no-color", env={"LD_LIBRARY_PATH": str(stubs)})
    assert done.returncode == 1
    assert "ld-library-path" in done.stderr and "failed checks" in done.stderr
    assert "\033[" not in done.stdout  # no colour when not on a TTY
    assert "FAILED: " in done.stdout and "fix: unset LD_LIBRARY_PATH" in done.stdout


def test_main_in_process_with_selected_checks(capsys):
    code = main(["--json", "--check", "torch", "--check", "source-tree"])
    report = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in report["checks"]] == ["torch", "source-tree"]
    assert code == (1 if report["failed"] else 0)


def test_unknown_check_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--check", "nope"])
    assert info.value.code == 2
    with pytest.raises(ValueError, match="unknown check"):
        run_checks(only=["nope"])


def test_exit_codes_and_table_rendering(healthy_gpu_facts):
    results = [CheckResult("a", OK, "fine"), CheckResult("b", WARN, "hmm", ["seen"], ["do this"]),
               CheckResult("c", SKIP, "n/a")]
    assert exit_code(results) == 0 and exit_code(results, strict=True) == 1
    results.append(CheckResult("d", FAIL, "broken", ["evidence"], ["the fix"]))
    assert exit_code(results) == 1
    plain = render_table(results, healthy_gpu_facts, color=False)
    assert "FAILED: d" in plain and "saw: evidence" in plain and "fix: the fix" in plain and "\033[" not in plain
    colored = render_table(results, healthy_gpu_facts, color=True)
    assert "\033[31m" in colored  # fail in red
    report = to_json(results, healthy_gpu_facts, 0.5)
    assert report["failed"] == ["d"] and report["warned"] == ["b"] and not report["healthy"]


def test_a_crashing_check_is_reported_not_raised(healthy_gpu_facts, monkeypatch):
    from detectron2.doctor import runner
    from detectron2.doctor.result import Check

    def boom(facts):
        raise RuntimeError("bug")

    monkeypatch.setattr(runner, "CHECKS", (Check("boom", "a broken check", boom),))
    results = run_checks(healthy_gpu_facts)
    assert [(r.name, r.status) for r in results] == [("boom", WARN)]
    assert "RuntimeError: bug" in results[0].evidence[0]


def test_bad_status_is_rejected():
    with pytest.raises(ValueError, match="status"):
        CheckResult("x", "great", "no")
