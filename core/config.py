"""Which provider to use and its settings, from polybus.toml and the environment.

Resolution order: an explicit path (``--config``), else ``POLYBUS_CONFIG``,
else ``./polybus.toml`` when it exists, else built-in defaults (the embedded
``local`` provider). ``POLYBUS_PROVIDER`` overrides the file's provider, so
switching clouds is one line in the file or one variable in the environment.

    provider = "aws"            # the one line that moves a service

    [aws]                       # one table per provider; only the chosen one is used
    region = "eu-west-1"

Secrets are never printed. `Config.masked` (what ``polybus config show``
prints) masks the value of every key an adapter declares secret, of every key
whose name looks secret (`looks_secret`: it contains key, secret, token,
password, passwd, sas, credential, signature, private or connection string, in
any case, whatever the separators, so ``Key`` or ``api-KEY`` too) and every
string value that looks like one (``AccountKey=...``, ``sig=...``, a PEM
block). Errors go further: the value of an unknown key is never echoed (only
the key and the rule), and a known key's value only when it is a short scalar
that looks secret neither by name nor by content (`shown_value`).

The loader speaks only ConfigError: a file that is not UTF-8, cannot be read,
is not TOML, or nests tables or arrays deeper than `MAX_DEPTH` is reported
with the file and the rule.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polybus.core.errors import ConfigError, Problem

DEFAULT_PROVIDER = "local"
DEFAULT_FILE = "polybus.toml"
ENV_CONFIG = "POLYBUS_CONFIG"
ENV_PROVIDER = "POLYBUS_PROVIDER"
MASK = "********"
MAX_DEPTH = 16  # tables and arrays; a provider's settings are a few levels at most
SECRET_WORDS = (
    "key",
    "secret",
    "token",
    "password",
    "passwd",
    "sas",
    "credential",
    "signature",
    "private",
    "connectionstring",
    "connstr",
)
_SECRET_VALUE = re.compile(
    r"(key|secret|password|passwd|pwd|token|sig|signature|credential)\s*=|-----BEGIN|"
    r"sharedaccess|"
    r"://[^/\s@:]*:[^/\s@]+@",  # a URL with a password (postgresql://user:pw@host/db)
    re.IGNORECASE,
)


class _Hidden:
    """Stands for a value an error must not echo (its repr says so)."""

    def __repr__(self) -> str:
        return "<value not shown>"


HIDDEN: object = _Hidden()


def looks_secret(key: object) -> bool:
    """True when a settings key's name looks like it holds a secret (any case or separator)."""
    name = re.sub(r"[^a-z0-9]", "", str(key).lower())
    return any(word in name for word in SECRET_WORDS)


def looks_secret_value(value: object) -> bool:
    """True for a string that looks like a credential (a connection string, SAS, PEM block)."""
    return isinstance(value, str) and _SECRET_VALUE.search(value) is not None


def shown_value(key: object, value: object) -> object:
    """What an error may echo of a known key's value: the value, or HIDDEN.

    Only short scalars (bool, int, float, str up to 200 characters) under a key
    that does not look secret and that do not look secret themselves are shown.
    """
    if looks_secret(key) or looks_secret_value(value):
        return HIDDEN
    if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 200):
        return value
    return HIDDEN


def unknown_key_problem(field: str, key: object, allowed: Iterable[str]) -> Problem:
    """The problem for an unknown key: the key and the rule, never its value."""
    return Problem(field, HIDDEN, unknown_key_rule(str(key), allowed))


def _mask(key: object, value: Any, secrets: frozenset[str]) -> Any:
    if key in secrets or looks_secret(key) or looks_secret_value(value):
        return MASK
    if isinstance(value, Mapping):
        return {k: _mask(k, v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [MASK if looks_secret_value(v) else _mask(None, v, frozenset()) for v in value]
    return value


@dataclass(frozen=True)
class Config:
    """The effective configuration: provider, every provider's table, where it came from."""

    provider: str = DEFAULT_PROVIDER
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = "defaults"
    #: Where `provider` came from: "file", "environment ($POLYBUS_PROVIDER)" or "default".
    provider_origin: str = "default"

    def settings(self, provider: str | None = None) -> Mapping[str, Any]:
        """The settings table of `provider` (default: the chosen one), empty when absent."""
        return self.providers.get(provider or self.provider, {})

    def masked(self, secret_keys: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
        """A printable copy with every secret-looking value masked (see the module docstring).

        `secret_keys` maps a provider to the keys its adapter declares secret;
        keys and values that look secret are masked in every table, known or not.
        """
        tables: dict[str, Any] = {}
        for name, table in self.providers.items():
            secrets = frozenset(secret_keys.get(name, ()))
            if looks_secret(name):
                tables[name] = MASK
                continue
            tables[name] = {k: _mask(k, v, secrets) for k, v in table.items()}
        provider = MASK if looks_secret_value(self.provider) else self.provider
        return {"provider": provider, "source": self.source, **tables}


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
        config = Config(
            override.strip(),
            config.providers,
            f"{config.source} + ${ENV_PROVIDER}",
            f"environment (${ENV_PROVIDER})",
        )
    return config


def parse_config_file(path: Path) -> Config:
    """Read one TOML file into a Config; every failure is a ConfigError naming the file."""
    where = str(path)
    if not path.is_file():
        raise ConfigError(
            "cannot read configuration", [Problem(where, None, "file does not exist")]
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            "cannot read configuration", [Problem(where, None, f"unreadable: {exc.strerror}")]
        ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"malformed configuration {where}",
            [Problem(where, None, f"not UTF-8 text (byte {exc.start}); TOML files are UTF-8")],
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"malformed configuration {where}", [Problem(where, None, f"invalid TOML: {exc}")]
        ) from exc
    except RecursionError:
        raise ConfigError(
            f"malformed configuration {where}",
            [Problem(where, None, "invalid TOML: nested too deeply to read")],
        ) from None
    return parse_config(raw, source=where)


def _too_deep(value: Any, limit: int) -> bool:
    """True when tables/arrays nest more than `limit` levels (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            if depth >= limit:
                return True
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def parse_config(raw: Mapping[str, Any], source: str = "<dict>") -> Config:
    """Validate a parsed TOML document: a `provider` string and one table per provider."""
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"malformed configuration {source}",
            [Problem(source, type(raw).__name__, "must be a table of settings")],
        )
    problems = []
    provider = raw.get("provider", DEFAULT_PROVIDER)
    if not isinstance(provider, str) or not provider:
        problems.append(
            Problem(
                f"{source}: provider",
                shown_value("provider", provider),
                "must be a non-empty string",
            )
        )
    tables: dict[str, Mapping[str, Any]] = {}
    for key, value in raw.items():
        if key == "provider":
            continue
        if isinstance(value, Mapping) and _too_deep(value, MAX_DEPTH - 1):
            problems.append(
                Problem(f"{source}: {key}", HIDDEN, f"nested deeper than {MAX_DEPTH} levels")
            )
        elif isinstance(value, Mapping):
            tables[str(key)] = dict(value)
        else:
            problems.append(
                Problem(
                    f"{source}: {key}",
                    HIDDEN,
                    "top-level keys are 'provider' and one [table] per provider",
                )
            )
    if problems:
        raise ConfigError(f"malformed configuration {source}", problems)
    return Config(str(provider), tables, source, "file" if "provider" in raw else "default")


def unknown_key_rule(key: str, allowed: Iterable[str]) -> str:
    """The rule for an unknown key: a did-you-mean when one is close, and the keys allowed."""
    known = sorted(allowed)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key; {hint}expected one of {known}"


def check_keys(
    provider: str, settings: Mapping[str, Any], allowed: Mapping[str, type | tuple[type, ...]]
) -> None:
    """Reject unknown keys and wrong types in a provider's table, all problems at once.

    Values are echoed only through `shown_value`: never for unknown keys.
    """
    problems = []
    for key, value in settings.items():
        expected = allowed.get(key)
        if expected is None:
            problems.append(unknown_key_problem(f"{provider}.{key}", key, allowed))
        elif not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
            names = (
                " or ".join(t.__name__ for t in expected)
                if isinstance(expected, tuple)
                else expected.__name__
            )
            problems.append(
                Problem(f"{provider}.{key}", shown_value(key, value), f"must be {names}")
            )
    if problems:
        raise ConfigError(f"invalid [{provider}] settings", problems)


# -- what `polybus config show` shows ------------------------------------------------


@dataclass(frozen=True)
class SettingsSchema:
    """How an adapter reads its table, registered with it (AdapterInfo.settings).

    `parse(table)` validates the table and returns the effective settings with
    defaults filled in (a dataclass), raising ConfigError; `environment` maps a
    key to the variable read when the table leaves the key out.
    """

    parse: Callable[[Mapping[str, Any]], Any]
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Setting:
    """One effective setting: its key, the value used (masked when secret) and its origin."""

    key: str
    value: Any
    origin: str  # "file", "environment ($NAME)" or "default"


@dataclass(frozen=True)
class ProviderSettings:
    """A provider's effective table; `note` says why it has none (e.g. not configured)."""

    name: str
    settings: tuple[Setting, ...]
    chosen: bool
    note: str = ""


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _effective_items(parsed: Any, table: Mapping[str, Any]) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(parsed) and not isinstance(parsed, type):
        return [(f.name, getattr(parsed, f.name)) for f in dataclasses.fields(parsed)]
    return [(str(k), v) for k, v in table.items()]  # a parser without a dataclass: the table


def provider_settings(
    name: str,
    table: Mapping[str, Any],
    schema: SettingsSchema,
    secret_keys: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    *,
    chosen: bool = True,
) -> ProviderSettings:
    """Validate `table` with the adapter's parser; every effective setting with its origin.

    Raises the parser's ConfigError. Secret values (declared, or looking
    secret by key or value) are replaced by MASK; empty ones stay empty.
    """
    env = os.environ if environ is None else environ
    parsed = schema.parse(table)
    secrets = frozenset(secret_keys)
    out = []
    for key, value in _effective_items(parsed, table):
        variable = schema.environment.get(key)
        if key in table:
            origin = "file"
        elif variable is not None and env.get(variable):
            origin = f"environment (${variable})"
        else:
            origin = "default"
        shown = _plain(value)
        if shown not in (None, "", {}, []) and (
            key in secrets
            or (isinstance(shown, str) and (looks_secret(key) or looks_secret_value(shown)))
        ):
            shown = MASK
        elif isinstance(shown, Mapping):
            shown = {k: _mask(k, v, secrets) for k, v in shown.items()}
        out.append(Setting(key, shown, origin))
    return ProviderSettings(name, tuple(out), chosen)


def unknown_provider_problem(field_name: str, name: str, known: Iterable[str]) -> Problem:
    """A provider name no adapter registers: the name, a did-you-mean, the names known."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return Problem(field_name, name, f"no adapter of that name; {hint}registered: {known}")


def misspelt_tables(config: Config, providers: Iterable[str]) -> list[Problem]:
    """Tables whose name is close to, but not, a registered provider (``[gpc]`` for gcp)."""
    known = sorted(providers)
    problems = []
    for name in config.providers:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            problems.append(
                Problem(
                    f"{config.source}: [{name}]",
                    HIDDEN,
                    f"no provider of that name; did you mean [{close[0]}]?",
                )
            )
    return problems
