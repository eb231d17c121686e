"""The live self-test: its comparison logic on CPU, and the real run on each GPU."""
import pytest
import torch

from detectron2.doctor.checks import selftest
from detectron2.doctor.checks.selftest import OPS, OpSpec, check_selftest
from detectron2.doctor.facts import Facts
from detectron2.doctor.result import FAIL, OK, SKIP


def test_no_gpu_skips(healthy_cpu_facts):
    assert [(r.name, r.status) for r in check_selftest(healthy_cpu_facts)] == [("selftest", SKIP)]


def test_missing_op_is_reported_as_not_built(healthy_gpu_facts):
    spec = OpSpec("ghost", ("detectron2.layers:no_such_op", "no_such_module:op"), lambda op, device: None)
    result = selftest._one(spec, healthy_gpu_facts, ["cpu"])
    assert result.status == SKIP and result.summary == "op not built"


def test_matching_and_mismatching_results(healthy_gpu_facts):
    # The comparison machinery, with a stand-in device name where a GPU would be.
    same = OpSpec("same", ("torch:add",), lambda op, device: op(torch.ones(3), 1))
    assert selftest._one(same, healthy_gpu_facts, ["stand-in"]).status == OK

    drift = OpSpec("drift", ("torch:add",), lambda op, device: torch.ones(3) * (1.0 if device == "cpu" else 1.01))
    result = selftest._one(drift, healthy_gpu_facts, ["stand-in"])
    assert result.status == FAIL and "max abs difference" in result.evidence[0]

    def raising(op, device):
        if device != "cpu":
            raise RuntimeError("CUDA error: no kernel image is available for execution on the device")
        return torch.ones(1)

    result = selftest._one(OpSpec("raises", ("torch:add",), raising), healthy_gpu_facts, ["stand-in"])
    assert result.status == FAIL and "no kernel image" in result.evidence[0]
    assert result.fix


def test_no_cpu_reference_is_a_skip(healthy_gpu_facts):
    def cuda_only(op, device):
        raise NotImplementedError("Deformable Conv is not supported on CPUs!")

    assert selftest._one(OpSpec("cuda_only", ("torch:add",), cuda_only), healthy_gpu_facts, ["stand-in"]).status == SKIP


def test_exact_outputs_must_be_equal(healthy_gpu_facts):
    spec = OpSpec("order", ("torch:add",), lambda op, device: torch.tensor([0, 1, 2] if device == "cpu" else [0, 2, 1]),
                  exact=True)
    assert selftest._one(spec, healthy_gpu_facts, ["stand-in"]).status == FAIL


def test_every_op_names_a_public_path():
    for spec in OPS:
        assert all(t.startswith("detectron2.layers") and ":" in t for t in spec.targets)


@pytest.mark.cuda
def test_selftest_on_this_gpu():
    results = check_selftest(Facts())
    assert results and all(r.status in (OK, SKIP) for r in results), [(r.name, r.status, r.evidence) for r in results]
    ran = [r for r in results if r.status == OK]
    assert all(f"{torch.cuda.device_count()} GPU" in r.summary for r in ran)


@pytest.mark.cuda
def test_gpu_facts_agree_with_torch():
    facts = Facts()
    assert len(facts.gpus) == torch.cuda.device_count()
    for gpu in facts.gpus:
        assert gpu.capability == torch.cuda.get_device_capability(gpu.index)
    assert facts.driver.version and facts.driver.cuda_version
    from detectron2.doctor.runner import run_checks

    statuses = {r.name: r.status for r in run_checks(facts, selftest=False)}
    assert statuses["driver"] in (OK, "warn") and statuses["torch-arch"] == OK
