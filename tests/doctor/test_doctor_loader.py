"""Loader failures of _C: real dlopen errors from tiny gcc-built objects, and the message
of each failure class as the loader and CPython word it."""
import importlib.util
import signal
import sys

import pytest
from doctor_helpers import make_conda

from detectron2.doctor import loader
from detectron2.doctor.checks.extension import check_ext_import
from detectron2.doctor.facts import ExtInfo, probe_extension
from detectron2.doctor.result import FAIL, OK

TORCH_SYMBOL = "_ZN3c106detail23torchInternalAssertFailEPKcS2_jS2_RKSs"


def _import_so(path, name):
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_undefined_torch_symbol(compile_so):
    # A C identifier can carry a mangled C++ name: the object references c10 code that
    # no loaded library defines, exactly like an _C built against another torch.
    so = compile_so("fake_ext.so", f"void {TORCH_SYMBOL}(void);\nvoid PyInit_fake_ext(void) {{ {TORCH_SYMBOL}(); }}\n")
    with pytest.raises(ImportError) as info:
        _import_so(so, "fake_ext")
    diag = loader.classify(str(info.value))
    assert diag.cause == loader.TORCH_ABI
    assert diag.symbol == TORCH_SYMBOL


def test_real_missing_cuda_runtime(compile_so, tmp_path):
    # Link against a libcudart.so.7.0 that then disappears: the loader names the soname.
    fake = compile_so("libcudart.so.7.0", "int cudaFake(void) { return 0; }\n", "-Wl,-soname,libcudart.so.7.0")
    so = compile_so("needs_cudart.so", "int cudaFake(void);\nint use(void) { return cudaFake(); }\n", str(fake))
    fake.unlink()
    with pytest.raises(ImportError) as info:
        _import_so(so, "needs_cudart")
    diag = loader.classify(str(info.value))
    assert diag.cause == loader.CUDA_RUNTIME_MISSING
    assert diag.symbol == "libcudart.so.7.0"


def test_crash_on_import_is_reported_not_suffered(compile_so, monkeypatch):
    so = compile_so("crashy.so", "#include <signal.h>\nvoid* PyInit_crashy(void) { raise(SIGSEGV); return 0; }\n")
    monkeypatch.syspath_prepend(str(so.parent))
    so.rename(so.parent / ("crashy" + importlib.machinery.EXTENSION_SUFFIXES[0]))
    info = probe_extension("crashy")
    assert info.crashed == signal.SIGSEGV
    assert not info.loaded and "crashy" not in sys.modules


def test_probe_of_a_missing_module():
    info = probe_extension("detectron2._no_such_extension")
    assert info.path is None and not info.loaded
    assert "No module named" in info.error


MESSAGES = [
    ("/x/_C.so: undefined symbol: _ZN2at4_ops10zeros_like4callERKNS_6TensorE", loader.TORCH_ABI),
    ("/x/_C.so: undefined symbol: _ZNK3c1010TensorImpl36is_contiguous_nondefault_policy_implENS_12MemoryFormatE", loader.TORCH_ABI),
    ("/x/_C.so: undefined symbol: _ZTVN5torch8autograd12AutogradMetaE", loader.TORCH_ABI),
    ("/x/_C.so: undefined symbol: __cudaRegisterFatBinaryEnd", loader.CUDA_SYMBOL),
    ("/x/_C.so: undefined symbol: cudaLaunchKernel", loader.CUDA_SYMBOL),
    ("/x/_C.so: undefined symbol: PyUnicode_AsUTF8AndSize", loader.PYTHON_ABI),
    ("libcudart.so.11.0: cannot open shared object file: No such file or directory", loader.CUDA_RUNTIME_MISSING),
    ("libc10.so: cannot open shared object file: No such file or directory", loader.TORCH_LIB_MISSING),
    ("libtorch_cuda.so: cannot open shared object file: No such file or directory", loader.TORCH_LIB_MISSING),
    ("/lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.30' not found (required by /x/_C.so)", loader.GLIBCXX),
    ("/lib64/libstdc++.so.6: version `CXXABI_1.3.13' not found (required by /x/_C.so)", loader.GLIBCXX),
    ("/lib64/libc.so.6: version `GLIBC_2.34' not found (required by /x/_C.so)", loader.GLIBC),
    ("libfoo.so.3: cannot open shared object file: No such file or directory", loader.LIB_MISSING),
    ("/x/_C.so: undefined symbol: _ZN5boost6system15system_categoryEv", loader.UNKNOWN),
    ("something else entirely", loader.UNKNOWN),
]


@pytest.mark.parametrize("message, cause", MESSAGES)
def test_classify_messages(message, cause):
    assert loader.classify(message).cause == cause


def test_cannot_import_name_depends_on_where_detectron2_lives():
    message = "cannot import name '_C' from 'detectron2' (/home/me/detectron2/detectron2/__init__.py)"
    assert loader.classify(message, source_checkout=True).cause == loader.SOURCE_TREE
    assert loader.classify(message, source_checkout=False).cause == loader.NOT_BUILT
    assert loader.classify("No module named 'detectron2._C'", source_checkout=True).cause == loader.SOURCE_TREE


@pytest.mark.parametrize("message, cause", MESSAGES[:13])
def test_ext_import_check_fires_with_a_fix(healthy_gpu_facts, message, cause):
    facts = healthy_gpu_facts
    assert check_ext_import(facts).status == OK
    facts.ext = ExtInfo(path=facts.ext.path, loaded=False, error=f"ImportError: {message}")
    result = check_ext_import(facts)
    assert result.status == FAIL
    assert result.fix, "every loader failure comes with a fix"
    assert any(message in e for e in result.evidence)


def test_ext_import_fix_for_pip(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.ext = ExtInfo(path=None, loaded=False, error=f"ImportError: /x/_C.so: undefined symbol: {TORCH_SYMBOL}")
    fix = check_ext_import(facts).fix
    assert any("pip install --no-build-isolation" in line and "detectron2==0.7.0" in line for line in fix)


def test_ext_import_fix_for_conda(env_dirs, healthy_gpu_facts):
    make_conda(env_dirs["prefix"], "pytorch-2.0.1-py3.11_cuda11.7_cudnn8.5.0_0", "pytorch-mutex-1.0-cuda")
    facts = healthy_gpu_facts
    facts.torch.installer = "conda"
    facts.ext = ExtInfo(path=None, loaded=False, error=f"ImportError: /x/_C.so: undefined symbol: {TORCH_SYMBOL}")
    fix = check_ext_import(facts).fix
    assert fix[0].startswith(("conda install", "mamba install"))
    for word in ("-c detectron2-neo", "-c pytorch", "-c nvidia", "detectron2=0.7.0", "pytorch=2.0.1", "pytorch-cuda=11.7"):
        assert word in fix[0]


def test_crash_result(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.ext = ExtInfo(path="/x/_C.so", loaded=False, crashed=11, error="importing detectron2._C killed the interpreter")
    result = check_ext_import(facts)
    assert result.status == FAIL and "crashes" in result.summary
