"""`order-saga bench` runs a small workload end to end and writes its JSON and chart.

No assertion on speed: this machine's speed is not the code's.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ORDERS = 20


def test_bench_writes_results_and_chart(tmp_path: Path) -> None:
    out, chart = tmp_path / "results.json", tmp_path / "chart.png"
    command = [sys.executable, "-c", "from ops.cli import main; main()", "bench"]
    command += ["-n", str(ORDERS), "--concurrency", "5", "--warmup", "2", "--declined", "0.2"]
    command += ["--out-of-stock", "0.1", "--rounds", "2", "--out", str(out), "--chart", str(chart)]
    command += ["--data-dir", str(tmp_path / "stack")]
    elsewhere = tmp_path / "elsewhere"  # the folder it runs in: it writes nothing there
    elsewhere.mkdir()
    finished = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=elsewhere)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert list(elsewhere.iterdir()) == []

    results = json.loads(out.read_text())
    assert set(results) >= {"run_id", "config", "machine", "runs", "ratios", "peer_ratios"}
    assert set(results["runs"]) == {"baseline", "peer", "saga"}
    for run in results["runs"].values():
        assert run["orders"] == ORDERS
        assert run["orders_per_s"] > 0
        assert set(run["latency_ms"]) == {"p50", "p95", "p99", "mean", "max"}
        assert 0 <= run["compensation_rate"] <= 1
        assert sum(run["throughput"]) == ORDERS
        assert len(run["samples"]) == ORDERS
    # The runs take turns, mirrored, never at once: baseline, peer, saga, saga, peer, baseline.
    rounds = {label: run["rounds"] for label, run in results["runs"].items()}
    order = ["baseline", "peer", "saga", "saga", "peer", "baseline"]
    turns = [rounds[label][turn // 3] for turn, label in enumerate(order)]
    assert all(begin < end for begin, end in turns)
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(turns))
    saga = results["runs"]["saga"]
    assert saga["outcomes"] == {"OrderConfirmed": 14, "Aborted": 4, "Failed": 2}
    assert saga["compensation_rate"] == 0.2
    for run in results["runs"].values():
        cpu = run["cpu_ms_per_order"]
        assert set(cpu) == {"server", "workers", "services", "load"}
        assert cpu["server"] > 0 and cpu["workers"] > 0 and cpu["load"] > 0
    assert saga["cpu_ms_per_order"]["services"] > 0  # the baseline calls none
    peer = results["runs"]["peer"]
    assert peer["outcomes"] == {"confirmed": 14, "not confirmed": 6}  # the same mix as the saga
    assert peer["cpu_ms_per_order"]["services"] > 0
    # One history per path the saga took; the ratio is a confirmed saga's over the baseline's.
    assert set(saga["history_events"]) == set(saga["outcomes"])
    assert all(events > 0 for events in saga["history_events"].values())
    baseline_events = results["runs"]["baseline"]["history_events"]["confirmed"]
    confirmed_events = saga["history_events"]["OrderConfirmed"]
    assert results["ratios"]["history_events"] == round(confirmed_events / baseline_events, 3)
    assert set(results["ratios"]) == {
        "throughput",
        "latency_p50",
        "latency_p95",
        "latency_p99",
        "cpu_server",
        "cpu_workers",
        "history_events",
    }
    peer_events = peer["history_events"]["confirmed"]
    assert results["peer_ratios"]["history_events"] == round(confirmed_events / peer_events, 3)
    # Against the peer, every process's CPU counts: the services do the same work for both.
    assert set(results["peer_ratios"]) == set(results["ratios"]) | {
        "cpu_services",
        "cpu_load",
        "cpu_all",
    }
    all_saga, all_peer = (sum(run["cpu_ms_per_order"].values()) for run in (saga, peer))
    assert results["peer_ratios"]["cpu_all"] == round(all_saga / all_peer, 3)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "saga /" in finished.stdout and "peer" in finished.stdout
    assert "CPU ms/order" in finished.stdout


def test_bench_via_the_api_places_every_order_through_it(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    command = [sys.executable, "-c", "from ops.cli import main; main()", "bench"]
    command += ["-n", str(ORDERS), "--concurrency", "5", "--warmup", "2", "--rounds", "1"]
    command += ["--no-baseline", "--no-peer", "--via", "api", "--declined", "0.2"]
    command += ["--out", str(out)]
    command += ["--data-dir", str(tmp_path / "stack")]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]

    results = json.loads(out.read_text())
    saga = results["runs"]["saga"]
    assert results["config"]["via"] == "api"
    assert saga["outcomes"] == {"OrderConfirmed": 16, "Aborted": 4}
    assert saga["cpu_ms_per_order"]["api"] > 0  # the API's own process, counted apart
    # Every order (the warm-up's too) went through the API: one 202 each in its log.
    log = (tmp_path / "stack" / "api.log").read_text().splitlines()
    placed = [json.loads(line) for line in log if '"route": "/orders"' in line]
    assert [(line["method"], line["status"]) for line in placed] == [("POST", 202)] * (ORDERS + 2)


def test_a_bench_stopped_by_sigterm_stops_everything_it_started(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "from ops.cli import main; main()", "bench"]
    command += ["-n", "100000", "--no-baseline", "--data-dir", str(tmp_path / "stack")]
    bench = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started: dict[psutil.Process, str] = {}
    try:
        started |= _once_its_worker_runs(bench)
        bench.send_signal(signal.SIGTERM)
        _, stderr = bench.communicate(timeout=60)
        _, alive = psutil.wait_procs(list(started), timeout=10)
    finally:
        bench.kill()
        for process in started:  # whatever this test fails on, it leaves nothing running
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

    assert bench.returncode == 130
    assert "Traceback" not in stderr
    # It had started the dev server, the services and a worker; none is left running.
    for part in ("server start-dev", "-m services", "worker.py"):
        assert any(part in line for line in started.values()), (part, started)
    assert alive == []


def _once_its_worker_runs(bench: subprocess.Popen[str]) -> dict[psutil.Process, str]:
    """The bench's processes and their command lines, once its worker runs (the stack is up).

    Raises:
        AssertionError: The bench ended first (with what it said), or 120 s passed.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and bench.poll() is None:
        running: dict[psutil.Process, str] = {}
        try:
            children = psutil.Process(bench.pid).children(recursive=True)
        except psutil.NoSuchProcess:  # it has just ended: the loop's condition sees it
            continue
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                running[child] = " ".join(child.cmdline())
        if any("worker.py" in line for line in running.values()):
            return running
        time.sleep(0.2)  # polls the process table, which has no event to wait on
    if bench.poll() is not None:
        _, stderr = bench.communicate()
        raise AssertionError(f"the bench exited ({bench.returncode}) first: {stderr[-2000:]}")
    raise AssertionError("the bench's worker did not start within 120 s")
