"""A data folder's logs are rolled once their lines are a retention old, under their writers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from infra.log_files import LogFiles

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RETENTION = timedelta(minutes=5)


def test_a_log_is_rolled_once_its_lines_are_a_retention_old(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    logs = LogFiles(tmp_path)
    with log.open("ab", buffering=0) as writer:  # as a process's output is opened
        writer.write(b"first\n")
        assert logs.roll(before=START - RETENTION, now=START) == []  # first seen: lines begin
        writer.write(b"second\n")
        later = START + timedelta(minutes=4)
        assert logs.roll(before=later - RETENTION, now=later) == []  # four minutes old only

        rolled_at = START + timedelta(minutes=6)
        assert logs.roll(before=rolled_at - RETENTION, now=rolled_at) == ["worker.log"]
        assert (tmp_path / "worker.log.1").read_bytes() == b"first\nsecond\n"
        assert log.read_bytes() == b""
        writer.write(b"third\n")  # the writer appends at the file's new end
        assert log.read_bytes() == b"third\n"

        again = rolled_at + timedelta(minutes=5, seconds=1)
        assert logs.roll(before=again - RETENTION, now=again) == ["worker.log"]
        assert (tmp_path / "worker.log.1").read_bytes() == b"third\n"  # the older lines went


def test_only_logs_are_rolled(tmp_path: Path) -> None:
    (tmp_path / "events.db").write_bytes(b"data")
    logs = LogFiles(tmp_path)
    logs.roll(before=START, now=START)
    later = START + timedelta(hours=1)
    assert logs.roll(before=later, now=later) == []
    assert (tmp_path / "events.db").read_bytes() == b"data"
