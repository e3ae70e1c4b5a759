"""docker-compose.yml and the Dockerfile name only things the installed project provides."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _module_resolves(module: str) -> bool:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        return importlib.util.find_spec(module) is not None
    finally:
        sys.path.remove(str(ROOT / "examples"))


def test_services_are_redis_coordinator_and_three_workers() -> None:
    """The compose file runs the official Redis 7 image, the coordinator and 3 worker replicas."""
    assert set(SERVICES) == {"redis", "coordinator", "worker"}
    assert SERVICES["redis"]["image"].startswith("redis:7")
    assert SERVICES["worker"]["deploy"]["replicas"] == 3
    assert SERVICES["coordinator"]["command"] == ["coordinator", "serve"]


@pytest.mark.parametrize("service", ["coordinator", "worker"])
def test_service_builds_from_the_repository_dockerfile(service: str) -> None:
    """Each project service builds from the Dockerfile at the repository root."""
    assert SERVICES[service]["build"] == "."
    assert (ROOT / "Dockerfile").is_file()


@pytest.mark.parametrize("service", ["coordinator", "worker"])
def test_service_points_at_the_redis_service(service: str) -> None:
    """Each project service reaches Redis through DIAGNOSE_REDIS_URL on the redis service."""
    assert SERVICES[service]["environment"]["DIAGNOSE_REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("service", ["coordinator", "worker"])
def test_service_command_exists_in_the_installed_project(service: str) -> None:
    """The program each service runs is a console script or a module that resolves."""
    command = SERVICES[service]["command"]
    if command[0] == "coordinator":
        assert shutil.which("coordinator", path=str(Path(sys.executable).parent))
        from coordinator.cli import cli

        assert command[1] in cli.commands
    else:
        assert command[:2] == ["python", "-m"]
        assert _module_resolves(command[2])


def test_dockerfile_puts_the_example_app_on_the_path() -> None:
    """The image copies examples/ and puts it on PYTHONPATH so `python -m shop.worker` runs."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY examples" in dockerfile
    assert "PYTHONPATH=/app/examples" in dockerfile
