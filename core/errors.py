"""Every error polybus raises, under one root.

PolybusError
├── ValidationError (also ValueError): bad input, every problem in one error
│   ├── EventValidationError: an event breaks the CloudEvents rules
│   ├── EventTooLargeError: an event is over the configured provider's limit
│   ├── FilterError: a malformed subscription filter
│   ├── ConfigError: a malformed or unknown configuration
│   └── UnsupportedError: asks for a feature the adapter does not declare
├── MissingExtraError (also ImportError): an optional dependency is not installed
├── UnknownProviderError (also ValueError): no adapter of that name is registered
├── PublishError: the provider refused some events (each one named)
└── AdapterError: a provider or transport failure, translated at one place per adapter
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import dataclass

# Values in messages are cut short: an error about a huge or deeply nested
# value must not itself fail or run to megabytes.
_SHORT = reprlib.Repr()
_SHORT.maxstring = 120
_SHORT.maxother = 120
_SHORT.maxlevel = 3


class PolybusError(Exception):
    """Root of every polybus error."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where, what value, which rule."""

    field: str
    value: object
    rule: str

    def __str__(self) -> str:
        return f"{self.field}={_SHORT.repr(self.value)}: {self.rule}"


class ValidationError(PolybusError, ValueError):
    """Bad input; carries every problem found, not just the first."""

    def __init__(self, subject: str, problems: Sequence[Problem]) -> None:
        self.subject = subject
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{subject}: {len(self.problems)} problem(s)\n{lines}")


class EventValidationError(ValidationError):
    """An event breaks the CloudEvents v1.0 rules."""


class EventTooLargeError(ValidationError):
    """An event (or batch) is larger than the configured provider accepts."""


class FilterError(ValidationError):
    """A subscription filter is malformed."""


class ConfigError(ValidationError):
    """A configuration file or value is malformed."""


class UnsupportedError(ValidationError):
    """A subscription or call asks for a capability the adapter does not declare."""


class MissingExtraError(PolybusError, ImportError):
    """An optional dependency is missing; the message is one line with the pip command."""

    def __init__(self, what: str, module: str, extra: str) -> None:
        self.what = what
        self.module = module
        self.extra = extra
        super().__init__(
            f"{what} needs {module}, which is not installed: pip install 'polybus[{extra}]'"
        )


class UnknownProviderError(PolybusError, ValueError):
    """The configured provider has no registered adapter."""

    def __init__(self, name: str, available: Sequence[str]) -> None:
        self.name = name
        self.available = tuple(available)
        super().__init__(
            f"unknown provider {name!r}; available: {', '.join(sorted(self.available))}"
        )


class PublishError(PolybusError):
    """The provider refused some events; `failures` maps event id to the reason."""

    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = dict(failures)
        detail = "; ".join(f"{eid}: {why}" for eid, why in self.failures.items())
        super().__init__(f"{len(self.failures)} event(s) could not be published: {detail}")


class AdapterError(PolybusError):
    """A provider or transport failure, raised from the SDK's own exception."""
