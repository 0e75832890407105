"""Avro binary encoder and decoder generated for one schema (Python source, compiled once).

fastavro's schemaless path interprets the schema for every record, which
dominates for small records. Here the schema is turned into straight-line
Python once (as `dataclasses` and `attrs` generate methods): one statement per
field, lengths from a table, floats through a prebuilt `struct`. The bytes are
Avro binary exactly as any Avro implementation writes them (tests check both
directions against fastavro).

Covered: primitives, records, enums, arrays, maps, fixed, and unions whose
branches Python types tell apart (``["null", X]`` and the like). Anything else
(logical types, recursive types, ambiguous unions) raises `Unsupported`, and
the caller uses fastavro for that schema. Whatever goes wrong inside comes out
as a ValueError: data that does not fit the schema, or bytes that are not it.

Writers are a little stricter than fastavro's: an Avro int or long takes a
Python int (not a float), a string takes a str.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from polybus.core.codecs import avro_wire

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes], Any]

_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
_TYPE_TEST = {  # union branch -> a test on the value `v`, exact types before loose ones
    "null": "{v} is None",
    "boolean": "type({v}) is bool",
    "int": "type({v}) is int",
    "long": "type({v}) is int",
    "string": "type({v}) is str",
    "bytes": "type({v}) is bytes",
    "fixed": "type({v}) is bytes",
    "enum": "type({v}) is str",
    "record": "type({v}) is dict",
    "map": "type({v}) is dict",
    "array": "type({v}) is list",
    "float": "type({v}) is float or type({v}) is int",
    "double": "type({v}) is float or type({v}) is int",
}


class Unsupported(Exception):
    """The schema uses something the generator does not cover (use fastavro instead)."""


class _Generator:
    def __init__(self) -> None:
        self.named: dict[str, Any] = {}
        self.open: set[str] = set()
        self.constants: dict[str, Any] = {}
        self.counter = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def constant(self, value: Any) -> str:
        name = self.var("_c")
        self.constants[name] = value
        return name

    def resolve(self, schema: Any, namespace: str) -> tuple[Any, str]:
        """(the schema with name references replaced, its namespace)."""
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
            if full in self.open or schema in self.open:
                raise Unsupported(f"recursive type {schema}")
            found = self.named.get(full, self.named.get(schema))
            if found is None:
                raise Unsupported(f"unknown type {schema}")
            return found
        if isinstance(schema, dict) and schema.get("type") in ("record", "error", "enum", "fixed"):
            name = schema["name"]
            space = schema.get("namespace", namespace)
            full = name if "." in name or not space else f"{space}.{name}"
            self.named[full] = self.named[name] = (schema, full.rpartition(".")[0])
            return schema, full.rpartition(".")[0]
        if isinstance(schema, dict) and schema.get("logicalType"):
            raise Unsupported(f"logical type {schema['logicalType']}")
        return schema, namespace

    @staticmethod
    def kind(schema: Any) -> str:
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, dict):
            kind = schema["type"]
            return kind if isinstance(kind, str) and kind != "error" else "record"
        return str(schema)

    # --- encoder -------------------------------------------------------------------------
    # enc() appends the statements a value needs (checks, local names) to `lines` and
    # returns the expressions of its bytes, in order; the caller joins them in one
    # b"".join, which is about twice as fast as appending piece by piece.

    def enc(self, schema: Any, expr: str, ns: str, lines: list[str], ind: str) -> list[str]:
        schema, ns = self.resolve(schema, ns)
        if isinstance(schema, dict) and not isinstance(schema["type"], str):
            schema = schema["type"]  # {"type": {...}}: a wrapped type
            return self.enc(schema, expr, ns, lines, ind)
        kind = self.kind(schema)
        if isinstance(schema, dict) and kind in _PRIMITIVES:
            return self.enc(kind, expr, ns, lines, ind)
        add = lines.append
        if kind == "null":
            add(f"{ind}if {expr} is not None: raise TypeError('null expected')")
            return []
        if kind == "boolean":
            return [f"(b'\\x01' if {expr} else b'\\x00')"]
        if kind in ("int", "long"):
            n = self.var("n")
            add(f"{ind}{n} = {expr}")
            add(f"{ind}if type({n}) is not int and type({n}) is not bool: raise TypeError('int')")
            return [f"(ZZ[{n} + HALF] if -HALF <= {n} < HALF else zigzag({n}))"]
        if kind in ("float", "double"):
            return [f"{'PACK_D' if kind == 'double' else 'PACK_F'}({expr})"]
        if kind in ("string", "bytes"):
            raw, size = self.var("s"), self.var("n")
            if kind == "string":  # str.encode gives bytes; anything else has no encode()
                add(f"{ind}{raw} = {expr}.encode()")
            else:
                add(f"{ind}{raw} = {expr}")
                add(f"{ind}if type({raw}) is not bytes: raise TypeError('bytes expected')")
            add(f"{ind}{size} = len({raw})")
            return [f"(ZZ[{size} + HALF] if {size} < HALF else zigzag({size}))", raw]
        if kind == "fixed":
            raw = self.var("s")
            add(f"{ind}{raw} = {expr}")
            add(f"{ind}if len({raw}) != {int(schema['size'])}: raise ValueError('fixed size')")
            return [raw]
        if kind == "enum":
            index = self.constant(
                {s: avro_wire.long_bytes(i) for i, s in enumerate(schema["symbols"])}
            )
            return [f"{index}[{expr}]"]
        if kind in ("array", "map"):
            return self.enc_repeated(schema, kind, expr, ns, lines, ind)
        if kind == "record":
            return self.enc_record(schema, expr, ns, lines, ind)
        if kind == "union":
            return self.enc_union(schema, expr, ns, lines, ind)
        raise Unsupported(f"type {kind}")

    def enc_repeated(
        self, schema: Any, kind: str, expr: str, ns: str, lines: list[str], ind: str
    ) -> list[str]:
        items, item, parts, out = self.var("a"), self.var("i"), self.var("p"), self.var("o")
        add = lines.append
        add(f"{ind}{items} = {expr}")
        add(f"{ind}if {items}:")
        add(f"{ind}    {parts} = [long_bytes(len({items}))]")
        inner = ind + "        "
        if kind == "array":
            add(f"{ind}    for {item} in {items}:")
            pieces = self.enc(schema["items"], item, ns, lines, inner)
        else:
            key = self.var("k")
            add(f"{ind}    for {key}, {item} in {items}.items():")
            pieces = self.enc("string", key, ns, lines, inner)
            pieces += self.enc(schema["values"], item, ns, lines, inner)
        add(f"{inner}{parts} += ({', '.join(pieces)},)" if pieces else f"{inner}pass")
        add(f"{ind}    {parts}.append(b'\\x00')")
        add(f"{ind}    {out} = b''.join({parts})")
        add(f"{ind}else:")
        add(f"{ind}    {out} = b'\\x00'")
        return [out]

    def enc_record(self, schema: Any, expr: str, ns: str, lines: list[str], ind: str) -> list[str]:
        record = self.var("r")
        lines.append(f"{ind}{record} = {expr}")
        lines.append(f"{ind}if type({record}) is not dict: raise TypeError('record expected')")
        full = f"{ns}.{schema['name']}" if ns and "." not in schema["name"] else schema["name"]
        self.open.add(full)
        pieces: list[str] = []
        for field in schema["fields"]:
            name = repr(field["name"])
            if "default" in field:
                value = f"{record}.get({name}, {self.constant(field['default'])})"
            elif self.nullable(field["type"], ns):
                value = f"{record}.get({name})"  # absent reads as null, as fastavro does
            else:
                value = f"{record}[{name}]"  # absent: KeyError, reported as not fitting
            pieces += self.enc(field["type"], value, ns, lines, ind)
        self.open.discard(full)
        return pieces

    def nullable(self, schema: Any, ns: str) -> bool:
        """True for a union with a null branch (an absent field may be written as null)."""
        if not isinstance(schema, list):
            return False
        return any(self.kind(self.resolve(branch, ns)[0]) == "null" for branch in schema)

    def union_branches(self, schema: list[Any], ns: str) -> list[tuple[int, str, Any]]:
        branches: list[tuple[int, str, Any]] = []
        seen: set[str] = set()
        for index, branch in enumerate(schema):
            resolved, _ = self.resolve(branch, ns)
            kind = self.kind(resolved)
            test = _TYPE_TEST.get(kind)
            if test is None or test in seen:
                raise Unsupported(f"union branches Python types cannot tell apart: {schema}")
            seen.add(test)
            branches.append((index, test, branch))
        return sorted(branches, key=lambda b: " or " in b[1])  # exact type tests first

    def enc_union(
        self, schema: list[Any], expr: str, ns: str, lines: list[str], ind: str
    ) -> list[str]:
        value, out = self.var("u"), self.var("o")
        lines.append(f"{ind}{value} = {expr}")
        keyword = "if"
        for index, test, branch in self.union_branches(schema, ns):
            lines.append(f"{ind}{keyword} {test.format(v=value)}:")
            pieces = [repr(avro_wire.long_bytes(index))]
            if self.kind(self.resolve(branch, ns)[0]) != "null":  # the test already checked None
                pieces += self.enc(branch, value, ns, lines, ind + "    ")
            joined = pieces[0] if len(pieces) == 1 else f"b''.join(({', '.join(pieces)},))"
            lines.append(f"{ind}    {out} = {joined}")
            keyword = "elif"
        lines.append(f"{ind}else: raise TypeError('no union branch for ' + type({value}).__name__)")
        return [out]

    # --- decoder -------------------------------------------------------------------------

    def read_long(self, target: str, lines: list[str], ind: str) -> None:
        byte = self.var("b")
        lines.append(f"{ind}{byte} = buf[pos]")
        lines.append(f"{ind}if {byte} < 128:")
        lines.append(f"{ind}    {target} = ({byte} >> 1) ^ -({byte} & 1)")
        lines.append(f"{ind}    pos += 1")
        lines.append(f"{ind}else:")
        lines.append(f"{ind}    {target}, pos = read_long(buf, pos)")

    def dec(self, schema: Any, target: str, ns: str, lines: list[str], ind: str) -> None:
        schema, ns = self.resolve(schema, ns)
        if isinstance(schema, dict) and not isinstance(schema["type"], str):
            return self.dec(schema["type"], target, ns, lines, ind)
        kind = self.kind(schema)
        add = lines.append
        if kind == "null":
            add(f"{ind}{target} = None")
        elif kind == "boolean":
            add(f"{ind}{target} = buf[pos] == 1")
            add(f"{ind}pos += 1")
        elif kind in ("int", "long"):
            self.read_long(target, lines, ind)
        elif kind in ("float", "double"):
            width, unpack = (8, "UNPACK_D") if kind == "double" else (4, "UNPACK_F")
            add(f"{ind}{target} = {unpack}(buf, pos)[0]")
            add(f"{ind}pos += {width}")
        elif kind in ("string", "bytes", "fixed"):
            size, tail = self.var("n"), ".decode()" if kind == "string" else ""
            if kind == "fixed":
                add(f"{ind}{size} = {int(schema['size'])}")
            else:  # a length under 64 is one even byte: read it inline
                byte = self.var("b")
                add(f"{ind}{byte} = buf[pos]")
                add(f"{ind}if {byte} < 128 and not {byte} & 1:")
                add(f"{ind}    {size} = pos + 1 + ({byte} >> 1)")
                add(f"{ind}    {target} = buf[pos + 1 : {size}]{tail}")
                add(f"{ind}    pos = {size}")
                add(f"{ind}else:")
                add(f"{ind}    {size}, pos = read_long(buf, pos)")
                add(f"{ind}    if {size} < 0: raise ValueError('negative length')")
                ind += "    "
            add(f"{ind}{target} = buf[pos : pos + {size}]{tail}")
            add(f"{ind}pos += {size}")
        elif kind == "enum":
            symbols, index = self.constant(tuple(schema["symbols"])), self.var("e")
            self.read_long(index, lines, ind)
            add(f"{ind}{target} = {symbols}[{index}]")
        elif kind in ("array", "map"):
            self.dec_repeated(schema, kind, target, ns, lines, ind)
        elif kind == "record":
            full = f"{ns}.{schema['name']}" if ns and "." not in schema["name"] else schema["name"]
            self.open.add(full)
            names = []
            for field in schema["fields"]:
                names.append((field["name"], self.var("f")))
                self.dec(field["type"], names[-1][1], ns, lines, ind)
            self.open.discard(full)
            add(f"{ind}{target} = {{{', '.join(f'{n!r}: {v}' for n, v in names)}}}")
        elif kind == "union":
            index = self.var("x")
            if len(schema) <= 63:  # the branch index is one byte: 2 * index
                add(f"{ind}{index} = buf[pos] >> 1 if buf[pos] < 128 and not buf[pos] & 1 else -1")
                add(f"{ind}pos += 1")
            else:
                self.read_long(index, lines, ind)
            keyword = "if"
            for number, branch in enumerate(schema):
                add(f"{ind}{keyword} {index} == {number}:")
                self.dec(branch, target, ns, lines, ind + "    ")
                keyword = "elif"
            add(f"{ind}else: raise ValueError('union index out of range')")
        else:
            raise Unsupported(f"type {kind}")

    def dec_repeated(
        self, schema: Any, kind: str, target: str, ns: str, lines: list[str], ind: str
    ) -> None:
        count, item = self.var("c"), self.var("i")
        add = lines.append
        add(f"{ind}{target} = {'[]' if kind == 'array' else '{}'}")
        add(f"{ind}while True:")
        self.read_long(count, lines, ind + "    ")
        add(f"{ind}    if not {count}: break")
        add(f"{ind}    if {count} < 0:")
        add(f"{ind}        {count} = -{count}")
        add(f"{ind}        _, pos = read_long(buf, pos)")
        add(f"{ind}    for _ in range({count}):")
        inner = ind + "        "
        if kind == "array":
            self.dec(schema["items"], item, ns, lines, inner)
            add(f"{inner}{target}.append({item})")
        else:
            key = self.var("k")
            self.dec("string", key, ns, lines, inner)
            self.dec(schema["values"], item, ns, lines, inner)
            add(f"{inner}{target}[{key}] = {item}")


def generate(schema: Any) -> tuple[Encoder, Decoder]:
    """(encode, decode) functions for `schema`; Unsupported when it needs fastavro."""
    gen = _Generator()
    enc_lines = ["def encode(data):", "  try:"]
    pieces = gen.enc(schema, "data", "", enc_lines, "    ")
    enc_lines += [
        f"    return b''.join(({', '.join(pieces)},))" if pieces else "    return b''",
        "  except (TypeError, ValueError, KeyError, AttributeError, struct_error) as exc:",
        "    raise ValueError(f'data does not fit the Avro schema: {exc!r}') from exc",
    ]
    gen = _Generator() if not gen.named else _reset(gen)
    dec_lines = ["def decode(buf):", "  try:", "    pos = 0"]
    gen.dec(schema, "value", "", dec_lines, "    ")
    dec_lines += [
        "    if pos != len(buf): raise ValueError(f'{len(buf) - pos} bytes left over')",
        "    return value",
        "  except (ValueError, IndexError, struct_error, UnicodeDecodeError) as exc:",
        "    raise ValueError(f'not Avro binary of the schema: {exc!r}') from exc",
    ]
    namespace: dict[str, Any] = {
        "ZZ": avro_wire.ZZ,
        "HALF": avro_wire.HALF,
        "zigzag": avro_wire.zigzag,
        "long_bytes": avro_wire.long_bytes,
        "read_long": avro_wire.read_long,
        "PACK_D": avro_wire.PACK_D,
        "PACK_F": avro_wire.PACK_F,
        "UNPACK_D": avro_wire.UNPACK_D,
        "UNPACK_F": avro_wire.UNPACK_F,
        "struct_error": struct.error,
        **gen.constants,
    }
    # The source is built above from the schema; names and values are quoted with repr.
    exec(compile("\n".join(enc_lines + dec_lines), "<avro codec>", "exec"), namespace)
    return namespace["encode"], namespace["decode"]


def _reset(gen: _Generator) -> _Generator:
    fresh = _Generator()
    fresh.constants = gen.constants
    fresh.counter = gen.counter
    return fresh
