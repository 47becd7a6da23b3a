"""A worker caches its workflows' bytecode, so the sandbox does not compile them for every run."""

from __future__ import annotations

import importlib.util
import os

import pytest

import worker


def test_stale_or_missing_workflow_bytecode_is_written_at_worker_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in the Docker image: Python itself writes no bytecode.
    monkeypatch.setattr("sys.dont_write_bytecode", True)
    sources = sorted(worker.WORKFLOWS_DIR.glob("*.py"))
    cached = [importlib.util.cache_from_source(str(source)) for source in sources]
    for pyc in cached:
        if os.path.exists(pyc):
            os.remove(pyc)

    worker.cache_workflow_bytecode()

    for source, pyc in zip(sources, cached, strict=True):
        assert os.path.getmtime(pyc) >= os.path.getmtime(source), pyc
