import logging

import pytest
import torch

CUDA_AVAILABLE = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    # Only GPU tests may skip, and only on a machine without a GPU.
    if CUDA_AVAILABLE:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible to torch)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    """Runs a test once per device: CPU always, CUDA where a GPU exists."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _restore_library_loggers():
    """setup_logger (called by default_setup, DefaultTrainer, the demo) gives the
    "detectron2"/"fvcore" loggers their own handlers and turns propagation off, as
    upstream does; undo it after each test so that a later test's caplog still sees
    their records whatever order the tests run in."""
    saved = {}
    for name in ("detectron2", "fvcore"):
        logger = logging.getLogger(name)
        saved[name] = (logger.level, logger.propagate, list(logger.handlers))
    yield
    for name, (level, propagate, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers
