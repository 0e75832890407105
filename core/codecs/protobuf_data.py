"""Protobuf encoder and decoder generated for one data message type (Python source, compiled once).

`cls(**data).SerializeToString()` and turning a parsed upb message back into
dicts walk the data through the runtime's Python objects, which costs more
than the bytes themselves for small messages. Here the message descriptor
(the one `polybus.core.codecs.data` builds from the Avro record) is turned into
straight-line Python once, as `polybus.core.codecs.avro_data` does for Avro: one
statement per field, nested messages inlined, each message's bytes joined in
one ``b"".join``, lengths and tags from tables, floats through a prebuilt
`struct`. The bytes are what upb writes with ``deterministic=True`` (the same
as without, except that map entries come in a fixed order: `map_order`).

The generated code takes the common case and leaves the rest to the protobuf
runtime, so every input gets upb's answer: encoding gives up on anything but
exact Python types and a dict with every field (a missing key, a tuple for a
list, an int for a bool, ...), decoding on anything but fields in number
order each at most once (unknown fields, unpacked repeated scalars, a message
split in two, truncated bytes, ...). Then the `fallback` functions (upb) run.

Covered: what `polybus.core.codecs.data` builds from Avro: bool, sint32, sint64,
float, double, string, bytes, nested messages, proto3 ``optional``, repeated
fields (scalars packed) and maps with string keys. Anything else raises
`Unsupported`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from polybus.core.codecs.protobuf_wire import UV, varint
from polybus.core.codecs.wire import read_varint

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes], Any]

DOUBLE, FLOAT, BOOL, STRING, MESSAGE, BYTES, SINT32, SINT64 = 1, 2, 8, 9, 11, 12, 17, 18
_WIRE = {DOUBLE: 1, FLOAT: 5, BOOL: 0, STRING: 2, MESSAGE: 2, BYTES: 2, SINT32: 0, SINT64: 0}
_DEFAULTS = {DOUBLE: "0.0", FLOAT: "0.0", BOOL: "False", STRING: "''", BYTES: "b''"}
_DEFAULTS.update({SINT32: "0", SINT64: "0"})
_MASKS = {SINT32: "0xFFFFFFFF", SINT64: "0xFFFFFFFFFFFFFFFF"}
KEY_TAG = b"\x0a"  # a map entry's key: field 1, length-delimited
_PACK_D, _PACK_F = struct.Struct("<d").pack, struct.Struct("<f").pack


class Unsupported(Exception):
    """The message uses something the generator does not cover (use the protobuf runtime)."""


class Slow(ValueError):
    """Raised inside generated code: this value or these bytes take the runtime's path."""


def _zigzag(n: int, bits: int) -> bytes:
    if not -(1 << (bits - 1)) <= n < 1 << (bits - 1):
        raise Slow("out of range")  # the runtime raises its own error for it
    return varint((n << 1) ^ (n >> 63))


def _zz32(n: int) -> bytes:
    return _zigzag(n, 32)


def _zz64(n: int) -> bytes:
    return _zigzag(n, 64)


def _head(tag: bytes, size: int) -> bytes:
    """A field's tag and a length too long for the tables."""
    return tag + (UV[size] if size < 16384 else varint(size))


def _slow() -> Any:
    raise Slow("not the common case")


_HEADS: dict[tuple[bytes, bool], list[bytes]] = {}  # (tag, write empty) -> heads by length
# zigzag varint of each n in [-8192, 8192): ZZV[n + 8192]
_ZZV = [UV[(n << 1) ^ (n >> 63)] for n in range(-8192, 8192)]


def _sints(items: list[Any], bits: int) -> bytes:
    parts = []
    for n in items:
        if type(n) is not int:
            raise Slow("int expected")
        parts.append(_ZZV[n + 8192] if -8192 <= n < 8192 else _zigzag(n, bits))
    return b"".join(parts)


def _bools(items: list[Any]) -> bytes:
    return bytes(1 if x is True else 0 if x is False else _slow() for x in items)


def map_order(key: str) -> bytes:
    """Sort key of upb's deterministic map order: UTF-8 bytes ascending, a key before its prefixes.

    (upb compares the common prefix, then puts the longer key first; 0xFF never
    occurs in UTF-8, so it stands for "after every byte" at the end of a key.)
    """
    return key.encode() + b"\xff"


def _tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def _is_map(field: Any) -> bool:
    nested = field.message_type
    return nested is not None and nested.GetOptions().map_entry


def _repeated(field: Any) -> bool:
    is_repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.29; `label` is gone in 7
    return bool(is_repeated) if is_repeated is not None else field.label == 3


class _Generator:
    def __init__(self) -> None:
        self.constants: dict[str, Any] = {}
        self.counter = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def constant(self, value: Any) -> str:
        name = self.var("_c")
        self.constants[name] = value
        return name

    def heads(self, tag: bytes, zero: bool) -> str:
        """A table: a length-delimited field's tag and length by length (0-127), shared.

        `zero` says whether an empty value is written (presence, repeated, map).
        """
        found = _HEADS.get((tag, zero))
        if found is None:
            found = _HEADS[(tag, zero)] = [tag + UV[n] if n or zero else b"" for n in range(128)]
        return self.constant(found)

    def head(self, tag: bytes, zero: bool, raw: str) -> str:
        """The expression of the tag and length of the bytes named `raw`."""
        size = self.var("n")
        heads = self.heads(tag, zero)
        return f"({heads}[{size}] if ({size} := len({raw})) < 128 else HEAD({tag!r}, {size}))"

    def local(self, expr: str, lines: list[str], ind: str) -> str:
        """A name for the value of `expr`: itself if it is one, else a new local."""
        if expr.isidentifier():
            return expr
        name = self.var("v")
        lines.append(f"{ind}{name} = {expr}")
        return name

    # --- encoder -------------------------------------------------------------------------
    # Each method appends the statements a value needs to `lines` and returns the
    # expressions of its bytes, in order: the message joins them in one b"".join.

    def enc_message(self, descriptor: Any, expr: str, lines: list[str], ind: str) -> list[str]:
        record = self.local(expr, lines, ind)
        fields = list(descriptor.fields)
        lines.append(
            f"{ind}if type({record}) is not dict or len({record}) != {len(fields)}: raise Slow()"
        )
        pieces: list[str] = []
        for field in fields:
            pieces += self.enc_field(field, f"{record}[{field.name!r}]", lines, ind)
        return pieces

    def joined(self, pieces: list[str]) -> str:
        return f"b''.join(({', '.join(pieces)},))" if pieces else "b''"

    def enc_field(self, field: Any, expr: str, lines: list[str], ind: str) -> list[str]:
        kind, number = field.type, field.number
        if kind not in _WIRE:
            raise Unsupported(f"field {field.full_name} of type {kind}")
        if _is_map(field):
            return self.enc_map(field, expr, lines, ind)
        if _repeated(field):
            return self.enc_repeated(field, expr, lines, ind)
        tag = _tag(number, _WIRE[kind])
        if kind == MESSAGE:
            return self.enc_optional_message(field, tag, expr, lines, ind)
        if field.has_presence:
            value, part = self.local(expr, lines, ind), self.var("p")
            lines.append(f"{ind}if {value} is None: {part} = b''")
            lines.append(f"{ind}else:")
            pieces = self.enc_scalar(kind, tag, value, lines, ind + "    ", keep_zero=True)
            lines.append(f"{ind}    {part} = {self.joined(pieces)}")
            return [part]
        return self.enc_scalar(kind, tag, expr, lines, ind, keep_zero=False)

    def enc_scalar(
        self, kind: int, tag: bytes, expr: str, lines: list[str], ind: str, keep_zero: bool
    ) -> list[str]:
        """A singular scalar field; zero values left out unless `keep_zero`."""
        add = lines.append
        if kind == STRING:
            raw = self.var("s")
            add(f"{ind}{raw} = SE({expr})")  # TypeError for anything but a str
            return [self.head(tag, keep_zero, raw), raw]
        if kind == BYTES:
            raw = self.local(expr, lines, ind)
            add(f"{ind}if type({raw}) is not bytes: raise Slow()")
            return [self.head(tag, keep_zero, raw), raw]
        if kind in (DOUBLE, FLOAT):
            packed, zero = ("PACK_D", "Z8") if kind == DOUBLE else ("PACK_F", "Z4")
            if keep_zero:
                return [f"{tag!r} + {packed}({expr})"]
            raw = self.var("d")
            add(f"{ind}{raw} = {packed}({expr})")  # bit patterns: -0.0 is written, as upb does
            return [f"({tag!r} + {raw} if {raw} != {zero} else b'')"]
        value = self.local(expr, lines, ind)
        if kind == BOOL:
            part = self.var("p")
            true, false = tag + b"\x01", tag + b"\x00" if keep_zero else b""
            add(f"{ind}if {value} is True: {part} = {true!r}")
            add(f"{ind}elif {value} is False: {part} = {false!r}")
            add(f"{ind}else: raise Slow()")
            return [part]
        # SINT32, SINT64
        add(f"{ind}if type({value}) is not int: raise Slow()")
        zigzag = "ZZ32" if kind == SINT32 else "ZZ64"
        written = (
            f"{tag!r} + (ZZV[{value} + 8192] if -8192 <= {value} < 8192 else {zigzag}({value}))"
        )
        return [f"({written})" if keep_zero else f"({written} if {value} else b'')"]

    def enc_optional_message(
        self, field: Any, tag: bytes, expr: str, lines: list[str], ind: str
    ) -> list[str]:
        """A singular message field: written (even empty) unless None."""
        value, head, body = self.local(expr, lines, ind), self.var("h"), self.var("b")
        lines.append(f"{ind}if {value} is None: {head} = {body} = b''")
        lines.append(f"{ind}else:")
        inner = ind + "    "
        pieces = self.enc_message(field.message_type, value, lines, inner)
        lines.append(f"{inner}{body} = {self.joined(pieces)}")
        lines.append(f"{inner}{head} = {self.head(tag, True, body)}")
        return [head, body]

    def enc_repeated(self, field: Any, expr: str, lines: list[str], ind: str) -> list[str]:
        kind, tag = field.type, _tag(field.number, 2)
        items = self.local(expr, lines, ind)
        add = lines.append
        add(f"{ind}if type({items}) is not list: {items} = () if {items} is None else SLOW()")
        if kind not in (STRING, BYTES, MESSAGE):  # packed: one length-delimited run
            body = self.var("b")
            if kind in (DOUBLE, FLOAT):
                letter = "d" if kind == DOUBLE else "f"
                add(f"{ind}{body} = PACK(f'<{{len({items})}}{letter}', *{items})")
            elif kind == BOOL:
                add(f"{ind}{body} = BOOLS({items})")
            else:
                add(f"{ind}{body} = SINTS({items}, {32 if kind == SINT32 else 64})")
            return [self.head(tag, False, body), body]
        parts, item, body = self.var("q"), self.var("x"), self.var("b")
        add(f"{ind}{parts} = []")
        add(f"{ind}for {item} in {items}:")
        inner = ind + "    "
        if kind == MESSAGE:
            pieces = self.enc_message(field.message_type, item, lines, inner)
            add(f"{inner}{body} = {self.joined(pieces)}")
        elif kind == STRING:
            add(f"{inner}{body} = SE({item})")
        else:
            add(f"{inner}if type({item}) is not bytes: raise Slow()")
            add(f"{inner}{body} = {item}")
        add(f"{inner}{parts} += ({self.head(tag, True, body)}, {body})")
        return [f"b''.join({parts})"]

    def enc_map(self, field: Any, expr: str, lines: list[str], ind: str) -> list[str]:
        """Entries in `map_order` (upb's deterministic output); key and value always written."""
        entry_type = field.message_type
        key_field = entry_type.fields_by_name["key"]
        value_field = entry_type.fields_by_name["value"]
        if key_field.type != STRING or value_field.type not in _WIRE:
            raise Unsupported(f"map<{key_field.type}, {value_field.type}>")
        tag = _tag(field.number, 2)
        items = self.local(expr, lines, ind)
        parts, key, item, body = self.var("q"), self.var("k"), self.var("x"), self.var("b")
        add = lines.append
        add(f"{ind}if type({items}) is not dict: {items} = {{}} if {items} is None else SLOW()")
        add(f"{ind}{parts} = []")
        add(f"{ind}for {key} in sorted({items}, key=MAP_ORDER):")
        inner = ind + "    "
        add(f"{inner}{item} = {items}[{key}]")
        pieces = self.enc_scalar(STRING, KEY_TAG, key, lines, inner, keep_zero=True)
        value_tag = _tag(2, _WIRE[value_field.type])
        if value_field.type == MESSAGE:
            add(f"{inner}if {item} is None: raise Slow()")
            pieces += self.enc_optional_message(value_field, value_tag, item, lines, inner)
        else:
            pieces += self.enc_scalar(value_field.type, value_tag, item, lines, inner, True)
        add(f"{inner}{body} = {self.joined(pieces)}")
        add(f"{inner}{parts} += ({self.head(tag, True, body)}, {body})")
        return [f"b''.join({parts})"]

    # --- decoder -------------------------------------------------------------------------
    # Fields are read in number order, each where upb writes it; `pos` is shared, `end`
    # is the end of the message being read. Anything else ends in Slow.

    def at_tag(self, tag: bytes, end: str) -> str:
        if len(tag) == 1:
            return f"pos < {end} and buf[pos] == {tag[0]}"
        return f"pos < {end} and buf[pos : pos + {len(tag)}] == {tag!r}"

    def read_length(self, target: str, lines: list[str], ind: str) -> None:
        """`target` = the varint at pos (a length, one byte for short values); pos after it."""
        lines.append(f"{ind}{target} = buf[pos]")
        lines.append(f"{ind}if {target} < 128: pos += 1")
        lines.append(f"{ind}else: {target}, pos = read_varint(buf, pos)")

    def dec_message(
        self, descriptor: Any, target: str, end: str, lines: list[str], ind: str
    ) -> None:
        names = []
        for field in descriptor.fields:
            names.append((field.name, self.var("f")))
            self.dec_field(field, names[-1][1], end, lines, ind)
        lines.append(f"{ind}if pos != {end}: raise Slow()")
        lines.append(f"{ind}{target} = {{{', '.join(f'{n!r}: {v}' for n, v in names)}}}")

    def dec_field(self, field: Any, target: str, end: str, lines: list[str], ind: str) -> None:
        kind = field.type
        add = lines.append
        if _is_map(field):
            return self.dec_map(field, target, end, lines, ind)
        if _repeated(field):
            return self.dec_repeated(field, target, end, lines, ind)
        tag = _tag(field.number, _WIRE[kind])
        add(f"{ind}if {self.at_tag(tag, end)}:")
        add(f"{ind}    pos += {len(tag)}")
        self.dec_value(field, target, lines, ind + "    ")
        default = "None" if field.has_presence else _DEFAULTS.get(kind, "None")
        add(f"{ind}else: {target} = {default}")
        return None

    def dec_value(self, field: Any, target: str, lines: list[str], ind: str) -> None:
        """One value of the field's type at pos (after its tag)."""
        kind = field.type
        add = lines.append
        if kind in (STRING, BYTES, MESSAGE):
            size = self.var("n")
            self.read_length(size, lines, ind)
            if kind == MESSAGE:
                stop = self.var("e")
                add(f"{ind}{stop} = pos + {size}")
                self.dec_message(field.message_type, target, stop, lines, ind)
                return
            tail = ".decode()" if kind == STRING else ""
            add(f"{ind}{target} = buf[pos : pos + {size}]{tail}")
            add(f"{ind}pos += {size}")
        elif kind in (DOUBLE, FLOAT):
            unpack, width = ("UNPACK_D", 8) if kind == DOUBLE else ("UNPACK_F", 4)
            add(f"{ind}{target} = {unpack}(buf, pos)[0]")
            add(f"{ind}pos += {width}")
        elif kind == BOOL:
            raw = self.var("b")
            add(f"{ind}{raw} = buf[pos]")
            add(f"{ind}if {raw} < 128:")
            add(f"{ind}    {target} = {raw} != 0")
            add(f"{ind}    pos += 1")
            add(f"{ind}else:")
            add(f"{ind}    {raw}, pos = read_varint(buf, pos)")
            add(f"{ind}    {target} = {raw} & 0xFFFFFFFFFFFFFFFF != 0")
        else:  # SINT32, SINT64: upb keeps the low 32 or 64 bits, then undoes the zigzag
            raw = self.var("b")
            add(f"{ind}{raw} = buf[pos]")
            add(f"{ind}if {raw} < 128: pos += 1")
            add(f"{ind}else:")
            add(f"{ind}    {raw}, pos = read_varint(buf, pos)")
            add(f"{ind}    {raw} &= {_MASKS[kind]}")
            add(f"{ind}{target} = ({raw} >> 1) ^ -({raw} & 1)")

    def dec_repeated(self, field: Any, target: str, end: str, lines: list[str], ind: str) -> None:
        kind = field.type
        add = lines.append
        tag = _tag(field.number, 2)
        add(f"{ind}{target} = []")
        add(f"{ind}while {self.at_tag(tag, end)}:")
        inner = ind + "    "
        add(f"{inner}pos += {len(tag)}")
        if kind in (STRING, BYTES, MESSAGE):
            item = self.var("i")
            self.dec_value(field, item, lines, inner)
            add(f"{inner}{target}.append({item})")
            return
        size, stop = self.var("n"), self.var("e")
        self.read_length(size, lines, inner)
        add(f"{inner}{stop} = pos + {size}")
        if kind in (DOUBLE, FLOAT):
            width, letter = (8, "d") if kind == DOUBLE else (4, "f")
            add(f"{inner}if {size} % {width}: raise Slow()")
            add(f"{inner}{target} += UNPACK(f'<{{{size} // {width}}}{letter}', buf, pos)")
            add(f"{inner}pos = {stop}")
            return
        item = self.var("i")
        add(f"{inner}while pos < {stop}:")
        self.dec_value(field, item, lines, inner + "    ")
        add(f"{inner}    {target}.append({item})")
        add(f"{inner}if pos != {stop}: raise Slow()")

    def dec_map(self, field: Any, target: str, end: str, lines: list[str], ind: str) -> None:
        entry_type = field.message_type
        key_field, value_field = (
            entry_type.fields_by_name["key"],
            entry_type.fields_by_name["value"],
        )
        add = lines.append
        tag = _tag(field.number, 2)
        size, stop, key, value = self.var("n"), self.var("e"), self.var("k"), self.var("x")
        add(f"{ind}{target} = {{}}")
        add(f"{ind}while {self.at_tag(tag, end)}:")
        inner = ind + "    "
        add(f"{inner}pos += {len(tag)}")
        self.read_length(size, lines, inner)
        add(f"{inner}{stop} = pos + {size}")
        add(f"{inner}if {self.at_tag(KEY_TAG, stop)}:")
        add(f"{inner}    pos += 1")
        self.dec_value(key_field, key, lines, inner + "    ")
        add(f"{inner}else: {key} = ''")
        value_tag = _tag(2, _WIRE[value_field.type])
        if value_field.type == MESSAGE:  # an absent value is the empty message: its defaults
            value_stop = self.var("e")
            add(f"{inner}if {self.at_tag(value_tag, stop)}:")
            add(f"{inner}    pos += 1")
            self.read_length(size, lines, inner + "    ")
            add(f"{inner}    {value_stop} = pos + {size}")
            add(f"{inner}else: {value_stop} = pos")
            self.dec_message(value_field.message_type, value, value_stop, lines, inner)
        else:
            add(f"{inner}if {self.at_tag(value_tag, stop)}:")
            add(f"{inner}    pos += 1")
            self.dec_value(value_field, value, lines, inner + "    ")
            add(f"{inner}else: {value} = {_DEFAULTS[value_field.type]}")
        add(f"{inner}if pos != {stop}: raise Slow()")
        add(f"{inner}{target}[{key}] = {value}")


def source(descriptor: Any) -> tuple[str, dict[str, Any]]:
    """The Python source of `encode` and `decode` for a message type, and its constants."""
    gen = _Generator()
    enc_lines = ["def encode(data):", "  try:"]
    pieces = gen.enc_message(descriptor, "data", enc_lines, "    ")
    enc_lines += [
        f"    return {gen.joined(pieces)}",
        "  except (TypeError, ValueError, KeyError, AttributeError, OverflowError, IndexError,"
        " struct_error):  # anything but the common case: the runtime's answer",
        "    return fallback_encode(data)",
    ]
    dec_lines = [
        "def decode(buf):",
        "  if type(buf) is not bytes: buf = bytes(buf)",
        "  try:",
        "    pos = 0",
        "    end = len(buf)",
    ]
    gen.dec_message(descriptor, "value", "end", dec_lines, "    ")
    dec_lines += [
        "    return value",
        "  except (ValueError, IndexError, struct_error):  # not the common layout",
        "    return fallback_decode(buf)",
    ]
    return "\n".join(enc_lines + dec_lines), gen.constants


def generate(
    descriptor: Any, fallback_encode: Encoder, fallback_decode: Decoder
) -> tuple[Encoder, Decoder]:
    """(encode, decode) for a message type; the fallbacks (upb) take what the fast path leaves.

    Unsupported when the message has a field type the generator does not cover.
    """
    text, constants = source(descriptor)
    namespace: dict[str, Any] = {
        "SE": str.encode,
        "PACK_D": _PACK_D,
        "PACK_F": _PACK_F,
        "UNPACK_D": struct.Struct("<d").unpack_from,
        "UNPACK_F": struct.Struct("<f").unpack_from,
        "PACK": struct.pack,
        "UNPACK": struct.unpack_from,
        "Z8": bytes(8),
        "Z4": bytes(4),
        "ZZV": _ZZV,
        "ZZ32": _zz32,
        "ZZ64": _zz64,
        "SINTS": _sints,
        "BOOLS": _bools,
        "SLOW": _slow,
        "HEAD": _head,
        "MAP_ORDER": map_order,
        "Slow": Slow,
        "read_varint": read_varint,
        "struct_error": struct.error,
        "fallback_encode": fallback_encode,
        "fallback_decode": fallback_decode,
        **constants,
    }
    # The source is built above from the descriptor; names and values are quoted with repr.
    exec(compile(text, "<protobuf data codec>", "exec"), namespace)
    return namespace["encode"], namespace["decode"]
