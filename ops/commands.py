"""The operational commands that check, measure and deploy the stack.

Audit, bench, chaos, deploy, the operator drill and the soak.

Each module gives `add_command(subparsers)` and `async run_command(args) -> exit code`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import Any

from ops import audit, bench, chaos, deploy, operator_drill, soak

AddCommand = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
RunCommand = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

#: Command name -> how to add it to the parser, how to run it.
COMMANDS: dict[str, tuple[AddCommand, RunCommand]] = {
    "audit": (audit.add_command, audit.run_command),
    "bench": (bench.add_command, bench.run_command),
    "chaos": (chaos.add_command, chaos.run_command),
    "deploy": (deploy.add_command, deploy.run_command),
    "operator-drill": (operator_drill.add_command, operator_drill.run_command),
    "soak": (soak.add_command, soak.run_command),
}
