"""The host side of QDP/1 on a :class:`~qitcore.devices.link.PortLink`: the handshake (STOP,
INFO, optional CONFIGURE, START), commands while streaming (replies come through the pipeline),
and STOP on close."""

from __future__ import annotations

import time
from typing import Any

from .._records import as_dict
from ..errors import DeviceTimeout, ProtocolError, QitError
from ..protocol import (
    COMMAND,
    REPLY,
    Command,
    FrameDecoder,
    Reply,
    Result,
    command_payload,
    encode_frame,
    parse_info,
    parse_reply,
)
from ..stream import QrngStream
from ._registry import Options
from .link import PortLink

__all__ = ["QdpLink"]


class QdpLink(PortLink):
    """A QDP/1 device on ``port``."""

    def __init__(self, port: Any, options: Options, description: str) -> None:
        super().__init__(port, options, description, framed=True)
        self._tag = 0
        self._sequence = 0
        self.before_close.append(lambda: self._send(Command.STOP))

    def _send(self, code: int, args: bytes = b"") -> int:
        self._tag = (self._tag + 1) % 256
        frame = encode_frame(COMMAND, self._sequence, command_payload(code, self._tag, args))
        self._sequence = (self._sequence + 1) % 2**32
        self.write(frame)
        return self._tag

    def _sync_command(self, code: int, args: bytes = b"") -> Reply:
        """A command before streaming: reads the port itself until the reply comes."""
        tag = self._send(code, args)
        decoder = FrameDecoder()
        deadline = time.monotonic() + self.options.timeout
        while time.monotonic() < deadline:
            for event in decoder.feed(self.port.read(4096)):
                if event[0] == "frame" and event[1] == REPLY:
                    reply = parse_reply(event[3])
                    if reply.code == code and reply.tag == tag:
                        return _checked(code, reply)
        stats = decoder.stats()
        if stats.bytes > 0 and stats.frames == 0:
            raise ProtocolError(
                f"{self.description}: answered {Command(code).name} with {stats.bytes} bytes that are not QDP/1 "
                f"frames ({stats.crc_errors} failed CRCs): not a QDP device, or the wrong port"
            )
        raise DeviceTimeout(f"{self.description}: no reply to {Command(code).name} within {self.options.timeout} s")

    def command(self, code: int, args: bytes = b"") -> Reply:
        """A command; while streaming, the reply comes through the pipeline."""
        if self._core is None:
            return self._sync_command(code, args)
        tag = self._send(code, args)
        reply = self._core.reply(code, tag, self.options.timeout)
        if reply is None:
            raise DeviceTimeout(f"{self.description}: no reply to {Command(code).name} within {self.options.timeout} s")
        return _checked(code, reply)

    def open(self, raw: bool, format_args: bytes | None = None) -> QrngStream:
        """Handshake, then streaming. ``format_args``: a format descriptor to CONFIGURE first."""
        try:
            self._sync_command(Command.STOP)
            if format_args is not None:
                self._sync_command(Command.CONFIGURE, format_args)
            info = parse_info(self._sync_command(Command.INFO).data)
        except QitError:
            self.port.close()
            raise
        fmt = info.format
        claimed = info.claimed_min_entropy or None
        try:
            if claimed is not None and claimed > fmt.bits_per_sample and self.options.min_entropy is None:
                # A number from the device is checked like one from the user: the claim drives
                # the health cutoffs and the output length.
                raise ProtocolError(
                    f"{self.description}: the device claims {claimed:g} bits of min-entropy per "
                    f"{fmt.bits_per_sample}-bit sample; give min_entropy= to use it"
                )
            core = self.options.core_stream(
                fmt.bits_per_sample, fmt.packing, fmt.bitorder, fmt.rate, raw=raw, min_entropy=claimed
            )
        except QitError:
            self.port.close()
            raise
        # A stream's info is a dictionary of what the driver learnt (the device's info block here).
        stream = self.start(core, as_dict(info), raw, claimed)
        try:
            self.command(Command.START)
        except QitError:
            stream.close()
            raise
        return stream


def _checked(code: int, reply: Reply) -> Reply:
    if reply.result != Result.OK:
        try:
            why = Result(reply.result).name
        except ValueError:
            why = f"result {reply.result}"
        raise ProtocolError(f"device refused {Command(code).name}: {why}")
    return reply
