"""The settings as command-line flags: each command adds the groups it takes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

from pydantic import ValidationError

from infra.codec import codec_from_settings
from infra.keyring import KeyringError
from infra.settings import Group, Settings, env_of, flag_of
from infra.temporal_profile import ProfileError


def add_settings(parser: argparse.ArgumentParser, *groups: Group) -> None:
    """Add a flag for every setting in `groups`, one help section per group.

    A flag that is not given leaves no attribute behind (`argparse.SUPPRESS`), so that the
    environment and the Temporal profile can still supply the setting.
    """
    sections: dict[str, argparse._ArgumentGroup] = {}
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra
        assert isinstance(extra, dict)
        group = str(extra["group"])
        if group not in {g.value for g in groups}:
            continue
        section = sections.get(group) or parser.add_argument_group(group)
        sections[group] = section
        # A description that explains its own default says it better than "default none".
        default = "" if field.default is None else f", default {field.default}"
        if "[default" in str(field.description):
            default = ""
        options: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,
            "help": f"{field.description} [env {env_of(name)}{default}]",
        }
        if field.annotation in (bool, bool | None):
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["metavar"] = name.rsplit("_", 1)[-1].upper()
        aliases = extra.get("flags") or []
        assert isinstance(aliases, list)
        section.add_argument(flag_of(name), *map(str, aliases), **options)


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags."""
    return {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}


def load_settings(args: argparse.Namespace | None = None, prog: str | None = None) -> Settings:
    """The settings from flags (if `args`), the environment and Temporal's config profile.

    The payload keys they name are read and checked too. A bad value ends the process with
    exit code 2 and one line per problem, naming the flag or environment variable it came from.
    """
    flags = flag_values(args) if args is not None else {}
    try:
        settings = Settings(**flags)
        codec_from_settings(settings)  # reads and checks the keys now, not at the first payload
        return settings
    except ValidationError as err:
        problems = [describe(error["loc"], error["msg"], flags) for error in err.errors()]
    except (ProfileError, KeyringError) as err:
        problems = [str(err)]
    fail(prog or os.path.basename(sys.argv[0]), problems)


def describe(loc: tuple[int | str, ...], message: str, flags: dict[str, Any]) -> str:
    """One line: where the bad value came from, and what is wrong with it."""
    message = message.removeprefix("Value error, ")
    if not loc:  # a rule over several settings names them itself
        return message
    name = str(loc[0])
    if name in flags:
        source = flag_of(name)
    elif os.environ.get(env_of(name)):
        source = env_of(name)
    else:
        source = f"{env_of(name)} (from the Temporal config profile)"
    return f"{source}: {message}"


def fail(prog: str, problems: list[str]) -> NoReturn:
    """Print each problem on a line of its own and exit with code 2, as argparse does."""
    for problem in problems:
        print(f"{prog}: error: {problem}", file=sys.stderr)
    sys.exit(2)
