"""Every setting by flag and by environment; flags beat the environment, which beats Temporal's
config profile, which beats the defaults; a bad value is one clear line naming its source."""

from __future__ import annotations

import argparse
import subprocess
import sys
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from infra.keyring import new_key_entry
from infra.settings import Group, Settings, env_of, flag_of
from infra.settings_cli import add_settings, load_settings
from tests.support.paths import ROOT

ORDER_SAGA = str(Path(sys.executable).parent / "order-saga")
#: Settings whose values must have a shape of their own.
SPECIAL = {
    "codec_key_id": "k-sample",
    "event_bus": "sqlite:///tmp/sample-events.db",
    "temporal_address": "temporal.example:7233",
    "metrics_address": "0.0.0.0:9464",
}


def sample(name: str, annotation: Any, a_file: Path) -> tuple[str, Any]:
    """A value for a setting, as typed on a command line, and as the model holds it."""
    if name in SPECIAL:
        return SPECIAL[name], SPECIAL[name]
    if name == "codec_keys":
        entry = new_key_entry("k-other")
        return entry, SecretStr(entry)
    kinds = set(typing.get_args(annotation)) or {annotation}
    if Path in kinds:
        return str(a_file), a_file
    if int in kinds:
        return "4321", 4321
    if timedelta in kinds:
        return "PT90M", timedelta(minutes=90)
    if SecretStr in kinds:
        return "s3cret", SecretStr("s3cret")
    if typing.get_origin(annotation) is typing.Literal:
        choice = typing.get_args(annotation)[-1]
        return choice, choice
    return f"sample-{name}", f"sample-{name}"


def same(a: Any, b: Any) -> bool:
    if isinstance(a, SecretStr) and isinstance(b, SecretStr):
        return a.get_secret_value() == b.get_secret_value()
    return bool(a == b)


@pytest.fixture
def samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, Any]]:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_of(name), raising=False)
    a_file = tmp_path / "a-file.pem"
    a_file.write_text("-")
    values = {
        name: sample(name, field.annotation, a_file)
        for name, field in Settings.model_fields.items()
        if field.annotation not in (bool, bool | None)
    }
    # A file of keys in the keyring's format, as codec_key_file.
    keys = tmp_path / "keys"
    keys.write_text(new_key_entry("k-sample") + "\n")
    values["codec_key_file"] = (str(keys), keys)
    # A Temporal config file that has the sample profile.
    profile = tmp_path / "temporal.toml"
    profile.write_text(f"[profile.{values['temporal_profile'][0]}]\n")
    values["temporal_config_file"] = (str(profile), profile)
    # Overrides name a service the saga calls.
    values["service_url_overrides"] = ("payment=http://pay.example/v1",) * 2
    return values


def test_a_service_url_override_replaces_that_service_only() -> None:
    settings = Settings(services_url="http://s:1", service_url_overrides="payment=http://p/v1")

    assert settings.service_urls["payment"] == "http://p/v1"
    assert settings.service_urls["shipping"] == "http://s:1/shipping"


def test_a_service_url_override_must_name_a_service() -> None:
    with pytest.raises(ValueError, match="'paymnt=http://p' must be name=url with name one of"):
        Settings(service_url_overrides="paymnt=http://p")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="test")
    add_settings(p, *Group)
    return p


def test_every_setting_by_flag(samples: dict[str, tuple[str, Any]]) -> None:
    argv = [arg for name, (text, _) in samples.items() for arg in (flag_of(name), text)]
    argv += ["--temporal-tls", "--no-codec-encrypt"]
    settings = load_settings(parser().parse_args(argv))
    for name, (_, wanted) in samples.items():
        assert same(getattr(settings, name), wanted), name
    assert settings.temporal_tls is True and settings.codec_encrypt is False


def test_every_setting_by_environment(
    samples: dict[str, tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, (text, _) in samples.items():
        monkeypatch.setenv(env_of(name), text)
    monkeypatch.setenv("TEMPORAL_TLS", "true")
    monkeypatch.setenv("CODEC_ENCRYPT", "false")
    settings = load_settings(parser().parse_args([]))
    for name, (_, wanted) in samples.items():
        assert same(getattr(settings, name), wanted), name
    assert settings.temporal_tls is True and settings.codec_encrypt is False


def test_flag_beats_environment_beats_profile_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_of(name), raising=False)
    profile = tmp_path / "temporal.toml"
    profile.write_text(
        '[profile.prod]\naddress = "prod:7233"\nnamespace = "orders"\n'
        '[profile.prod.tls]\nserver_name = "temporal.prod"\n'
    )
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(profile))
    monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
    settings = load_settings(parser().parse_args([]))
    assert (settings.temporal_address, settings.temporal_namespace) == ("prod:7233", "orders")
    assert settings.temporal_tls_server_name == "temporal.prod"
    assert settings.task_queue == "order-saga"  # not in the profile: the default
    monkeypatch.setenv("TEMPORAL_ADDRESS", "env:7233")
    assert load_settings(parser().parse_args([])).temporal_address == "env:7233"
    flagged = load_settings(parser().parse_args(["--address", "flag:7233"]))
    assert (flagged.temporal_address, flagged.temporal_namespace) == ("flag:7233", "orders")


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--services-port", "99999"], {}, "--services-port: must be a TCP port, 1 to 65535"),
        ([], {"SERVICES_PORT": "eighty"}, "SERVICES_PORT: Input should be a valid integer"),
        ([], {"LOG_FORMAT": "xml"}, "LOG_FORMAT: Input should be 'auto', 'console' or 'json'"),
        (["--codec-key-file", "/no/such"], {}, "--codec-key-file: no such file: /no/such"),
        ([], {"CODEC_KEYS": "k1:AAAA"}, "CODEC_KEYS, entry 1: key 'k1' has 3 bytes"),
        ([], {"CODEC_ENCRYPT": "maybe"}, "CODEC_ENCRYPT: Input should be a valid boolean"),
        (
            ["--temporal-profile", "nope"],
            {},
            "TEMPORAL_PROFILE / TEMPORAL_CONFIG_FILE: Profile 'nope'",
        ),
        (["--temporal-address", " "], {}, "--temporal-address: must not be blank"),
    ],
)
def test_bad_value_is_one_clear_line(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_of(name), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        load_settings(parser().parse_args(argv), "test")
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"test: error: {message}"), lines


def test_client_cert_needs_its_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("-")
    with pytest.raises(SystemExit):
        load_settings(parser().parse_args(["--temporal-tls-client-cert-path", str(cert)]), "t")
    assert "go together" in capsys.readouterr().err


COMMANDS = {
    "worker.py": ([sys.executable, "worker.py"], {Group.TEMPORAL, Group.TLS, Group.CODEC}),
    "starter.py": ([sys.executable, "starter.py"], {Group.TEMPORAL, Group.TLS, Group.SERVICES}),
    "services": ([ORDER_SAGA, "services"], {Group.SERVICES_SERVER}),
    "codec-server": (
        [ORDER_SAGA, "codec-server"],
        {Group.CODEC, Group.CODEC_SERVER},
    ),
    "demo": ([ORDER_SAGA, "demo"], {Group.DEMO, Group.CODEC}),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_the_settings(command: str) -> None:
    argv, groups = COMMANDS[command]
    shown = subprocess.run(
        [*argv, "--help"], capture_output=True, text=True, cwd=ROOT, check=True, timeout=60
    ).stdout
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra
        assert isinstance(extra, dict)
        if extra["group"] in {g.value for g in groups}:
            assert flag_of(name) in shown and env_of(name) in shown, (command, name)


def test_bad_environment_stops_the_worker_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "worker.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/no/ca.pem"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "worker.py: error: TEMPORAL_TLS_SERVER_CA_CERT_PATH: no such file: /no/ca.pem"
    ]
