"""Optional dependencies: check them up front and say which extra to install.

A cloud SDK, an emulator's server library or a simulation backend is an
extra (``pip install 'polybus[gcp]'``). Callers check with `require` before
any long work starts, so a missing extra is one line with the pip command,
never a traceback halfway through.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from polybus.core.errors import MissingExtraError


@dataclass(frozen=True)
class Requirement:
    """Modules that must be importable for `what`, and the extra that installs them."""

    what: str
    modules: tuple[str, ...]
    extra: str

    def missing(self) -> str | None:
        """The first module that cannot be found, or None when all are installed."""
        for module in self.modules:
            if not _installed(module):
                return module
        return None

    def check(self) -> None:
        """Raise MissingExtraError naming the first missing module and the pip command."""
        module = self.missing()
        if module is not None:
            raise MissingExtraError(self.what, module, self.extra)


def require(what: str, modules: tuple[str, ...], extra: str) -> None:
    """Raise MissingExtraError unless every module in `modules` can be imported."""
    Requirement(what, modules, extra).check()


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing or broken
        return False
