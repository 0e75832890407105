"""Which provider to use and its settings, from polybus.toml and the environment.

Resolution order: an explicit path (``--config``), else ``POLYBUS_CONFIG``,
else ``./polybus.toml`` when it exists, else built-in defaults (the embedded
``local`` provider). ``POLYBUS_PROVIDER`` overrides the file's provider, so
switching clouds is one line in the file or one variable in the environment.

    provider = "aws"            # the one line that moves a service

    [aws]                       # one table per provider; only the chosen one is used
    region = "eu-west-1"
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polybus.core.errors import ConfigError, Problem

DEFAULT_PROVIDER = "local"
DEFAULT_FILE = "polybus.toml"
ENV_CONFIG = "POLYBUS_CONFIG"
ENV_PROVIDER = "POLYBUS_PROVIDER"
MASK = "********"


@dataclass(frozen=True)
class Config:
    """The effective configuration: provider, every provider's table, where it came from."""

    provider: str = DEFAULT_PROVIDER
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = "defaults"

    def settings(self, provider: str | None = None) -> Mapping[str, Any]:
        """The settings table of `provider` (default: the chosen one), empty when absent."""
        return self.providers.get(provider or self.provider, {})

    def masked(self, secret_keys: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
        """A printable copy with every secret value replaced by a mask."""
        tables: dict[str, Any] = {}
        for name, table in self.providers.items():
            secrets = set(secret_keys.get(name, ()))
            tables[name] = {k: (MASK if k in secrets else v) for k, v in table.items()}
        return {"provider": self.provider, "source": self.source, **tables}


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Resolve and validate the configuration; ConfigError names file, key and rule."""
    env = os.environ if environ is None else environ
    chosen = path or env.get(ENV_CONFIG)
    if chosen is None and Path(DEFAULT_FILE).is_file():
        chosen = DEFAULT_FILE
    config = Config() if chosen is None else parse_config_file(Path(chosen))
    override = env.get(ENV_PROVIDER)
    if override:
        config = Config(override.strip(), config.providers, f"{config.source} + ${ENV_PROVIDER}")
    return config


def parse_config_file(path: Path) -> Config:
    """Read one TOML file into a Config."""
    if not path.is_file():
        raise ConfigError(
            "cannot read configuration", [Problem(str(path), None, "file does not exist")]
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"malformed configuration {path}", [Problem(str(path), None, f"invalid TOML: {exc}")]
        ) from exc
    return parse_config(raw, source=str(path))


def parse_config(raw: Mapping[str, Any], source: str = "<dict>") -> Config:
    """Validate a parsed TOML document: a `provider` string and one table per provider."""
    problems = []
    provider = raw.get("provider", DEFAULT_PROVIDER)
    if not isinstance(provider, str) or not provider:
        problems.append(Problem(f"{source}: provider", provider, "must be a non-empty string"))
    tables: dict[str, Mapping[str, Any]] = {}
    for key, value in raw.items():
        if key == "provider":
            continue
        if isinstance(value, Mapping):
            tables[key] = dict(value)
        else:
            problems.append(
                Problem(
                    f"{source}: {key}",
                    value,
                    "top-level keys are 'provider' and one [table] per provider",
                )
            )
    if problems:
        raise ConfigError(f"malformed configuration {source}", problems)
    return Config(str(provider), tables, source)


def unknown_key_rule(key: str, allowed: Iterable[str]) -> str:
    """The rule for an unknown key: a did-you-mean when one is close, and the keys allowed."""
    known = sorted(allowed)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key; {hint}expected one of {known}"


def check_keys(
    provider: str, settings: Mapping[str, Any], allowed: Mapping[str, type | tuple[type, ...]]
) -> None:
    """Reject unknown keys and wrong types in a provider's table, all problems at once."""
    problems = []
    for key, value in settings.items():
        expected = allowed.get(key)
        if expected is None:
            problems.append(Problem(f"{provider}.{key}", value, unknown_key_rule(key, allowed)))
        elif not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
            names = (
                " or ".join(t.__name__ for t in expected)
                if isinstance(expected, tuple)
                else expected.__name__
            )
            problems.append(Problem(f"{provider}.{key}", value, f"must be {names}"))
    if problems:
        raise ConfigError(f"invalid [{provider}] settings", problems)
