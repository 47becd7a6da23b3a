"""The architecture's import contracts hold, and each one breaks when its rule is broken."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

#: The packages the contracts name, and the file that states them.
CHECKED = (
    "domain",
    "ports",
    "workflows",
    "activities",
    "services",
    "ordersaga",
    "infra",
    "ops",
    "peer",
)


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` run in `tree`, whose packages it reads."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        # Its own folder first on the path: the copy's packages, not the installed checkout's.
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the checked packages and the contracts."""
    for package in CHECKED:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def plant(tree: Path, module: str, line: str) -> None:
    """Add `line` to the end of `module` (a path in `tree`)."""
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("plants", "broken"),
    [
        (
            [("workflows/order_failures.py", "import activities.http")],
            "The workflows import no adapter, stand-in, platform or application BROKEN",
        ),
        (
            [("infra/sqlite.py", "import services.effects")],
            "Production code never imports the stand-in services BROKEN",
        ),
        (
            [("peer/shared.py", "import domain.ids")],
            "The peer saga, bench's yardstick, shares no code with the saga BROKEN",
        ),
        (
            [("ports/contract.py", "import workflows.order_failures")],
            "Layers: each imports only those below it, so no two packages import each other BROKEN",
        ),
        (
            [("infra/sqlite.py", "import ordersaga.placing")],
            "The platform imports nothing of the order application BROKEN",
        ),
        (
            [("domain/money.py", "import temporalio.common")],
            "The domain is plain Python and pydantic: it imports no Temporal BROKEN",
        ),
        (
            [("domain/ids.py", "import domain.saga"), ("domain/saga.py", "import domain.ids")],
            "No cycles among the modules of a package BROKEN",
        ),
    ],
    ids=[
        "workflow-imports-adapter",
        "production-imports-stand-in",
        "peer-imports-saga",
        "upward-import",
        "platform-imports-application",
        "domain-imports-temporal",
        "cycle",
    ],
)
def test_a_broken_rule_breaks_its_contract(
    tree: Path, plants: list[tuple[str, str]], broken: str
) -> None:
    for module, line in plants:
        plant(tree, module, line)

    result = lint_imports(tree)

    assert result.returncode == 1
    assert broken in result.stdout
