"""Avro binary primitives shared by the hand-written codecs: zig-zag varints, strings, lengths, floats.

Avro writes ints and longs as zig-zag varints and strings/bytes as a long
length then the bytes. The common small values come from a table, so writing
a length is one list index instead of a loop.
"""

from __future__ import annotations

import struct

from polybus.core.codecs.wire import read_varint

_TABLE_HALF = 1024


def zigzag(n: int) -> bytes:
    """The Avro encoding of the long `n` (zig-zag, then base-128 varint)."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# ZZ[n + 1024] is zigzag(n) for -1024 <= n < 1024 (lengths, counts, small ints).
ZZ = [zigzag(n) for n in range(-_TABLE_HALF, _TABLE_HALF)]
HALF = _TABLE_HALF
PACK_D = struct.Struct("<d").pack
PACK_F = struct.Struct("<f").pack
UNPACK_D = struct.Struct("<d").unpack_from
UNPACK_F = struct.Struct("<f").unpack_from


def long_bytes(n: int) -> bytes:
    """zigzag(n), from the table when small."""
    return ZZ[n + HALF] if -HALF <= n < HALF else zigzag(n)


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """(the long at `pos`, the position after it)."""
    n, pos = read_varint(buf, pos)
    return (n >> 1) ^ -(n & 1), pos


def avro_string(value: str) -> bytes:
    """The Avro string: a zig-zag length, then the UTF-8 bytes."""
    raw = value.encode()
    size = len(raw)
    return (ZZ[size + HALF] if size < HALF else zigzag(size)) + raw


def read_text(buf: bytes, pos: int) -> tuple[str, int]:
    """(the Avro string at `pos`, the position after it); ValueError past the end."""
    size = buf[pos]
    if size < 128 and not size & 1:
        pos += 1
        size >>= 1
    else:
        size, pos = read_length(buf, pos)
    end = pos + size
    if end > len(buf):
        raise ValueError("string runs past the end")
    return buf[pos:end].decode(), end


def read_length(buf: bytes, pos: int) -> tuple[int, int]:
    """(the length at `pos`, the position after it); ValueError when negative."""
    size, pos = read_long(buf, pos)
    if size < 0:
        raise ValueError("negative length")
    return size, pos


def read_count(buf: bytes, pos: int) -> tuple[int, int]:
    """A map or array block's item count; a negative one is followed by the block's byte size."""
    count, pos = read_long(buf, pos)
    if count < 0:
        count = -count
        _, pos = read_long(buf, pos)
    return count, pos
