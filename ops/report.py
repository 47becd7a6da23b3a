"""Figures of a load run (throughput, latency percentiles), as a table and as a PNG chart."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ops.cpu import Group
from ops.load import Sample


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` (0..1) percentile of `values`, by linear interpolation between ranks."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = share * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def run_figures(
    samples: Sequence[Sample], states: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """The figures of one run, JSON-ready.

    Args:
        samples: Every item of the run.
        states: Final saga states, counted (from `final_states`); None for the baseline.

    Returns:
        `orders`, `duration_s` (first start to last end), `orders_per_s`, `latency_ms` (p50,
        p95, p99, mean, max), `outcomes`, `compensation_rate` (share of orders whose saga
        compensated, i.e. ended Aborted), `throughput` (orders ended in each second of the run)
        and `samples` ([started_s, latency_ms, outcome] each).
    """
    latencies = [s.latency_s * 1000 for s in samples]
    duration = max(s.ended_s for s in samples) - min(s.started_s for s in samples)
    ended_per_second = Counter(int(s.ended_s) for s in samples)
    compensated = (states or {}).get("Aborted", 0)
    return {
        "orders": len(samples),
        "duration_s": round(duration, 3),
        "orders_per_s": round(len(samples) / duration, 2) if duration else None,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "mean": round(sum(latencies) / len(latencies), 1),
            "max": round(max(latencies), 1),
        },
        "outcomes": dict(states) if states else dict(Counter(s.outcome for s in samples)),
        "compensation_rate": round(compensated / len(samples), 4),
        "throughput": [ended_per_second.get(t, 0) for t in range(max(ended_per_second) + 1)],
        "samples": [
            [round(s.started_s, 4), round(s.latency_s * 1000, 2), s.outcome] for s in samples
        ],
    }


def table(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """One line per run: orders/s, latency percentiles, compensation rate."""
    header = (
        f"{'run':<10} {'orders':>6} {'orders/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'compensated':>11}"
    )
    lines = [header]
    for name, run in runs.items():
        latency = run["latency_ms"]
        lines.append(
            f"{name:<10} {run['orders']:>6} {run['orders_per_s']:>9} {latency['p50']:>8} "
            f"{latency['p95']:>8} {latency['p99']:>8} {run['compensation_rate']:>11.1%}"
        )
    return "\n".join(lines)


def cost_table(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """One line per run: CPU milliseconds per order of each process group, history length."""
    groups = [group.value for group in Group]
    header = f"{'CPU ms/order':<12} " + " ".join(f"{group:>9}" for group in groups)
    lines = [header + f" {'history events by path'}"]
    for name, run in runs.items():
        cpu = run["cpu_ms_per_order"]
        spent = " ".join(f"{cpu[group]:>9}" if group in cpu else f"{'-':>9}" for group in groups)
        paths = ", ".join(f"{path} {events}" for path, events in run["history_events"].items())
        lines.append(f"{name:<12} {spent} {paths}")
    return "\n".join(lines)


def ratio_table(
    to_baseline: Mapping[str, float | None], to_peer: Mapping[str, float | None]
) -> str:
    """One line per figure: the saga's as a multiple of the baseline's and of the peer's."""
    lines = [f"{'saga /':<16} {'baseline':>9} {'peer':>9}"]
    for name in [*to_baseline, *(name for name in to_peer if name not in to_baseline)]:
        cells = (to_baseline.get(name), to_peer.get(name))
        lines.append(f"{name:<16} " + " ".join(f"{_cell(cell):>9}" for cell in cells))
    return "\n".join(lines)


def _cell(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.3f}"


def write_chart(runs: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """Latency distribution and throughput over time of each run, as a PNG."""
    # Imported only when a chart is drawn: it takes a second to load.
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    from matplotlib import pyplot

    figure, (latency_axes, throughput_axes) = pyplot.subplots(1, 2, figsize=(12, 4.5))
    for name, run in runs.items():
        latencies = [sample[1] for sample in run["samples"]]
        latency_axes.hist(latencies, bins=50, alpha=0.6, label=name)
        throughput_axes.plot(run["throughput"], label=name)
    latency_axes.set(title="Saga latency", xlabel="ms (start to result)", ylabel="orders")
    throughput_axes.set(title="Throughput", xlabel="second of the run", ylabel="orders ended")
    latency_axes.legend()
    throughput_axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
