"""The log files in a data folder, rolled as its retention says.

The demo and the stacks start each process with its output appended to `<data dir>/<part>.log`.
Such a file is rolled, copied then truncated, once its lines began a retention ago: they go to
`<part>.log.1`, replacing the lines rolled before, and the writers' next lines start the file
again (each appends, so it writes at the file's new end). A log keeps between one and two
retentions of lines. Copy-then-truncate is how a file is rolled under writers that hold it open
(logrotate's `copytruncate`); a line written between the copy and the truncation is lost.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

#: The name a log's rolled lines take: `<part>.log.1`.
ROLLED_SUFFIX = ".1"


class LogFiles:
    """The `*.log` files of one folder, each rolled once its lines are a retention old."""

    def __init__(self, folder: Path) -> None:
        """Look after the logs in `folder`.

        Args:
            folder: The data folder the processes write their logs into.
        """
        self._folder = folder
        # When the lines of each log began: when it was last rolled, or first seen here (a log
        # written before this process started counts from then).
        self._began: dict[Path, datetime] = {}

    def roll(self, before: datetime, now: datetime) -> list[str]:
        """Roll each log whose lines began before `before`; return the names of those rolled.

        Args:
            before: Lines older than this are past the retention.
            now: The time now, when the lines of a log rolled now begin.
        """
        rolled = []
        for log in sorted(self._folder.glob("*.log")):
            began = self._began.setdefault(log, now)
            if began < before:
                _copy_then_truncate(log)
                self._began[log] = now
                rolled.append(log.name)
        return rolled


def _copy_then_truncate(log: Path) -> None:
    with log.open("rb") as lines, log.with_name(log.name + ROLLED_SUFFIX).open("wb") as copy:
        shutil.copyfileobj(lines, copy)
        os.truncate(log, 0)
