"""Place, inspect, withdraw and cancel orders, and settle stuck compensations.

Each order is one `OrderSaga` workflow, `order-<order id>`.

Examples:
    python starter.py place --order-id A1 --item SKU-BOOK:2:1500 --card 4242424242424242
    python starter.py place --file order.json --no-wait
    python starter.py status A1
    python starter.py withdraw A1 --reason "ordered twice"
    python starter.py cancel A1
    python starter.py attention
    python starter.py retry-compensation A1
    python starter.py mark-done A1 --reason "refunded by bank transfer"
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TypeVar

import httpx
import pydantic
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from domain.ids import workflow_id_for
from domain.money import MoneyError, both_units, is_major_units, minor_units
from domain.order import CardDetails, OrderForm
from domain.problems import describe_errors
from domain.saga import OperatorAction, OrderResult, Resolution, SagaStatus, Withdrawal
from infra.codec import CodecMismatch, check_codec_agrees
from infra.exits import run_to_exit
from infra.settings import Group, Settings
from infra.settings_cli import add_settings, load_settings
from infra.temporal import connect, ui_link
from infra.tracing import configure_tracing, traced
from ordersaga.order_desk import (
    ANSWER_TIMEOUT,
    DEMO_ORDER,
    ActionRefused,
    BulkAnswer,
    BulkOutcome,
    InputError,
    OrderConflict,
    OrderDesk,
    RecordedView,
    UnknownOrder,
    WaitingSaga,
    read_order_file,
    tokenize,
)
from workflows import OrderSaga
from workflows.order_steps import CONFIRMED, SEARCHABLE_STATES
from workflows.search_attributes import (
    saga_query,
)

Update = TypeVar("Update", Withdrawal, Resolution)

#: How often `place` looks at what a saga it waits for is waiting on.
WAITING_NOTE_S = 3.0


def order_form(args: argparse.Namespace) -> OrderForm:
    """Validate the order given by `--file` or by flags, before anything is started."""
    if args.file:
        data = read_order_file(args.file)
    else:
        data = {**DEMO_ORDER, "order_id": args.order_id}
        for flag, field in (("customer", "customer_id"), ("currency", "currency")):
            if getattr(args, flag):
                data[field] = getattr(args, flag)
        data["items"] = parse_items(args.item, str(data["currency"]).strip().upper())
        if args.postal_code:
            data["shipping_address"] = {**data["shipping_address"], "postal_code": args.postal_code}
        data["payment"] = (
            {"token": args.token, "last4": args.last4}
            if args.token
            else {"card_number": args.card, "exp_month": 12, "exp_year": 2030}
        )
        data["policy"] = policy_from_flags(args)
    try:
        return OrderForm.model_validate(data)
    except pydantic.ValidationError as err:
        raise InputError(describe_errors(err)) from err


def policy_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The saga policy: the business defaults, with what the flags change."""
    policy: dict[str, Any] = {}
    if args.step_attempts is not None:
        policy["steps"] = {"max_attempts": args.step_attempts}
    if args.compensation_attempts is not None:
        policy["compensations"] = {"first_retry_s": 1.0, "max_attempts": args.compensation_attempts}
    if args.deadline is not None:
        policy["deadline_s"] = args.deadline
    return policy


def parse_items(specs: list[str] | None, currency: str) -> list[dict[str, Any]]:
    """`SKU:QUANTITY:UNIT_PRICE` flags as order items, as typed.

    UNIT_PRICE is minor units (`1500`), or major units with the order's currency (`15.00USD`),
    converted here. The order's validation checks each part, so that all the order's problems
    are reported at once, each naming its item (`items.1.quantity: ...`).

    Raises:
        InputError: A price in major units that cannot be converted.
    """
    items, problems = [], []
    for index, spec in enumerate(specs or []):
        sku, _, rest = spec.partition(":")
        quantity, _, unit_price = rest.partition(":")
        price: str | int = unit_price
        if is_major_units(unit_price):
            try:
                price = minor_units(unit_price, currency)
            except MoneyError as err:
                problems.append(f"items.{index}.unit_price: {err}")
        items.append({"sku": sku, "quantity": quantity, "unit_price": price})
    if problems:
        raise InputError(problems)
    return items


async def place(client: Client, args: argparse.Namespace, form: OrderForm) -> int:
    """Start the saga for an order and, unless `--no-wait`, wait for its outcome."""
    payment = form.payment
    if isinstance(payment, CardDetails):
        payment = await tokenize(args.settings.service_urls["payment"], payment)
    request = form.with_payment(payment)
    workflow_id = workflow_id_for(request.order_id)
    desk = OrderDesk(client, args.settings.task_queue)
    try:
        started = await desk.place(request)
    except OrderConflict as err:
        print(
            f"error: {err}; no second saga was started: place it under a new order id",
            file=sys.stderr,
        )
        print(f"  {link(args.settings, workflow_id)}", file=sys.stderr)
        return 1
    if started:
        print(f"Started saga {workflow_id} for {both_units(request.total, request.currency)}")
    else:
        print(f"Order {request.order_id} was placed before, as this same order: no second saga")
    print(f"  {link(args.settings, workflow_id)}")
    handle = client.get_workflow_handle_for(OrderSaga.run, workflow_id)
    if args.no_wait:
        return 0
    outcome = asyncio.ensure_future(handle.result())
    await say_what_it_waits_on(desk, request.order_id, outcome)
    try:
        result = await outcome
    except WorkflowFailureError as err:
        print(getattr(err.cause, "message", err.cause))
        print_status(await handle.query(OrderSaga.status))
        return 1
    print_result(result)
    return 0


async def say_what_it_waits_on(
    desk: OrderDesk, order_id: str, outcome: asyncio.Future[Any]
) -> None:
    """Until `outcome` is in, say what the saga waits for (an operator, a retry) when it changes.

    Read from the server's records every `WAITING_NOTE_S` seconds, so it is said while the
    saga's worker is down too.
    """
    told: str | None = None
    while not (await asyncio.wait({outcome}, timeout=WAITING_NOTE_S))[0]:
        recorded = await desk.recorded(order_id)
        if recorded.waiting:
            note = f"for an operator: {describe_waiting(recorded.waiting)}"
        elif recorded.retrying:
            note = f"for a retry: {'; '.join(recorded.retrying)}"
        else:
            continue
        if note != told:
            print(f"  waiting {note}", flush=True)
            told = note


async def status(client: Client, args: argparse.Namespace) -> int:
    """Print where an order's saga stands: from the server's records if its worker is silent."""
    workflow_id = workflow_id_for(args.order_id)
    desk = OrderDesk(client, args.settings.task_queue)
    try:
        saga = await desk.view(args.order_id)
    except (WorkflowQueryFailedError, RPCError) as err:
        if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
            raise
        recorded = await desk.recorded(args.order_id)
        print(f"Workflow {workflow_id}: {recorded.workflow_status}")
        print(
            f"  its worker did not answer within {ANSWER_TIMEOUT.seconds} s; the server's records:"
        )
        print_recorded(recorded)
    else:
        print(f"Workflow {workflow_id}: {saga.workflow_status}")
        print_status(saga)
    print(f"  {link(args.settings, workflow_id)}")
    return 0


def print_recorded(recorded: RecordedView) -> None:
    """What the server's records say of a saga, one fact a line."""
    print(f"  state:        {recorded.state or '-'}")
    if recorded.failed_step:
        print(f"  failed step:  {recorded.failed_step}")
    if recorded.waiting:
        print(f"  needs attention: {describe_waiting(recorded.waiting)}")
    for retrying in recorded.retrying:
        print(f"  retrying:     {retrying}")


async def cancel(client: Client, args: argparse.Namespace) -> int:
    """Ask an order's saga to cancel: it undoes whatever it has done, then ends cancelled."""
    workflow_id = workflow_id_for(args.order_id)
    await client.get_workflow_handle(workflow_id).cancel()
    print(f"Cancellation requested for {workflow_id}; its compensations run before it ends.")
    print(f"  {link(args.settings, workflow_id)}")
    return 0


async def withdraw(client: Client, args: argparse.Namespace) -> int:
    """The customer takes the order back; accepted only before it is confirmed."""
    desk = OrderDesk(client, args.settings.task_queue)
    saga = await desk.withdraw(args.order_id, Withdrawal(reason=args.reason))
    print(f"Order {args.order_id} withdrawn.")
    print_status(saga)
    return 0


async def attention(client: Client, args: argparse.Namespace) -> int:
    """List the orders whose saga waits for an operator: what each waits on and still holds.

    From the server's records, page by page: it answers while the sagas' workers are down.
    """
    desk = OrderDesk(client, args.settings.task_queue)
    page = await desk.waiting()
    total = page.total
    while True:
        for waits in page.sagas:
            print(f"{waits.order_id}: {describe_waiting(waits)}")
        for order_id in page.unrecorded:
            print(f"{order_id}: waits (its build records no details: starter.py status {order_id})")
        if page.next_cursor is None:
            break
        page = await desk.waiting(cursor=page.next_cursor)
    print(f"{total} order(s) need attention." if total else "No order needs attention.")
    return 0


def describe_waiting(waits: WaitingSaga) -> str:
    """What a waiting saga waits on, since when, and what it holds, in one line."""
    return (
        f"{waits.compensation} ({waits.service}) failed {waits.attempts} times since "
        f"{waits.since:%Y-%m-%d %H:%M:%S} UTC: {waits.reason}; holds {waits.held}"
    )


async def list_orders(client: Client, args: argparse.Namespace) -> int:
    """List order sagas by state and customer, as the Web UI filters them."""
    listed = await OrderDesk(client, args.settings.task_queue).listing(
        args.status, args.customer, limit=None
    )
    rows: list[tuple[str, ...]] = [
        ("ORDER", "STATUS", "TOTAL (MINOR UNITS)", "CUSTOMER", "FAILED STEP")
    ]
    for saga in listed:
        values = (saga.state, saga.total, saga.customer_id, saga.failed_step)
        rows.append((saga.order_id, *("-" if v is None else str(v) for v in values)))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    print(f"{len(rows) - 1} order(s) match {saga_query(args.status, args.customer)}")
    return 0


async def resolve(client: Client, args: argparse.Namespace) -> int:
    """Retry the compensation the named sagas wait on, or mark it done by hand.

    One order: its status after. Several, or a filter (`--waiting-on`, `--waiting-service`): one
    bulk action, its progress as it goes; run again with its `--action-id` to finish what is left.
    """
    resolution, answer = args.answer
    action = resolution.action.value.replace("_", " ")
    desk = OrderDesk(client, args.settings.task_queue)
    if answer is None:
        saga = await desk.resolve(args.order_id, resolution)
        print(f"Order {args.order_id}: {action} taken up.")
        print_status(saga)
        return 0
    print(f"Action {answer.action_id}: {action}")
    outcome = await desk.answer_waiting(answer, progress=print_progress)
    print(
        f"{len(outcome.answered)} answered, {len(outcome.refused)} refused, "
        f"{len(outcome.unanswered)} not answering, of {outcome.total}"
    )
    for order_id, why in outcome.refused.items():
        print(f"  refused: {order_id}: {why}")
    if outcome.unanswered:
        print(f"  not answering: {', '.join(outcome.unanswered)}")
        print(f"  run it again with --action-id {outcome.action_id} to finish what is left")
        return 1
    return 0


def operator_answer(args: argparse.Namespace) -> tuple[Resolution, BulkAnswer | None]:
    """The answer the flags ask for, and the bulk action, unless one order is named alone.

    Raises:
        InputError: Naming the flag, if the flags ask for no valid answer.
    """
    action = (
        OperatorAction.RETRY if args.command == "retry-compensation" else OperatorAction.MARK_DONE
    )
    try:
        resolution = Resolution(action=action, reason=getattr(args, "reason", ""))
    except pydantic.ValidationError as err:
        raise InputError(describe_errors(err)) from None
    if not (args.order_ids or args.waiting_on or args.waiting_service):
        raise InputError(["name the orders, or choose them with --waiting-on or --waiting-service"])
    if len(args.order_ids) == 1 and not (args.waiting_on or args.waiting_service):
        [args.order_id] = args.order_ids
        return resolution, None
    return resolution, bulk_answer(args, resolution)


def bulk_answer(args: argparse.Namespace, resolution: Resolution) -> BulkAnswer:
    """The bulk action the flags ask for; refused, naming the flag, if it is not one."""
    given = {
        "resolution": resolution,
        "order_ids": args.order_ids or None,
        "filters": {"compensation": args.waiting_on, "service": args.waiting_service},
    }
    if args.action_id:
        given["action_id"] = args.action_id
    try:
        return BulkAnswer.model_validate(given)
    except pydantic.ValidationError as err:
        flags = {"filters.compensation": "--waiting-on", "filters.service": "--waiting-service"}
        problems = [problem.split(": ", 1) for problem in describe_errors(err)]
        raise InputError([f"{flags.get(field, field)}: {why}" for field, why in problems]) from None


def print_progress(outcome: BulkOutcome) -> None:
    """A line every tenth of the way, and at the end."""
    done = len(outcome.answered) + len(outcome.refused) + len(outcome.unanswered)
    if done == outcome.total or done % max(1, outcome.total // 10) == 0:
        print(f"  {done}/{outcome.total}", flush=True)


def link(settings: Settings, workflow_id: str) -> str:
    """The Web UI page of a saga."""
    return ui_link(settings.temporal_ui_url, settings.temporal_namespace, workflow_id)


def print_status(saga: SagaStatus) -> None:
    """The `status` query, one fact a line."""
    print(f"  state:        {saga.state}")
    print(f"  steps done:   {', '.join(saga.steps_done) or '-'}")
    if saga.state == CONFIRMED:
        print("  undone:       - (confirmed: every step stands)")
    else:
        # What could be undone, recorded before each step ran, versus what was undone.
        print(f"  undo on file: {', '.join(saga.compensations_recorded) or '-'}")
        print(f"  undone:       {', '.join(saga.compensations_run) or '-'}")
    if saga.failed_step:
        print(f"  failed step:  {saga.failed_step} ({saga.failure_type}: {saga.failure_reason})")
    elif saga.failure_type:  # refused, withdrawn or cancelled: no step is to blame
        print(f"  reason:       {saga.failure_type}: {saga.failure_reason}")
    if saga.withdrawal_reason:
        print(f"  customer said: {saga.withdrawal_reason}")
    if saga.attention:
        print(
            f"  needs attention: {saga.attention.compensation} failed "
            f"{saga.attention.attempts} times ({saga.attention.reason})"
        )
    for compensation, reason in saga.resolved_by_hand.items():
        print(f"  done by hand: {compensation} ({reason})")


def print_result(result: OrderResult) -> None:
    """A confirmed order's ids."""
    print(f"Order {result.order_id} confirmed: {both_units(result.total, result.currency)}")
    ids = [f"{key.removesuffix('_id')} {value}" for key, value in result.ids.items()]
    print(f"  {', '.join(ids)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags override environment variables, which override the defaults."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_settings(parser, Group.TEMPORAL, Group.TLS, Group.CODEC, Group.SERVICES)
    commands = parser.add_subparsers(dest="command", required=True)

    place_cmd = commands.add_parser("place", help="place an order (start its saga)")
    source = place_cmd.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--file", help="the order as JSON (the OrderForm shape, see docs/running.md)"
    )
    source.add_argument("--order-id", help="order id; the saga's workflow id is order-<id>")
    place_cmd.add_argument(
        "--item",
        action="append",
        metavar="SKU:QTY:PRICE",
        help="an item; PRICE in minor units (1500) or with the currency (15.00USD); repeatable",
    )
    place_cmd.add_argument("--customer", help="customer id [default cust-demo]")
    place_cmd.add_argument("--currency", help="ISO 4217 code [default USD]")
    place_cmd.add_argument("--postal-code", help="shipping postal code [default 12345]")
    payment = place_cmd.add_mutually_exclusive_group()
    payment.add_argument(
        "--card",
        default="4242424242424242",
        help="card number, exchanged for a token first [default %(default)s]",
    )
    payment.add_argument("--token", help="an existing Payment-service token (tok_...)")
    place_cmd.add_argument("--last4", default="0000", help="last four digits, with --token")
    place_cmd.add_argument(
        "--step-attempts", type=int, help="attempts per step, first included [default 4]"
    )
    place_cmd.add_argument(
        "--compensation-attempts",
        type=int,
        help="attempts of a compensation before it needs attention [default 10]",
    )
    place_cmd.add_argument(
        "--deadline", type=float, help="seconds to confirm the order in, or undo it [default 900]"
    )
    place_cmd.add_argument("--no-wait", action="store_true", help="start it and return")

    for name, help_text in (
        ("status", "show an order's saga state"),
        ("cancel", "cancel an order's saga (it compensates first)"),
        ("withdraw", "the customer withdraws an order not yet confirmed"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("order_id", help="the order id (not the workflow id)")
        if name == "withdraw":
            command.add_argument("--reason", default="", help="why (kept in the saga's status)")
    for name, help_text in (
        ("retry-compensation", "retry the compensation the orders' sagas wait on"),
        ("mark-done", "record the compensation the orders' sagas wait on as done by hand"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("order_ids", nargs="*", metavar="order_id", help="order ids")
        command.add_argument("--waiting-on", help="every saga waiting on this compensation")
        command.add_argument(
            "--waiting-service", help="every saga whose waiting compensation calls this service"
        )
        command.add_argument("--action-id", help="a bulk action's id, to run it again")
        if name == "mark-done":
            command.add_argument(
                "--reason", required=True, help="how it was settled (each saga keeps it)"
            )
    commands.add_parser("attention", help="list the orders whose saga waits for an operator")
    list_cmd = commands.add_parser("list", help="list orders by saga state and customer")
    list_cmd.add_argument("--status", choices=SEARCHABLE_STATES, help="e.g. Aborted")
    list_cmd.add_argument("--customer", help="customer id")
    args = parser.parse_args(argv)
    # Bad settings end the process here, before any order is looked at.
    args.settings = load_settings(args, parser.prog)
    return args


async def run(args: argparse.Namespace) -> int:
    """Run one command; bad input is refused before anything is contacted or started."""
    form = order_form(args) if args.command == "place" else None
    if args.command in ("retry-compensation", "mark-done"):
        args.answer = operator_answer(args)
    client = await connect(settings=args.settings)
    await check_codec_agrees(client)
    if form:
        # The root of the order's trace: tokenizing the card, starting the saga, its outcome.
        with traced("place order", order_id=form.order_id):
            return await place(client, args, form)
    commands = {
        "status": status,
        "cancel": cancel,
        "withdraw": withdraw,
        "attention": attention,
        "list": list_orders,
        "retry-compensation": resolve,
        "mark-done": resolve,
    }
    return await commands[args.command](client, args)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `order-saga-starter`."""
    args = parse_args(argv)
    configure_tracing("order-saga-starter", otlp_endpoint=args.settings.otel_exporter_otlp_endpoint)
    run_to_exit(lambda: run_command(args))


def run_command(args: argparse.Namespace) -> int:
    """Run the command; report errors in one line each and return the exit code.

    Raises:
        StartFailure: Temporal cannot be reached (`run_to_exit` reports it).
    """
    try:
        return asyncio.run(run(args))
    except InputError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except CodecMismatch as err:
        print(f"error: {err}; nothing was started", file=sys.stderr)
        return 2
    except UnknownOrder:
        print(f"error: no saga for order {args.order_id}", file=sys.stderr)
        return 1
    except ActionRefused as err:
        print(f"error: refused: {err}", file=sys.stderr)
        return 1
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            print(f"error: no saga for order {args.order_id}", file=sys.stderr)
        else:
            print(
                f"error: Temporal at {args.settings.temporal_address}: {err.message}",
                file=sys.stderr,
            )
        return 1
    except WorkflowQueryFailedError as err:
        print(f"error: the saga of order {args.order_id} did not answer: {err}", file=sys.stderr)
        return 1
    except httpx.HTTPError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    main()
