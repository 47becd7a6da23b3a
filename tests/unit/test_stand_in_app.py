"""The stand-ins' app finds each port's stand-in by its name, and says when one is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import app
from workflows.order_steps import SERVICES


def test_each_service_the_steps_call_is_mounted_under_its_name(tmp_path: Path) -> None:
    mounted = {getattr(route, "path", None) for route in app.create_app(tmp_path).routes}

    assert {f"/{name}" for name in SERVICES} <= mounted


def test_a_port_without_a_stand_in_is_named_with_the_file_to_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "SERVICES", (*SERVICES, "loyalty"))

    with pytest.raises(
        LookupError, match=r"port 'loyalty' has no stand-in service: add services/loyalty\.py"
    ):
        app.create_app(tmp_path)
