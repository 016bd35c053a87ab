"""Protocol buffer wire encoding of a generated value tree, field by field from the descriptor.

The fuzz strategies build plain trees (``{field name: value}``) rather than messages, because a
message object refuses what an attacker can still put on the wire: a lone surrogate or any other
invalid UTF-8 in a string field (``Raw``), an enum number the schema does not define, a Timestamp
outside its documented range. This module turns such a tree into the bytes a client would send.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_VARINT = {
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_BOOL, FieldDescriptor.TYPE_ENUM,
}  # fmt: skip
_ZIGZAG = {FieldDescriptor.TYPE_SINT32: 32, FieldDescriptor.TYPE_SINT64: 64}
_FIXED = {
    FieldDescriptor.TYPE_FIXED32: "<I", FieldDescriptor.TYPE_SFIXED32: "<i", FieldDescriptor.TYPE_FLOAT: "<f",
    FieldDescriptor.TYPE_FIXED64: "<Q", FieldDescriptor.TYPE_SFIXED64: "<q", FieldDescriptor.TYPE_DOUBLE: "<d",
}  # fmt: skip


@dataclass(frozen=True)
class Raw:
    """Bytes sent as they are in a string field: what a message object would refuse to encode."""

    data: bytes

    def __repr__(self) -> str:
        return f"Raw({self.data[:64]!r}{'…' if len(self.data) > 64 else ''})"


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers: two's complement on 64 bits, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _delimited(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def _scalar(field: FieldDescriptor, value: Any) -> tuple[int, bytes]:
    """(wire type, encoded value) of one scalar."""
    if field.type in _VARINT:
        return 0, _varint(int(value))
    if field.type in _ZIGZAG:
        bits = _ZIGZAG[field.type]
        return 0, _varint((value << 1) ^ (value >> (bits - 1)))
    fmt = _FIXED[field.type]
    return (5 if fmt[1] in "Iif" else 1), struct.pack(fmt, value)


def _text(value: str | bytes | Raw) -> bytes:
    if isinstance(value, Raw):
        return value.data
    # A lone surrogate in a str goes out as the bytes it stands for: invalid UTF-8, as sent.
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def _one(field: FieldDescriptor, value: Any) -> bytes:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _delimited(field.number, encode(field.message_type, value))
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return _delimited(field.number, _text(value))
    wire_type, encoded = _scalar(field, value)
    return _key(field.number, wire_type) + encoded


def encode(descriptor: Descriptor, tree: dict[str, Any]) -> bytes:
    """The wire bytes of ``tree`` as a ``descriptor`` message. Repeated scalars are packed (proto3's
    encoding); a repeated string or message is one record per element."""
    out = bytearray()
    for name, value in tree.items():
        field = descriptor.fields_by_name[name]
        if _is_repeated(field):
            if field.type in _VARINT or field.type in _ZIGZAG or field.type in _FIXED:
                out += _delimited(field.number, b"".join(_scalar(field, item)[1] for item in value))
            else:
                for item in value:
                    out += _one(field, item)
        else:
            out += _one(field, value)
    return bytes(out)


def _is_repeated(field: FieldDescriptor) -> bool:
    # FieldDescriptor.label is deprecated in newer protobuf releases in favour of is_repeated.
    repeated = getattr(field, "is_repeated", None)
    return bool(repeated) if repeated is not None else field.label == FieldDescriptor.LABEL_REPEATED
