"""Compatibility modes as Avro and Confluent-style registries define them, with a readable report.

- backward: consumers on the new version read data written with the old one
  (the new schema is the reader). Upgrade consumers first.
- forward: consumers on the old version read data written with the new one
  (the old schema is the reader). Upgrade producers first.
- full: both. `*_transitive` checks against every earlier version instead of
  only the latest; `none` checks nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from polybus.core.errors import Problem
from polybus.core.schemas import compat_avro, compat_jsonschema
from polybus.core.schemas.model import MODES, Schema


@dataclass(frozen=True)
class Break:
    """One incompatibility: which versions, which direction, where in the data, and why."""

    direction: str  # "backward" (new reads old) or "forward" (old reads new)
    reader: int
    writer: int
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.direction}: v{self.reader} reading v{self.writer} data at {self.path}: {self.reason}"

    def problem(self) -> Problem:
        """As a core.errors.Problem for a ValidationError."""
        return Problem(
            self.path, f"v{self.reader} reads v{self.writer}", f"{self.direction}: {self.reason}"
        )


@dataclass(frozen=True)
class CompatibilityReport:
    """What checking one new version against earlier ones found."""

    event_type: str
    version: int
    mode: str
    against: tuple[int, ...]
    breaks: tuple[Break, ...] = field(default=())

    @property
    def compatible(self) -> bool:
        """True when nothing breaks."""
        return not self.breaks

    def __str__(self) -> str:
        head = f"{self.event_type} v{self.version} ({self.mode}"
        head += (
            f" against v{', v'.join(map(str, self.against))})"
            if self.against
            else ", nothing to check against)"
        )
        if self.compatible:
            return f"{head}: compatible"
        return (
            head + f": {len(self.breaks)} break(s)\n" + "\n".join(f"  - {b}" for b in self.breaks)
        )


def reader_breaks(reader: Schema, writer: Schema) -> list[tuple[str, str]]:
    """(path, reason) for each way `reader` fails to read data written with `writer`."""
    if reader.kind != writer.kind:
        return [
            ("$", f"schema kind changed from {writer.kind} to {reader.kind}: no rules relate them")
        ]
    if reader.kind == "avro":
        return compat_avro.reader_breaks(reader.definition, writer.definition)
    return compat_jsonschema.reader_breaks(reader.definition, writer.definition)


def check_compatibility(new: Schema, earlier: Sequence[Schema], mode: str) -> CompatibilityReport:
    """Check `new` against the earlier versions (ascending) under `mode`."""
    if mode not in MODES:
        raise ValueError(f"unknown compatibility mode {mode!r}; one of {', '.join(MODES)}")
    if mode == "none" or not earlier:
        return CompatibilityReport(new.event_type, new.version, mode, ())
    targets = list(earlier) if mode.endswith("_transitive") else [earlier[-1]]
    base = mode.removesuffix("_transitive")
    breaks: list[Break] = []
    for old in targets:
        if base in ("backward", "full"):
            for path, reason in reader_breaks(new, old):
                breaks.append(Break("backward", new.version, old.version, path, reason))
        if base in ("forward", "full"):
            for path, reason in reader_breaks(old, new):
                breaks.append(Break("forward", old.version, new.version, path, reason))
    return CompatibilityReport(
        new.event_type, new.version, mode, tuple(s.version for s in targets), tuple(breaks)
    )
