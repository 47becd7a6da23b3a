"""Every operational command that cannot start says why in one line, exit code 2, no traceback.

A port in use (named with what holds it), a Temporal server or event bus not there, a worker
that never polled (named with its log), a store or keys missing: each command is run as a user
runs it, in a process of its own. Bench and chaos report their progress on stderr too; their
failure is the last line there, and the only `error:` one.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

from infra.devserver import PORT_TAKEN, DevServer
from infra.exits import StartFailure
from infra.sockets import free_port
from infra.temporal import TemporalUnreachable, connect
from ops.stack import worker_process
from tests.support.starter_runner import Run, failure_line, one_line, run_python, until_logged

ORDER_SAGA = ("-c", "from ops.cli import main; main()")


async def order_saga(env: dict[str, str], *args: str) -> Run:
    """`order-saga ARGS` in a process of its own."""
    return await run_python(env, *ORDER_SAGA, *args)


@pytest.mark.parametrize(
    ("command", "setting", "what"),
    [
        (["services"], "SERVICES_PORT", "stand-in services, SERVICES_PORT"),
        (["codec-server", "--codec-server-token", "t"], "CODEC_SERVER_PORT", "codec server"),
        (["demo", "--exit"], "SERVICES_PORT", "stand-in services, SERVICES_PORT"),
        (["demo", "--exit"], "CODEC_SERVER_PORT", "codec server, CODEC_SERVER_PORT"),
        (["demo", "--exit"], "UI_PORT", "Temporal Web UI, UI_PORT"),
        (["demo", "--exit"], "API_PORT", "Order API, API_PORT"),
        (
            ["api", "--api-shop-token", "s", "--api-operator-token", "o"],
            "API_PORT",
            "Order API, API_PORT",
        ),
    ],
)
async def test_a_taken_port_is_named_with_the_process_holding_it(
    command: list[str], setting: str, what: str, taken_port: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = dict(os.environ) | {setting: str(taken_port), "DATA_DIR": str(data)}

    run = await order_saga(env, *command)

    assert run.code == 2
    line = one_line(run)
    assert line.startswith(f"error: port {taken_port} ({what}")
    # The port is held by this test process, which psutil finds by its listening socket.
    assert f"is in use by pid {os.getpid()} (" in line
    assert not data.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["audit"],
        ["bench", "-n", "1", "--no-baseline", "--services-url", "http://x"],
        [
            "api",
            "--api-shop-token",
            "s",
            "--api-operator-token",
            "o",
            "--api-port",
            str(free_port()),
        ],
    ],
)
async def test_an_unreachable_temporal_is_one_line(command: list[str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = dict(os.environ) | {"TEMPORAL_ADDRESS": address}

    run = await order_saga(env, *command, "--address", address)

    assert run.code == 2
    assert failure_line(run).startswith(f"error: cannot reach Temporal at {address} (")


async def test_a_temporal_that_takes_the_connection_but_never_answers_is_given_up_on() -> None:
    with socket.socket() as silent:  # its backlog takes connections; nothing ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"

        with pytest.raises(TemporalUnreachable) as failure:
            await connect(address, timeout_s=0.5)

    assert str(failure.value).startswith(
        f"cannot reach Temporal at {address} (no answer within 0.5 s): start it"
    )


@pytest.mark.parametrize("command", [["bench", "-n", "2", "--no-baseline"], ["chaos", "-n", "2"]])
async def test_a_worker_that_cannot_start_is_one_line_quoting_it_and_naming_its_log(
    command: list[str], taken_port: int, tmp_path: Path
) -> None:
    # The workers bench and chaos start inherit the environment: each finds its port taken.
    env = dict(os.environ) | {"METRICS_ADDRESS": f"127.0.0.1:{taken_port}"}

    run = await order_saga(env, *command, "--data-dir", str(tmp_path))

    assert run.code == 2
    line = failure_line(run)
    assert line.startswith("error: a worker exited with code 2 before it polled ")
    assert f"cannot serve metrics on METRICS_ADDRESS 127.0.0.1:{taken_port}" in line
    assert line.endswith(f"see {tmp_path / 'workers.log'}")


async def test_a_worker_that_never_polls_is_named_with_its_log(
    dev_server: DevServer, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    silent = (sys.executable, "-c", "import time; time.sleep(60)")

    with log_path.open("ab") as log, pytest.raises(StartFailure) as failure:
        async with worker_process(
            dev_server.address,
            "never-polled",
            "http://x",
            log,
            data_dir=tmp_path,
            ready_within=1,
            command=silent,
        ):
            pass

    assert str(failure.value).startswith("a worker (pid ")
    assert str(failure.value).endswith(f"did not poll never-polled within 1 s; see {log_path}")


async def test_a_dev_server_that_exits_at_start_is_named_with_its_log(tmp_path: Path) -> None:
    log_path = tmp_path / "temporal.log"
    # The dev server does not make its database's folder: it exits at once.
    with log_path.open("ab") as log:
        server = DevServer(port=free_port(), db_file=tmp_path / "missing" / "t.db", log=log)
        with pytest.raises(StartFailure) as failure:
            await server.start()

    assert str(failure.value).startswith(f"the Temporal dev server on {server.address} exited ")
    assert str(failure.value).endswith(f"at start; see {log_path}")
    assert log_path.read_text().count("Error:") == 1  # tried once: another try would fail too


async def test_a_dev_server_that_lost_a_port_it_picked_is_started_again(tmp_path: Path) -> None:
    log_path = tmp_path / "temporal.log"
    # The server picks its HTTP API's port itself; here another process holds it at first.
    with socket.create_server(("127.0.0.1", 0)) as holder, log_path.open("ab") as log:
        port = holder.getsockname()[1]
        server = DevServer(port=free_port(), log=log, extra_args=("--http-port", str(port)))

        async def release_once_refused() -> None:
            await until_logged(log_path, PORT_TAKEN.decode())
            holder.close()

        release = asyncio.create_task(release_once_refused())
        try:
            await server.start()
        finally:
            await server.stop()
            release.cancel()

    assert log_path.read_bytes().count(PORT_TAKEN) == 1


async def test_a_dev_server_whose_port_stays_taken_is_named_after_its_last_try(
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "temporal.log"
    with socket.create_server(("127.0.0.1", 0)) as holder, log_path.open("ab") as log:
        port = holder.getsockname()[1]
        server = DevServer(port=free_port(), log=log, extra_args=("--http-port", str(port)))
        with pytest.raises(StartFailure) as failure:
            await server.start(attempts=2)

    assert str(failure.value).endswith(f"at start; see {log_path}")
    assert log_path.read_bytes().count(PORT_TAKEN) == 2


async def test_an_unreachable_event_bus_is_one_line(tmp_path: Path) -> None:
    port = free_port()

    run = await order_saga(
        dict(os.environ), "consumers", "--once", "--data-dir", str(tmp_path),
        "--event-bus", f"redis://127.0.0.1:{port}/0",
    )  # fmt: skip

    assert run.code == 2
    line = one_line(run)
    assert line.startswith(f"error: cannot reach the Redis event bus at 127.0.0.1:{port} (")
    assert line.endswith("start Redis or set EVENT_BUS")


async def test_a_dashboard_of_a_folder_without_figures_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"

    run = await order_saga(dict(os.environ), "dashboard", "--once", "--data-dir", str(empty))

    assert run.code == 2
    assert one_line(run).startswith(f"error: no monitoring store in {empty} (monitoring.db)")
    assert not empty.exists()


async def test_an_audit_without_the_services_databases_is_one_line(
    dev_server: DevServer, tmp_path: Path
) -> None:
    run = await order_saga(
        dict(os.environ), "audit", "--address", dev_server.address, "--data-dir", str(tmp_path)
    )

    assert run.code == 2
    assert one_line(run).startswith("error: no database at ")


async def test_an_api_without_both_tokens_is_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("API_")}

    run = await order_saga(env, "api", "--api-shop-token", "s")

    assert run.code == 2
    assert one_line(run) == (
        "error: API_SHOP_TOKEN and API_OPERATOR_TOKEN (--api-shop-token, --api-operator-token) "
        "are both required: every route of the API needs a token"
    )


async def test_a_codec_server_without_keys_is_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("CODEC_KEY_FILE", "CODEC_KEYS")}

    run = await order_saga(env, "codec-server", "--codec-server-token", "t")

    assert run.code == 2
    assert one_line(run) == (
        "error: set CODEC_KEY_FILE or CODEC_KEYS: the codec server needs the keys"
    )


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["bench", "-n", "0"], "argument -n/--orders: 0 is not a whole number from 1 up"),
        (["bench", "--workers", "0"], "argument --workers: 0 is not a whole number from 1 up"),
        (["bench", "--rounds", "0"], "argument --rounds: 0 is not a whole number from 1 up"),
        (["bench", "--rate", "0"], "argument --rate: 0 is not a number above 0"),
        (["bench", "--warmup", "-1"], "argument --warmup: -1 is not a whole number from 0 up"),
        (["chaos", "--kills", "-1"], "argument --kills: -1 is not a whole number from 0 up"),
        (["bench", "--latency-ms", "60001"], "--latency-ms: Input should be less than or equal"),
        (
            ["chaos", "--fault-rate", "0.8", "--lost-answers", "0.5"],
            "--fault-rate + --lost-answers must be at most 1",
        ),
    ],
)
async def test_load_options_out_of_range_stop_bench_and_chaos_before_anything_starts(
    arguments: list[str], expected: str, tmp_path: Path
) -> None:
    data = tmp_path / "stack"

    run = await order_saga(dict(os.environ), *arguments, "--data-dir", str(data))

    # argparse's usage and its line, or our one `error:` line; either way the last line says it.
    assert run.code == 2
    assert "Traceback" not in run.err
    assert expected in run.err.strip().splitlines()[-1]
    assert not data.exists()
