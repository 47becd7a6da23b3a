"""`order-saga dashboard`: the business's saga figures in the terminal, refreshing live.

It reads the monitoring consumer's store in the data folder, which `order-saga consumers`
keeps current; each refresh recomputes the figures over the window ending now.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from datetime import UTC, datetime, timedelta

from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from infra.exits import StartFailure
from infra.settings import Group as SettingsGroup
from infra.settings_cli import add_settings, load_settings
from ordersaga.consumers.figures import Figures, figures
from ordersaga.consumers.money import format_money
from ordersaga.consumers.monitoring import MONITORING_FILE, MonitoringStore, SagaRecord

#: Active sagas listed at most; the count says how many there are in all.
MAX_ACTIVE_ROWS = 15


def render(shown: Figures, active: list[SagaRecord]) -> RenderableType:
    """One frame: the figures in three panels, then the sagas running now, oldest first."""
    minutes = shown.window / timedelta(minutes=1)
    title = Text.assemble(
        ("Order sagas", "bold"),
        f"  last {minutes:g} min, as of {shown.now:%Y-%m-%d %H:%M:%S} UTC",
    )
    revenue = "\n".join(
        f"{format_money(amount, currency)}/h" for currency, amount in shown.revenue_per_hour.items()
    )
    # Side by side where the terminal is wide enough, else wrapped onto the next lines: a label
    # is never cut, down to 80 columns.
    panels = Columns(
        [
            _panel(
                "Saga health",
                ("Success rate", _percent(shown.success_rate)),
                ("Avg duration", _seconds(shown.average_duration_s)),
                ("Active sagas", str(shown.active)),
                ("Waiting for an operator", str(shown.needs_attention)),
            ),
            _panel(
                "Performance",
                ("P95 latency", _seconds(shown.p95_latency_s)),
                ("Error rate", _percent(shown.error_rate)),
                ("Compensation rate", _percent(shown.compensation_rate)),
            ),
            _panel(
                "Business",
                ("Orders/min", f"{shown.orders_per_min:.2f}"),
                ("Revenue/hour", revenue or "-"),
            ),
        ],
        padding=(0, 2),
    )
    counts = Text(
        f"{shown.started} started, {shown.ended} ended: {shown.confirmed} confirmed, "
        f"{shown.aborted} aborted, {shown.failed} failed, {shown.withdrawn} withdrawn, "
        f"{shown.cancelled} cancelled ({shown.compensated} compensated)",
        style="dim",
    )
    return Group(title, panels, counts, _active_table(shown.now, active))


def run_dashboard(store: MonitoringStore, *, window: timedelta, refresh_s: float) -> None:
    """Redraw the dashboard every `refresh_s` seconds until Ctrl-C."""
    with contextlib.suppress(KeyboardInterrupt), Live(frame(store, window)) as live:
        while True:
            time.sleep(refresh_s)
            live.update(frame(store, window))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's flags: the data folder, refresh interval, window, `--once`."""
    add_settings(parser, SettingsGroup.DATA)
    parser.add_argument(
        "--refresh", type=float, default=2.0, metavar="S", help="seconds between redraws [2]"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=60.0,
        metavar="MIN",
        help="minutes the rates and averages cover [60]",
    )
    parser.add_argument("--once", action="store_true", help="print one frame and exit")


def run_from_args(args: argparse.Namespace) -> None:
    """Show the dashboard for the data folder of `args`.

    Raises:
        StartFailure: The folder has no monitoring store yet.
    """
    settings = load_settings(args, "order-saga dashboard")
    if not (settings.data_dir / MONITORING_FILE).exists():
        raise StartFailure(
            f"no monitoring store in {settings.data_dir} ({MONITORING_FILE}): run "
            "`order-saga demo` or `order-saga consumers` on that folder, or pass --data-dir"
        )
    store = MonitoringStore.in_folder(settings.data_dir)
    window = timedelta(minutes=args.window)
    if args.once:
        Console().print(frame(store, window))
    else:
        run_dashboard(store, window=window, refresh_s=args.refresh)


def frame(store: MonitoringStore, window: timedelta) -> RenderableType:
    """The dashboard as of now, over the last `window`."""
    now = datetime.now(UTC)
    return render(figures(store, now, window), store.active_at(now))


def _panel(title: str, *rows: tuple[str, str]) -> Table:
    table = Table(title=title, show_header=False, title_style="bold")
    table.add_column("figure", no_wrap=True)
    table.add_column("value", justify="right", style="bold cyan", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def _active_table(now: datetime, active: list[SagaRecord]) -> Table:
    table = Table(title=f"Active sagas ({len(active)})", title_style="bold", title_justify="left")
    table.add_column("order", overflow="fold")  # an id folds onto a second line, whole
    for column in ("last event", "running for", "total"):
        table.add_column(column, overflow="fold")
    table.add_column("operator?", no_wrap=True)
    for record in active[:MAX_ACTIVE_ROWS]:
        running = _seconds((now - record.started_at).total_seconds()) if record.started_at else "-"
        total = "-"
        if record.total is not None and record.currency is not None:
            total = format_money(record.total, record.currency)
        flag = Text("yes", style="bold red") if record.needs_attention else Text("")
        table.add_row(record.order_id, record.last_event, running, total, flag)
    if len(active) > MAX_ACTIVE_ROWS:
        table.caption = f"and {len(active) - MAX_ACTIVE_ROWS} more"
    return table


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _seconds(seconds: float | None) -> str:
    # Sagas take about a second; one that runs for minutes is read in minutes and hours.
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
