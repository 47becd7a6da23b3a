"""`order-saga deploy`: the saga's versions, which ones run new sagas, and retiring old ones.

A saga is PINNED to the build that started it. When a new build is made current (or ramps, for
a share of new sagas), sagas already running finish on the old build's workers, which must keep
running until their version has drained (`ops.routing`). A saga waiting for an operator may
keep an old version from draining for days, and a broken build's sagas need a build that can
run them: `recover` moves them (`ops.recovery`).
"""

from __future__ import annotations

import argparse
import functools

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion

from infra.deployment import worker_version
from infra.exits import StartFailure
from infra.settings import Group, Settings
from infra.settings_cli import add_settings, load_settings
from infra.temporal import connect
from ops.recovery import recover
from ops.rollout.control import (
    answer,
    baseline_of,
    follow,
    progress_lines,
    rollout_lines,
    start_rollout,
)
from ops.rollout.plan import Phase, RolloutPlan
from ops.routing import (
    VersionState,
    deployment_status,
    ramp,
    retire,
    rollback,
    set_current,
)


def routing_line(deployment_name: str, states: list[VersionState]) -> str:
    """Where new sagas go: the current version, and the ramping one with its share."""
    current = next((state.build_id for state in states if state.routing == "current"), "none")
    line = f"deployment {deployment_name}, current: {current}"
    for state in states:
        if state.routing == "ramping":
            line += f", ramping: {state.build_id} at {state.ramp:g}%"
    return line


def status_table(states: list[VersionState]) -> str:
    """`deploy status`'s table."""
    lines = [
        f"{'build id':<28} {'routing':<9} {'ramp':>5} {'workers':>7} {'running':>7} "
        f"{'waiting':>7}  drained"
    ]
    for state in states:
        drained = "yes" if state.drained else "no"
        ramp = f"{state.ramp:g}%" if state.routing == "ramping" else "-"
        lines.append(
            f"{state.build_id:<28} {state.routing:<9} {ramp:>5} {state.workers:>7} "
            f"{state.running:>7} {state.waiting:>7}  {drained}"
        )
    return "\n".join(lines)


async def _recover(
    client: Client, args: argparse.Namespace, target: WorkerDeploymentVersion, task_queue: str
) -> None:
    source = WorkerDeploymentVersion(target.deployment_name, args.old)
    recovered = await recover(client, source, target, task_queue, reset=args.reset)
    if not recovered:
        raise StartFailure(f"no saga runs on {args.old}: there is nothing to recover")
    for saga in recovered:
        print(saga)


#: The rollout's options beside --steps: flag, the plan's field, its type, and its help.
ROLLOUT_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--hold", "hold_s", float, "seconds each step holds at least"),
    ("--hold-sagas", "hold_sagas", int, "sagas of the new version that end in a step first"),
    ("--check-every", "check_every_s", float, "seconds between judgements"),
)


def _add_rollout_arguments(action: argparse.ArgumentParser) -> None:
    defaults = RolloutPlan.model_fields
    action.add_argument(
        "--steps",
        type=_shares,
        default=defaults["steps"].default,
        help="shares of new sagas in turn, the last 100 [default: 5,25,100]",
    )
    for flag, name, kind, help_text in ROLLOUT_OPTIONS:
        action.add_argument(
            flag,
            dest=name,
            type=kind,
            default=defaults[name].default,
            help=f"{help_text} [default: %(default)s]",
        )
    action.add_argument(
        "--detach", action="store_true", help="start it and return; deploy status follows it"
    )


def _shares(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give shares such as 5,25,100") from None


async def _rollout(
    client: Client, args: argparse.Namespace, candidate: WorkerDeploymentVersion, task_queue: str
) -> int:
    baseline = await baseline_of(client, candidate.deployment_name, candidate.build_id)
    options = {name: getattr(args, name) for _, name, _, _ in ROLLOUT_OPTIONS}
    try:
        plan = RolloutPlan(
            deployment=candidate.deployment_name,
            task_queue=task_queue,
            candidate=candidate.build_id,
            baseline=baseline,
            steps=args.steps,
            **options,
        )
    except ValidationError as err:
        problem = err.errors()[0]
        flags = {name: flag for flag, name, _, _ in ROLLOUT_OPTIONS} | {"steps": "--steps"}
        raise StartFailure(f"{flags[str(problem['loc'][0])]}: {problem['msg']}") from None
    rollout = await start_rollout(client, plan)
    if args.detach:
        print(f"rollout of {candidate.build_id} started: `order-saga deploy status` follows it")
        return 0
    # Each line as it comes, even into a file or a pipe: whoever watches sees it live.
    ended = await follow(rollout, functools.partial(print, flush=True))
    return 0 if ended.phase is Phase.PROMOTED else 1


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `order-saga deploy` and its actions."""
    parser = commands.add_parser(
        "deploy", help="the saga's versions: which run new sagas, which have drained"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    for name, help_text in (
        (
            "status",
            "each version: its share of new sagas, workers, sagas, whether it drained",
        ),
        ("set-current", "send every new saga to a version (by default this code's build)"),
        ("ramp", "send a share of new sagas to a version (by default this code's build)"),
        ("rollback", "new sagas back to the version before: stop a ramp, or the previous current"),
        ("recover", "move the running sagas of --from onto this code's build"),
        ("rollout", "ramp a version up in steps, judged against the current one, or roll back"),
        ("pause", "hold the rollout under way at its step (it still rolls back on a finding)"),
        ("resume", "let the rollout under way go on to its next steps"),
        ("abort", "roll the rollout under way back now"),
        ("retire", "remove a drained version whose workers have stopped"),
    ):
        action = actions.add_parser(name, help=help_text)
        add_settings(action, Group.TEMPORAL, Group.TLS, Group.CODEC, Group.DEPLOYMENT)
        if name in ("set-current", "ramp", "retire", "rollout"):
            action.add_argument("--build-id", help="the version [default: this code's build]")
        if name == "ramp":
            action.add_argument(
                "--percent", type=float, required=True, help="share of new sagas, 0 < N < 100"
            )
        if name == "rollout":
            _add_rollout_arguments(action)
        if name == "recover":
            action.add_argument("--from", dest="old", required=True, help="their build id")
            action.add_argument(
                "--to", help="the build they go to, this code's [default: this code's build]"
            )
            action.add_argument(
                "--reset",
                action="store_true",
                help="reset a saga whose history does not replay here to its last task that does",
            )


async def run_command(args: argparse.Namespace) -> int:
    """Run `order-saga deploy ACTION`."""
    settings: Settings = load_settings(args, f"order-saga deploy {args.action}")
    client = await connect(settings=settings)
    name, task_queue = settings.deployment_name, settings.task_queue
    this_build = worker_version(settings)
    chosen = WorkerDeploymentVersion(name, getattr(args, "build_id", None) or this_build.build_id)
    if args.action == "status":
        states = await deployment_status(client, name, task_queue)
        print(routing_line(name, states))
        print(status_table(states))
        for line in await rollout_lines(client, name):
            print(line)
    elif args.action == "set-current":
        await set_current(client, chosen, task_queue)
        print(f"{chosen.build_id} is now current: new sagas start on it")
    elif args.action == "ramp":
        await ramp(client, chosen, args.percent, task_queue)
        print(f"{chosen.build_id} ramps: {args.percent:g}% of new sagas start on it")
    elif args.action == "rollback":
        print(await rollback(client, name, task_queue))
    elif args.action == "rollout":
        return await _rollout(client, args, chosen, task_queue)
    elif args.action in ("pause", "resume", "abort"):
        print(progress_lines(await answer(client, name, args.action))[0])
    elif args.action == "recover":
        target = WorkerDeploymentVersion(name, args.to or this_build.build_id)
        await _recover(client, args, target, task_queue)
    else:
        await retire(client, chosen, task_queue)
        print(f"{chosen.build_id} retired")
    return 0
