"""Shared test settings."""

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--browser", action="store_true",
                     help="run the real-browser tests in tests/browser (make test-browser); off by default")


def pytest_ignore_collect(collection_path, config):
    """tests/browser needs Chromium and a JupyterLab server: collected only with --browser."""
    if collection_path.name == "browser" and collection_path.parent.name == "tests" and not config.getoption("--browser"):
        return True
    return None


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Unit tests use tiny tensors: a second intra-op thread gains nothing, and on a loaded 2-core
    machine its spin-waiting made the core tests ~8x slower (measured). Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
