"""Shared test settings."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Unit tests use tiny tensors: a second intra-op thread gains nothing, and on a loaded 2-core
    machine its spin-waiting made the core tests ~8x slower (measured). Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
