"""`order-saga soak` runs the whole stack over windows of orders and keeps the data folder within
the retention while it runs: the consumers' stores, the services' records and the server's sagas.

No assertion on speed or memory: this machine's are not the code's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ORDERS, WINDOW = 240, 60


def test_a_short_soak_reports_each_window_and_prunes_while_it_runs(tmp_path: Path) -> None:
    out, chart, data = tmp_path / "soak.json", tmp_path / "soak.png", tmp_path / "stack"
    command = [sys.executable, "-c", "from ops.cli import main; main()", "soak"]
    command += ["-n", str(ORDERS), "--window", str(WINDOW), "--retention", "3", "--rate", "25"]
    command += ["--declined", "0.1", "--out-of-stock", "0.05", "--unserved", "0.05"]
    command += ["--data-dir", str(data), "--out", str(out), "--chart", str(chart)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]

    results = json.loads(out.read_text())
    assert results["config"]["rate"] == 25 and results["config"]["concurrency"] is None
    windows = results["windows"]
    assert [window["orders"] for window in windows] == [60, 120, 180, 240]
    outcomes = [window["outcomes"] for window in windows]
    assert sum(o.get("not confirmed", 0) for o in outcomes) == 48  # a fifth, by the mix
    assert sum(o.get("confirmed", 0) for o in outcomes) == 192
    # The server deleted the first windows' sagas a retention after they ended.
    assert windows[-1]["sagas_stored"] < ORDERS - WINDOW
    for window in windows:
        assert window["cpu_ms_per_order"]["workers"] > 0 and window["yardstick_ms"] > 0
        assert window["cpu_ms_per_order"]["api"] > 0
        assert window["cpu_ms_per_order"]["server"] > 0
        assert set(window["rss_mb"]) >= {"workers", "api", "consumers", "server", "services"}
        assert {"pruned", "services", "temporal"} <= set(window["data_mb"])
    last = windows[-1]["rows"]
    # Every order's messages went out, and those of the first windows were pruned already.
    assert last["events_published"] >= ORDERS * 3
    assert last["events"] < last["events_published"] - WINDOW * 3
    assert last["notifications"] < ORDERS - WINDOW
    assert last["monitoring"] < ORDERS - WINDOW
    # The services forgot the first windows' orders too (the Order service's records stand for
    # every service's: the audit below finds no order half forgotten).
    assert last["order_records"] < (ORDERS - WINDOW) * 0.8
    consumed = "".join(path.read_text() for path in data.glob("consumers.log*"))
    assert "pruned" in consumed and "rolled logs" in consumed
    # The logs were rolled: a retention's lines or two, not the whole run's.
    for part in ("workers", "api", "services"):
        assert (data / f"{part}.log.1").exists()

    assert set(results["summary"]) == {
        "warmup_windows",
        "cpu_ms_per_order",
        "cpu_end_to_start",
        "yardstick_end_to_start",
        "cpu_end_to_start_on_yardstick",
        "p50_end_to_start",
        "memory_growth",
    }
    assert set(results["reads_ms"]) == {"dashboard", "audit", "get_orders", "get_attention"}
    audited = results["audit"]
    # It judges what is still kept: the orders forgotten everywhere are no longer there.
    assert audited["orders"] < ORDERS and audited["violations"] == 0
    assert audited["past_retention"] > 0
    assert "CPU ms/order:" in finished.stdout and "reads at the end, ms:" in finished.stdout
    assert chart.read_bytes().startswith(b"\x89PNG")
