"""Temporal's own client config file (`temporal.toml`), read as the base of our settings.

The file is the one the `temporal` CLI and every Temporal SDK read (`TEMPORAL_CONFIG_FILE`, by
default `~/.config/temporalio/temporal.toml`), so one profile can serve both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.envconfig import ClientConfigProfile


class ProfileError(ValueError):
    """The Temporal config file or profile cannot be used; the message says which and why."""


def profile_settings(config_file: str | Path | None, profile: str | None) -> dict[str, Any]:
    """The settings a Temporal config profile gives, by setting name.

    Args:
        config_file: The TOML file, or None for the SDK's default location.
        profile: The profile, or None for `default`.

    Raises:
        ProfileError: The profile is missing, or gives TLS material inline (only paths are
            supported, so that a key never sits in the settings).
    """
    try:
        # Environment overrides are ours to apply (they must beat the file, and flags beat them).
        loaded = ClientConfigProfile.load(
            profile,
            config_source=Path(config_file) if config_file else None,
            disable_env=True,
        )
    except Exception as err:  # the bridge's ConfigError is not importable by a stable name
        where = f" in {config_file}" if config_file else ""
        # The bridge's TOML errors span lines (with a caret drawing); one line is enough here.
        reason = " ".join(str(err).split())
        raise ProfileError(f"TEMPORAL_PROFILE / TEMPORAL_CONFIG_FILE: {reason}{where}") from err
    values: dict[str, Any] = {
        "temporal_address": loaded.address,
        "temporal_namespace": loaded.namespace,
        "temporal_api_key": loaded.api_key,
    }
    if loaded.tls is not None:
        tls = loaded.tls
        values["temporal_tls"] = None if tls.disabled is None else not tls.disabled
        values["temporal_tls_server_name"] = tls.server_name
        for name, source in (
            ("temporal_tls_server_ca_cert_path", tls.server_root_ca_cert),
            ("temporal_tls_client_cert_path", tls.client_cert),
            ("temporal_tls_client_key_path", tls.client_private_key),
        ):
            if source is not None and not isinstance(source, Path):
                raise ProfileError(
                    f"TEMPORAL_PROFILE: profile {profile or 'default'} gives TLS data inline; "
                    "give a path (e.g. client_cert = {path = ...}) instead"
                )
            values[name] = source
    return {name: value for name, value in values.items() if value is not None}
