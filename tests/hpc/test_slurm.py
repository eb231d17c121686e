"""The SLURM job scripts, run without SLURM: fake sbatch variables, fake srun/scontrol/
module on PATH, and a fake training command that records the arguments it gets."""
import os
import pathlib
import re
import subprocess
import textwrap

import pytest

SLURM_DIR = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "hpc" / "slurm"
SINGLE = SLURM_DIR / "train_single_node.sbatch"
MULTI = SLURM_DIR / "train_multi_node.sbatch"

FAKES = {
    # srun: drop its options, then run the command once per node, as SLURM would on
    # each node, with that node's SLURM_NODEID.
    "srun": """
        echo "srun $*" >> "$FAKE_LOG.calls"
        while [[ $# -gt 0 && "$1" == -* ]]; do shift; done
        for ((i = 0; i < SLURM_NNODES; i++)); do SLURM_NODEID=$i SLURM_PROCID=$i "$@" || exit $?; done
    """,
    "scontrol": """
        echo "scontrol $*" >> "$FAKE_LOG.calls"
        [[ "$1 $2" == "show hostnames" ]] || exit 1
        # A pause between lines, as a long host list written in parts: the job
        # script must read past the first line (head -n 1 would SIGPIPE it).
        for h in $FAKE_HOSTS; do echo "$h"; sleep "${FAKE_SCONTROL_PAUSE:-0}"; done
    """,
    "module": """
        echo "module $*" >> "$FAKE_LOG.calls"
    """,
    # The training command: one record per call, an argument per line.
    "fake_train": """
        printf '%s\\n' "=== node=${SLURM_NODEID:-none}" "$@" >> "$FAKE_LOG"
    """,
}


@pytest.fixture
def fake_env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        path = bin_dir / name
        path.write_text("#!/bin/bash\n" + textwrap.dedent(body))
        path.chmod(0o755)
    log = tmp_path / "train.log"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "FAKE_LOG": str(log),
        "D2_TRAIN_CMD": "fake_train",
    }
    return env, log


def _run(script, env, args=()):
    return subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=60)


def _launches(log):
    """[(node, [args...]), ...] recorded by fake_train."""
    calls = []
    for line in log.read_text().splitlines():
        m = re.fullmatch(r"=== node=(\S+)", line)
        if m:
            calls.append((m.group(1), []))
        else:
            calls[-1][1].append(line)
    return calls


USER_ARGS = ["--config-file", "configs/my cfg.yaml", "--resume", "SOLVER.BASE_LR", "0.01"]


@pytest.mark.parametrize("script", [SINGLE, MULTI])
def test_scripts_parse_and_request_one_task_per_node(script):
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --ntasks-per-node=1" in text
    assert re.search(r"^#SBATCH --gpus-per-node=\d+$", text, re.M)


def test_single_node(fake_env):
    env, log = fake_env
    env.update(SLURM_JOB_ID="123456", SLURM_GPUS_ON_NODE="4", SLURM_JOB_NODELIST="gpu01", SLURM_NNODES="1")
    res = _run(SINGLE, env, USER_ARGS)
    assert res.returncode == 0, res.stderr
    port = 15000 + 123456 % 20000
    assert _launches(log) == [
        (
            "none",
            ["--num-gpus", "4", "--num-machines", "1", "--machine-rank", "0", "--dist-url", f"tcp://127.0.0.1:{port}"]
            + USER_ARGS,
        )
    ]


def test_single_node_gpu_count_forms_and_cpu_fallback(fake_env):
    env, log = fake_env
    env.update(SLURM_JOB_ID="7", SLURM_GPUS_PER_NODE="a100:2")
    assert _run(SINGLE, env).returncode == 0
    env.pop("SLURM_GPUS_PER_NODE")
    env["D2_PROCS_PER_NODE"] = "3"  # a CPU job: 3 gloo processes
    assert _run(SINGLE, env).returncode == 0
    env.pop("D2_PROCS_PER_NODE")  # no GPUs, nothing said: one process
    assert _run(SINGLE, env).returncode == 0
    assert [args[1] for _, args in _launches(log)] == ["2", "3", "1"]
    env["SLURM_GPUS_ON_NODE"] = "many"
    res = _run(SINGLE, env)
    assert res.returncode != 0 and "cannot read a GPU count" in res.stderr


def test_outside_slurm_is_refused(fake_env):
    env, log = fake_env
    for script in (SINGLE, MULTI):
        res = _run(script, env)
        assert res.returncode != 0
        assert "not inside a SLURM job" in res.stderr
    assert not log.exists()


def test_module_is_loaded(fake_env):
    env, log = fake_env
    env.update(SLURM_JOB_ID="1", SLURM_GPUS_ON_NODE="1", D2_MODULE="detectron2/0.7.0-cu117")
    assert _run(SINGLE, env).returncode == 0
    assert "module load detectron2/0.7.0-cu117" in pathlib.Path(str(log) + ".calls").read_text()


def test_multi_node(fake_env):
    env, log = fake_env
    env.update(
        SLURM_JOB_ID="987654",
        SLURM_JOB_NODELIST="gpu[07-09]",
        SLURM_NNODES="3",
        SLURM_GPUS_ON_NODE="8",
        FAKE_HOSTS="gpu07 gpu08 gpu09",
        FAKE_SCONTROL_PAUSE="0.2",
    )
    res = _run(MULTI, env, USER_ARGS)
    assert res.returncode == 0, res.stderr
    url = f"tcp://gpu07:{15000 + 987654 % 20000}"
    assert _launches(log) == [
        (str(rank), ["--num-gpus", "8", "--num-machines", "3", "--machine-rank", str(rank), "--dist-url", url] + USER_ARGS)
        for rank in range(3)
    ]
    calls = pathlib.Path(str(log) + ".calls").read_text()
    assert "scontrol show hostnames gpu[07-09]" in calls
    assert re.search(r"^srun --nodes=3 --ntasks=3 --ntasks-per-node=1 ", calls, re.M)


def test_multi_node_needs_a_nodelist(fake_env):
    env, log = fake_env
    env.update(SLURM_JOB_ID="5", SLURM_NNODES="2")
    res = _run(MULTI, env)
    assert res.returncode != 0 and "SLURM_JOB_NODELIST" in res.stderr
    env.update(SLURM_JOB_NODELIST="gpu[01-02]", FAKE_HOSTS="")
    res = _run(MULTI, env)
    assert res.returncode != 0 and "no host found" in res.stderr
