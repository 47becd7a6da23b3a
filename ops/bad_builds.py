"""Broken builds of the saga, made on purpose, to show that a rollout catches them.

Each is a copy of this checkout with one bug put in, run as a version of its own (a
`BUILD_LABEL` names it): its worker is `python <copy>/worker.py`, which imports the copy's
packages, since a script's folder comes first on `sys.path`. The two kinds are production's two
ways for a build to hurt orders in flight:

- `raises`: its workflow code raises at a step, so its sagas stop there in a loop of failed
  workflow tasks ("Running", going nowhere);
- `wrong-request`: its adapter sends a request the service cannot take (a path it does not
  serve), so the step is retried until its attempts run out, and then undone.

Used by the bad-build drill (tests) and by `order-saga chaos --bad-deploys`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import ops

#: This checkout: the folder holding `ops/`, `worker.py` and the rest.
ROOT = Path(ops.__file__).resolve().parent.parent


def _tree() -> tuple[str, ...]:
    """What a copy holds: everything a worker, the services, the commands and the tests run from.

    The packages and modules the project installs (its pyproject says which), the tests and the
    pyproject itself.
    """
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = [pattern.removesuffix("*") for pattern in setuptools["packages"]["find"]["include"]]
    modules = [f"{module}.py" for module in setuptools["py-modules"]]
    return (*packages, *modules, "tests", "pyproject.toml")


def copy_checkout(dest: Path) -> Path:
    """Copy what runs of this checkout to `dest`; return `dest`."""
    for name in _tree():
        source = ROOT / name
        if source.is_dir():
            ignored = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".hypothesis")
            shutil.copytree(source, dest / name, ignore=ignored)
        else:
            shutil.copy2(source, dest / name)
    return dest


class BadBuild(StrEnum):
    """The ways a build breaks the sagas it runs."""

    RAISES = "raises"
    WRONG_REQUEST = "wrong-request"


@dataclass(frozen=True)
class _Bug:
    """`before` in `path` becomes `after`."""

    path: str
    before: str
    after: str


#: The step the bugs hit: the third, so each bad saga has steps to keep or undo.
BROKEN_STEP = "schedule_shipment"

_BUGS = {
    BadBuild.RAISES: _Bug(
        "workflows/order_saga.py",
        "        policy = self._order.policy.for_step(step.name)\n",
        f"        if step.name == {BROKEN_STEP!r}:\n"
        "            raise RuntimeError('this build cannot run its shipping step')\n"
        "        policy = self._order.policy.for_step(step.name)\n",
    ),
    BadBuild.WRONG_REQUEST: _Bug(
        "activities/shipping.py", 'post("/shipments",', 'post("/shipment",'
    ),
}


def bad_build(kind: BadBuild, dest: Path) -> Path:
    """Copy this checkout to `dest` with the bug of `kind` in; return `dest`.

    Raises:
        LookupError: The code the bug goes into has changed: update `_BUGS`.
    """
    bug = _BUGS[kind]
    target = copy_checkout(dest) / bug.path
    source = target.read_text()
    if source.count(bug.before) != 1:
        raise LookupError(f"{bug.path} no longer has {bug.before.strip()!r} once: update _BUGS")
    target.write_text(source.replace(bug.before, bug.after))
    return dest


def build_id_of(copy: Path) -> str:
    """The build id of the saga code in `copy` (asked of the copy: its code, not this one's)."""
    asked = subprocess.run(
        [sys.executable, "-c", "from infra.deployment import build_id; print(build_id())"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=True,
    )
    return asked.stdout.strip()
