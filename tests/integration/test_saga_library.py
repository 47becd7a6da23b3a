"""The Saga helper is a library of its own: installed by path into a fresh virtualenv outside
the repository, its trip-booking example runs on the time-skipping server, and nothing of the
order app comes with it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from infra.devserver import installed_binary
from tests.support.paths import ROOT

HELPER = ROOT / "temporal-saga-helper"


def test_the_helper_installs_alone_and_its_example_saga_runs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # From a copy: pip builds in the source folder, and the checkout stays as it is.
    source = shutil.copytree(HELPER, tmp_path / "temporal-saga-helper")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    example = shutil.copy(HELPER / "examples" / "trip.py", tmp_path / "trip.py")

    run = subprocess.run(
        [python, example, installed_binary("temporal-test-server")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip

    assert run.returncode == 0, run.stderr[-2000:]
    # The car is refused: its booking drops its own undo; the hotel and flight are undone.
    assert run.stdout.splitlines()[-1] == (
        "booked flight; booked hotel; cancelled hotel; cancelled flight"
    )
    for app_module in ("ordersaga", "workflows", "activities", "ports", "services"):
        found = subprocess.run(
            [python, "-c", f"import {app_module}"], capture_output=True, cwd=tmp_path, timeout=60
        )
        assert found.returncode != 0, f"{app_module} is importable beside the helper"
