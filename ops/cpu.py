"""CPU time (and memory) of each group of processes of a load run, from the OS's accounting.

A run's cost is read, not estimated: the user + system seconds the kernel charged to each
process between two readings, through psutil.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import psutil


class Group(StrEnum):
    """The parts of a run whose CPU is counted apart."""

    SERVER = "server"
    WORKERS = "workers"
    SERVICES = "services"
    API = "api"
    CONSUMERS = "consumers"
    LOAD = "load"


#: The pids of each group, asked again at each reading (workers come and go).
Pids = Mapping[Group, Callable[[], Iterable[int]]]


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of these processes so far (not of their children).

    A process that has ended counts nothing: read before stopping what you measure.
    """
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident memory of these processes now, in bytes (a process that has ended counts 0)."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds of each group at one moment."""

    seconds: Mapping[Group, float]

    @classmethod
    def now(cls, pids: Pids) -> CpuReading:
        """Read every group's processes."""
        return cls({group: cpu_seconds(of()) for group, of in pids.items()})

    def spent_since(self, earlier: CpuReading) -> dict[str, float]:
        """CPU seconds each group spent between `earlier` and this reading."""
        return {
            group.value: seconds - earlier.seconds[group] for group, seconds in self.seconds.items()
        }
