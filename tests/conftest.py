"""Shared fixtures. Every test makes its own media (vidlens.testing) or uses the PyPI sample videos."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _fail_on_error_logs(caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest):
    """A test that logs at ERROR level fails unless it is marked `allow_error_logs`."""
    caplog.set_level(logging.WARNING)
    yield
    if request.node.get_closest_marker("allow_error_logs"):
        return
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    if errors:
        pytest.fail("unexpected ERROR log: " + "; ".join(f"{r.name}: {r.getMessage()}" for r in errors))


@pytest.fixture
def one_thread():
    """Tiny tensors on 2 shared cores: one intra-op thread is faster and steadier (and deterministic).
    Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    from vidlens.testing import single_thread

    with single_thread():
        yield


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_for_the_session():
    """Module-scoped fixtures (models trained once per file) run before the function-scoped `one_thread`: without
    this they trained on every core, and on 2 busy cores a GRU fixture ran past the 300 s timeout instead of ~45 s.
    Tests that need more threads set them and put them back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def _private_index_cache(tmp_path_factory: pytest.TempPathFactory):
    """Decode-order frame indexes are saved on disk (vidlens.io.index): keep the tests' in a temp folder."""
    import os

    folder = tmp_path_factory.mktemp("vidlens-cache")
    previous = os.environ.get("VIDLENS_CACHE_DIR")
    os.environ["VIDLENS_CACHE_DIR"] = str(folder)
    yield
    if previous is None:
        os.environ.pop("VIDLENS_CACHE_DIR", None)
    else:
        os.environ["VIDLENS_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("media")
