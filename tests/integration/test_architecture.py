"""The architecture's import contracts hold, and each one breaks when its rule is broken."""

from __future__ import annotations

import ast
import re
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
            [("infra/sqlite.py", "import ordersaga.order_desk")],
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


# --- Follow one order: the path docs/code.md lists ------------------------------------------

#: What the path's modules share that is data, not a step of the path (docs/code.md says so).
VOCABULARY = ("domain", "ports", "workflows.order_failures", "workflows.search_attributes")

#: The modules whose project imports must all be on the path or in the vocabulary: the saga's
#: code and the adapter's, where a helper added between two steps would lengthen every order's path.
CLOSED = (
    "workflows/order_saga.py",
    "workflows/order_steps.py",
    "workflows/order_record.py",
    "activities/inventory.py",
    "activities/http.py",
)


def documented_path() -> list[list[str]]:
    """The path in docs/code.md: per step, its module and any alternative (`or ...`)."""
    text = (ROOT / "docs" / "code.md").read_text()
    listed = text.split("<!-- one-order-path -->")[1].split("<!-- /one-order-path -->")[0]
    steps = re.findall(r"^\d+\. (.*(?:\n   .*)*)", listed, re.MULTILINE)
    return [re.findall(r"`([\w/]+\.py)`", step.split(":")[0]) for step in steps]


def module_name(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def project_imports(path: str) -> set[str]:
    """The project's modules `path` imports, packages' re-exports followed to their module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                found.add(resolve(node.module, alias.name))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in CHECKED}


def resolve(module: str, name: str) -> str:
    """`from module import name`: the submodule `name`, or the module defining a re-export."""
    package = ROOT / module.replace(".", "/")
    if (package / f"{name}.py").exists():
        return f"{module}.{name}"
    if (package / "__init__.py").exists():
        for node in ast.parse((package / "__init__.py").read_text()).body:
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and name in {alias.name for alias in node.names}
            ):
                return node.module
    return module


def on_vocabulary(name: str) -> bool:
    return any(name == word or name.startswith(f"{word}.") for word in VOCABULARY)


def test_one_order_passes_through_at_most_eight_modules_each_reached_from_the_one_before() -> None:
    path = documented_path()
    entries, *rest = path
    modules = [module_name(step[0]) for step in rest]
    registered = project_imports("worker.py")

    assert len(path) <= 8, path
    assert entries == ["starter.py", "ordersaga/api/app.py"]
    for entry in entries:
        assert modules[0] in project_imports(entry), entry
    for index, step in enumerate(rest[1:], start=1):
        earlier = set().union(
            *(project_imports(f"{m.replace('.', '/')}.py") for m in modules[:index])
        )
        # Reached by an import of a module before it, or (the adapter, the interceptor) by the
        # worker's registration, which the saga's activity calls reach.
        assert modules[index] in earlier | registered, step


def test_the_saga_and_the_adapter_import_nothing_of_the_project_off_the_path() -> None:
    on_path = {module_name(step[0]) for step in documented_path()}

    for path in CLOSED:
        off = {
            name
            for name in project_imports(path)
            if name not in on_path and not on_vocabulary(name)
        }
        assert not off, f"{path} imports {sorted(off)}, neither on the order's path nor vocabulary"
