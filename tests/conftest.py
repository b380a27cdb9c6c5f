"""Shared fixtures. Tests build what they need in ``tmp_path`` from scikit-image's bundled photos."""
import logging
import numpy as np
import os
import pytest
import torch

import msrn_plugin  # noqa: F401  (compatibility layer and registration before anything imports basicsr)
from msrn_plugin.utils.photos import load_photo

# 2 cores: keep torch from oversubscribing when tests spawn worker processes.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope='session')
def photo_bgr() -> np.ndarray:
    """A real 512x512 colour photo (astronaut), BGR uint8."""
    return load_photo('astronaut.png')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny models train faster, and far faster when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def basicsr_log():
    """Messages of BasicSR's logger (it does not propagate, and writes a log file only in a process's first run)."""
    records, logger = [], logging.getLogger('basicsr')
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)
