"""QDP/1, the qitcore device protocol (``firmware_interface/PROTOCOL.md``): constants, CRC-32C,
frame encoding, the resynchronising decoder and the payload parsers, for device drivers and tools.

The parsers return the core's result classes (:class:`SampleFormat`, :class:`DeviceStatus`,
:class:`DeviceInfo`, :class:`Reply`; the decoder's counts are :class:`DecoderStats`): read-only
attributes, which also answer ``result["name"]`` as the dictionaries they replace did.

>>> frame = encode_frame(COMMAND, 0, command_payload(Command.INFO, tag=1))
>>> FrameDecoder().feed(frame)[0][:3]
('frame', 129, 0)
"""

from __future__ import annotations

from enum import IntEnum

from ._core import (
    DecoderStats,
    DeviceInfo,
    DeviceStatus,
    FrameDecoder,
    Reply,
    SampleFormat,
    crc32c,
    encode_frame,
    format_descriptor,
    parse_format,
    parse_info,
    parse_reply,
    parse_status,
)

__all__ = [
    "COMMAND",
    "DATA",
    "MAGIC",
    "MAX_PAYLOAD",
    "REPLY",
    "STATUS",
    "Command",
    "DecoderStats",
    "DeviceInfo",
    "DeviceStatus",
    "FrameDecoder",
    "Reply",
    "Result",
    "SampleFormat",
    "command_payload",
    "crc32c",
    "encode_frame",
    "format_descriptor",
    "parse_format",
    "parse_info",
    "parse_reply",
    "parse_status",
]

MAGIC = b"\xa5\x51"
MAX_PAYLOAD = 8192
DATA, STATUS, REPLY, COMMAND = 0x01, 0x02, 0x03, 0x81


class Command(IntEnum):
    """Command codes (PROTOCOL.md §5)."""

    INFO = 1
    START = 2
    STOP = 3
    CONFIGURE = 4
    STATUS = 5
    SELF_TEST = 6
    RESET = 7


class Result(IntEnum):
    """Reply result codes."""

    OK = 0
    UNKNOWN_COMMAND = 1
    BAD_ARGUMENT = 2
    NOT_NOW = 3
    FAILED = 4


def command_payload(code: int, tag: int, args: bytes = b"") -> bytes:
    """A COMMAND payload: code, tag, arguments."""
    if not (0 <= code <= 255 and 0 <= tag <= 255):
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(f"command: code and tag are bytes, got {code}, {tag}")
    return bytes([code, tag]) + bytes(args)
