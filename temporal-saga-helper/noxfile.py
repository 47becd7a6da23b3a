"""The helper's checks, each in a fresh virtualenv; `nox` (in this folder) runs them all.

- `tests`: the tests on the oldest temporalio release of the range, one in the middle and the
  newest tested;
- `release`: the sdist and the wheel built and checked, the wheel installed where its examples
  run;
- `docs`: the API reference, from the docstrings.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "release", "docs"]

#: The oldest release the range admits, one in the middle, and the newest tested.
TEMPORALIO = ["1.4.0", "1.20.0", "1.35.0"]

HERE = Path(__file__).parent
DIST = HERE / "dist"


@nox.session
@nox.parametrize("temporalio", TEMPORALIO)
def tests(session: nox.Session, temporalio: str) -> None:
    """The tests, on one temporalio release."""
    session.install(".[test]", f"temporalio=={temporalio}")
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests")


@nox.session
def release(session: nox.Session) -> None:
    """Build the sdist and the wheel, check them, and run the examples on the installed wheel."""
    session.install("build>=1.2,<2", "twine>=6.1,<8")
    shutil.rmtree(DIST, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(DIST))
    built = sorted(str(path) for path in DIST.iterdir())
    session.run("twine", "check", "--strict", *built)
    (wheel,) = DIST.glob("*.whl")
    # The helper alone: nothing of the order app it comes from is in the wheel.
    names = zipfile.ZipFile(wheel).namelist()
    stray = [name for name in names if not name.startswith(("temporal_saga/", "temporal_saga_"))]
    if stray:
        session.error(f"the wheel carries more than the helper: {stray}")
    session.install(f"{wheel}[test]")
    # The examples must import the wheel's code, not this folder's.
    session.run(
        "python",
        "-c",
        "import temporal_saga as t; assert 'site-packages' in t.__file__, t.__file__; "
        "print('installed', t.__version__, 'from', t.__file__)",
    )
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/test_examples.py")


@nox.session
def docs(session: nox.Session) -> None:
    """The API reference, generated from the docstrings into build/docs."""
    session.install(".", "pdoc>=15,<17")
    session.run("pdoc", "temporal_saga", "--docformat", "google", "-o", "build/docs")
