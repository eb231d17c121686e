import re

from detectron2.layers._ops import load_C


def test_build_facts_are_reported():
    C = load_C()
    assert re.match(r"^(GCC|clang|MSVC) \d", C.get_compiler_version())
    assert isinstance(C.has_cuda(), bool)
    cuda = C.get_cuda_version()
    if C.has_cuda():
        assert re.match(r"^\d+\.\d+$", cuda)
    else:
        assert cuda == "not available"
