"""QDP/1 from Python: the golden vectors (shared with the C reference and the Rust tests) through
qitcore.protocol, and the decoder's behaviour on damaged streams."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import Any

import pytest
from qitcore import protocol
from qitcore._records import as_dict
from qitcore.errors import InvalidArgumentError, InvalidTypeError, ProtocolError, UnsupportedOperationError

GOLDEN = Path(__file__).resolve().parents[1] / "firmware_interface" / "golden_vectors.txt"


def vectors(kind: str) -> list[list[str]]:
    lines = [line.split(" ") for line in GOLDEN.read_text().splitlines() if line and not line.startswith("#")]
    return [t for t in lines if t[0] == kind]


def unhex(s: str) -> bytes:
    return b"" if s == "-" else bytes.fromhex(s)


def _generator() -> Any:
    """firmware_interface/make_golden_vectors.py: the vectors' own, independent CRC-32C."""
    spec = importlib.util.spec_from_file_location("make_golden_vectors", GOLDEN.with_name("make_golden_vectors.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


crc32c_reference = _generator().crc32c


def test_the_vectors_are_the_generators(tmp_path: Path) -> None:
    # The committed file is what the generator writes from PROTOCOL.md.
    _generator().main(tmp_path / "vectors.txt")
    assert (tmp_path / "vectors.txt").read_text() == GOLDEN.read_text()


@pytest.mark.parametrize("vector", vectors("crc"), ids=lambda t: t[1][:12])
def test_crc_vectors(vector: list[str]) -> None:
    assert protocol.crc32c(unhex(vector[1])) == int(vector[2], 16)


def test_crc_against_the_definition() -> None:
    rng = random.Random(1)
    for n in (0, 1, 7, 8, 9, 100, 4099):
        data = rng.randbytes(n)
        assert protocol.crc32c(data) == crc32c_reference(data)


@pytest.mark.parametrize("vector", vectors("frame"), ids=lambda t: t[1])
def test_frame_vectors_encode_and_decode(vector: list[str]) -> None:
    _, _name, kind, seq, payload, frame = vector
    kind_, seq_, payload_, frame_ = int(kind, 16), int(seq, 16), unhex(payload), unhex(frame)
    assert protocol.encode_frame(kind_, seq_, payload_) == frame_
    assert protocol.FrameDecoder().feed(frame_) == [("frame", kind_, seq_, payload_)]
    if kind_ == protocol.STATUS:
        status = protocol.parse_status(payload_)
        assert status.state in ("running", "failed")
        assert status.temperature is None


def test_frame_meanings() -> None:
    frames = {t[1]: (int(t[2], 16), int(t[3], 16), unhex(t[4])) for t in vectors("frame")}
    info = protocol.parse_info(protocol.parse_reply(frames["reply_info"][2]).data)
    assert info.vendor == "qitcore" and info.model == "QDP reference" and info.serial == "REF-0001"
    assert info.claimed_min_entropy == 7.0 and info.format.bits_per_sample == 8 and info.device_class == "qrng"
    failed = protocol.parse_status(frames["status_failed"][2])
    assert failed.state == "failed" and failed.rct_latched and failed.samples_produced == 2**40
    assert frames["status_failed"][1] == 0xFFFFFFFE
    reply = protocol.parse_reply(frames["reply_not_now"][2])
    assert (reply.code, reply.tag, reply.result) == (protocol.Command.START, 9, protocol.Result.NOT_NOW)


def test_status_flags_states_and_temperature_decode() -> None:
    block = bytearray(36)
    block[0:2] = bytes([7, 0b110])  # a state this version does not define; APT latched, overrun
    block[34:36] = (-1234).to_bytes(2, "little", signed=True)
    status = protocol.parse_status(bytes(block))
    assert status.state == "unknown" and not status.rct_latched and status.apt_latched and status.overrun
    assert status.temperature == -12.34


def test_parsed_payloads_are_result_classes_that_still_read_as_mappings() -> None:
    fmt = protocol.parse_format(protocol.format_descriptor(12, "packed", "little", 1000))
    assert isinstance(fmt, protocol.SampleFormat)
    assert (fmt.bits_per_sample, fmt.packing, fmt.bitorder, fmt.rate) == (12, "packed", "little", 1000)
    # The dictionaries they replace: the same names, read by key.
    assert fmt["bitorder"] == "little" and fmt == protocol.parse_format(
        protocol.format_descriptor(12, "packed", "little", 1000)
    )
    assert as_dict(fmt) == {"bits_per_sample": 12, "packing": "packed", "bitorder": "little", "rate": 1000}
    assert repr(fmt) == "SampleFormat(bitorder='little', bits_per_sample=12, packing='packed', rate=1000)"
    reply = protocol.parse_reply(bytes([5, 1, 0, 0, 9, 8]))
    assert reply["data"] == reply.data == b"\x09\x08" and reply["result"] == protocol.Result.OK
    with pytest.raises(KeyError):
        reply["__class__"]
    stats = protocol.FrameDecoder().stats()
    assert isinstance(stats, protocol.DecoderStats) and stats["bytes"] == stats.frames == 0
    with pytest.raises(UnsupportedOperationError):
        protocol.DeviceStatus()


@pytest.mark.parametrize("vector", vectors("stream"), ids=lambda t: t[1])
def test_stream_vectors(vector: list[str]) -> None:
    expect = dict(kv.split("=") for kv in vector[3:])
    d = protocol.FrameDecoder()
    events = []
    data = unhex(vector[2])
    for i in range(0, len(data), 5):  # in pieces, as a transport delivers them
        events += d.feed(data[i : i + 5])
    stats = d.stats()
    assert sum(e[0] == "frame" for e in events) == int(expect["frames"])
    assert stats.crc_errors == int(expect["crc_errors"])
    assert stats.garbage_bytes == int(expect["garbage"])
    assert stats.gaps == int(expect["gaps"])
    assert sum(e[3] for e in events if e[0] == "gap") == int(expect["lost"])


def test_session_replies_parse() -> None:
    for t in vectors("session"):
        for event in protocol.FrameDecoder().feed(unhex(t[5])):
            assert event[0] == "frame"
            if event[1] == protocol.REPLY:
                assert protocol.parse_reply(event[3]).tag > 0


def test_mutated_streams_never_yield_a_corrupted_frame() -> None:
    rng = random.Random(7)
    sent = [(protocol.DATA, i, rng.randbytes(rng.randrange(0, 300))) for i in range(200)]
    clean = b"".join(protocol.encode_frame(*f) for f in sent)
    for trial in range(50):
        data = bytearray(clean)
        for _ in range(rng.randrange(1, 20)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        data[rng.randrange(len(data)) : rng.randrange(len(data))] = rng.randbytes(rng.randrange(0, 100))
        d = protocol.FrameDecoder()
        events = []
        for i in range(0, len(data), 97):
            events += d.feed(bytes(data[i : i + 97]))
        for e in events:
            if e[0] == "frame":
                assert (e[1], e[2], e[3]) in sent, trial


def test_bad_arguments_are_named() -> None:
    with pytest.raises(InvalidArgumentError, match="^payload: "):
        protocol.encode_frame(1, 0, bytes(8193))
    with pytest.raises(ProtocolError, match="status block"):
        protocol.parse_status(b"\x01\x02")
    with pytest.raises(ProtocolError, match="packing"):
        protocol.parse_format(bytes([8, 5, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(InvalidArgumentError, match="^bits_per_sample: "):
        protocol.format_descriptor(17)
    with pytest.raises(InvalidArgumentError, match='^packing: expected one of "packed", "aligned", got "tight"'):
        protocol.format_descriptor(8, "tight")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match='^bitorder: expected one of "big", "little"'):
        protocol.format_descriptor(8, "packed", "middle")  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="^packing: "):
        protocol.format_descriptor(8, 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="^command: "):
        protocol.command_payload(256, 0)
