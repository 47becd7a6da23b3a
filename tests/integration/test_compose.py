"""`docker-compose.temporal.yml`: valid for a real compose implementation, and what it runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from typing import Any

import pytest
import yaml

from tests.support.paths import ROOT
from workflows.search_attributes import SEARCH_ATTRIBUTES

COMPOSE_FILE = ROOT / "docker-compose.temporal.yml"
#: Services that run on and on (the others are one-shot setup jobs).
LONG_RUNNING = {
    "postgresql", "temporal", "temporal-ui", "services", "worker", "codec-server",
    "prometheus", "grafana",
}  # fmt: skip
SETUP_JOBS = {"temporal-admin-tools", "temporal-create-namespace", "make-current"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (.ci/run installs Debian's)",
)
def test_valid_for_docker_compose() -> None:
    for profile in ([], ["--profile", "observability"]):
        listed = subprocess.run(
            ["docker-compose", "-f", str(COMPOSE_FILE), *profile, "config", "--services"],
            capture_output=True, text=True, check=True, timeout=60, cwd=ROOT,
        ).stdout.split()  # fmt: skip
        # docker-compose 1.29 lists profiled services too; it validates them either way.
        assert set(listed) >= (LONG_RUNNING | SETUP_JOBS) - {"prometheus", "grafana"}


def test_every_service_is_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == LONG_RUNNING | SETUP_JOBS
    for optional in ("prometheus", "grafana"):
        assert compose["services"][optional]["profiles"] == ["observability"]


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", dockerfile, re.MULTILINE)


def test_the_image_holds_every_package_and_the_extras_its_commands_need() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    packages = [name.rstrip("*") for name in setuptools["packages"]["find"]["include"]]
    modules = [f"{name}.py" for name in setuptools["py-modules"]]
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert re.search(r"^COPY \. \.$", dockerfile, re.MULTILINE)
    left_out = [name for name in [*packages, *modules] if name in ignored]
    assert left_out == [], f".dockerignore leaves out {left_out}, which the image installs"
    install = re.search(r"pip install (\./temporal-saga-helper) '\.\[([\w,-]+)\]'", dockerfile)
    assert install, "the Dockerfile installs no extras, or not the saga helper beside the app"
    assert "temporal-saga-helper" not in ignored
    # The services and the codec server run as `order-saga ...`, whose command table imports rich.
    assert {"services", "dashboard"} <= set(install.group(2).split(","))


def test_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
    order = {
        "temporal-admin-tools": {"postgresql": "service_healthy"},
        "temporal": {"temporal-admin-tools": "service_completed_successfully"},
        "temporal-create-namespace": {"temporal": "service_healthy"},
        "temporal-ui": {"temporal": "service_healthy"},
        "worker": {
            "temporal-create-namespace": "service_completed_successfully",
            "services": "service_healthy",
        },
        "make-current": {"worker": "service_healthy"},
    }
    for name, wanted in order.items():
        conditions = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert conditions == wanted, name


def test_setup_creates_the_search_attributes(compose: dict[str, Any]) -> None:
    pairs = compose["services"]["temporal-create-namespace"]["environment"]["SEARCH_ATTRIBUTES"]
    assert dict(pair.split("=") for pair in pairs.split()) == SEARCH_ATTRIBUTES
    script = (ROOT / "deploy/temporal/create-namespace.sh").read_text()
    assert "search-attribute create" in script


def test_worker_configuration(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["build"] == "."
    assert worker["command"] == ["order-saga-worker"]
    env = worker["environment"]
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["TEMPORAL_NAMESPACE"] == "default"
    assert env["TASK_QUEUE"] == "order-saga"
    assert env["SERVICES_URL"] == "http://services:8300"
    assert env["CODEC_KEY_FILE"] == "/run/secrets/codec_keys"
    assert "codec_keys" in worker["secrets"]
    # Scaled with --scale worker=N: no fixed name or host port may clash between replicas.
    assert "container_name" not in worker and "ports" not in worker
    # The codec keys come from a file the operator makes, never from the repository.
    assert not (ROOT / compose["secrets"]["codec_keys"]["file"]).exists() or (
        "secrets/" in (ROOT / ".gitignore").read_text()
    )
