"""JSON Schema compatibility: does every document a writer schema allows satisfy a reader schema?

A structural check of the common keywords, not a decision procedure for all of
JSON Schema: type (integer counts as a number), properties, required with
default, additionalProperties, enum/const, items, and the bounds (min/max,
minLength/maxLength, minItems/maxItems, pattern). A property the reader
requires but the writer may omit breaks unless the reader gives it a default
(polybus's tolerant readers fill defaults in). Local ``$ref`` pointers are
followed. Each break names the path and why.
"""

from __future__ import annotations

from typing import Any

Break = tuple[str, str]  # (path, reason)

UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")


def reader_breaks(reader: Any, writer: Any) -> list[Break]:
    """Every reason a document valid for `writer` may be invalid for `reader` (empty: compatible)."""
    return _Checker(reader, writer).check(reader, writer, "$")


def _types(schema: dict[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        if "properties" in schema:
            return None
        return None
    return {kind} if isinstance(kind, str) else set(kind)


class _Checker:
    def __init__(self, reader_root: Any, writer_root: Any) -> None:
        self.reader_root = reader_root
        self.writer_root = writer_root

    def _deref(self, schema: Any, root: Any) -> Any:
        for _ in range(32):  # a ref chain longer than this is a loop
            if not isinstance(schema, dict) or not str(schema.get("$ref", "")).startswith("#"):
                return schema
            node = root
            for part in schema["$ref"][1:].split("/")[1:]:
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
        return schema

    def check(self, reader: Any, writer: Any, path: str) -> list[Break]:
        reader = self._deref(reader, self.reader_root)
        writer = self._deref(writer, self.writer_root)
        if reader is True or reader == {}:
            return []
        if writer is False:
            return []
        if reader is False:
            return [(path, "the reader accepts nothing here")]
        if writer is True:
            writer = {}
        out: list[Break] = []
        out.extend(self._type(reader, writer, path))
        out.extend(self._enum(reader, writer, path))
        out.extend(self._bounds(reader, writer, path))
        if "properties" in reader or "required" in reader or "additionalProperties" in reader:
            out.extend(self._object(reader, writer, path))
        if "items" in reader and isinstance(reader["items"], dict | bool):
            out.extend(self.check(reader["items"], writer.get("items", {}), path + "[]"))
        return out

    def _type(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[Break]:
        rtypes, wtypes = _types(reader), _types(writer)
        if rtypes is None:
            return []
        if wtypes is None:
            return [
                (
                    path,
                    f"the reader now requires type {sorted(rtypes)}; the writer allowed any type",
                )
            ]
        accepted = set(rtypes) | ({"integer"} if "number" in rtypes else set())
        extra = wtypes - accepted
        if extra:
            return [
                (
                    path,
                    f"type changed: written as {sorted(wtypes)}, read as {sorted(rtypes)} ({sorted(extra)} not accepted)",
                )
            ]
        return []

    def _enum(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[Break]:
        allowed = reader.get("enum", [reader["const"]] if "const" in reader else None)
        if allowed is None:
            return []
        written = writer.get("enum", [writer["const"]] if "const" in writer else None)
        if written is None:
            return [(path, f"the reader now restricts values to {allowed}")]
        missing = [v for v in written if v not in allowed]
        if missing:
            return [(path, f"values {missing} removed from the allowed set")]
        return []

    def _bounds(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[Break]:
        out: list[Break] = []
        for key in UPPER:
            if key in reader and (key not in writer or writer[key] > reader[key]):
                out.append(
                    (
                        path,
                        f"{key} tightened to {reader[key]} (writer allowed {writer.get(key, 'no limit')})",
                    )
                )
        for key in LOWER:
            if key in reader and (key not in writer or writer[key] < reader[key]):
                out.append(
                    (
                        path,
                        f"{key} tightened to {reader[key]} (writer allowed {writer.get(key, 'no limit')})",
                    )
                )
        if "pattern" in reader and reader["pattern"] != writer.get("pattern"):
            out.append((path, f"pattern changed to {reader['pattern']!r}"))
        return out

    def _object(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[Break]:
        out: list[Break] = []
        rprops: dict[str, Any] = reader.get("properties", {})
        wprops: dict[str, Any] = writer.get("properties", {})
        wrequired = set(writer.get("required", ()))
        for name in reader.get("required", ()):
            if name in wrequired:
                continue
            prop = self._deref(rprops.get(name, {}), self.reader_root)
            if isinstance(prop, dict) and "default" in prop:
                continue
            why = "optional for the writer" if name in wprops else "absent from the writer's schema"
            out.append(
                (
                    f"{path}.{name}",
                    f"required field without a default, {why}: data written without it is rejected",
                )
            )
        closed = reader.get("additionalProperties", True)
        for name, wprop in wprops.items():
            where = f"{path}.{name}"
            if name in rprops:
                out.extend(self.check(rprops[name], wprop, where))
            elif closed is False:
                out.append(
                    (
                        where,
                        "field removed while the reader forbids unknown fields (additionalProperties: false)",
                    )
                )
            elif isinstance(closed, dict):
                out.extend(self.check(closed, wprop, where))
        if closed is False and writer.get("additionalProperties", True) is not False:
            out.append((path, "the reader forbids unknown fields but the writer allowed them"))
        return out
