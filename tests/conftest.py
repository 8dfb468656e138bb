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


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("media")
