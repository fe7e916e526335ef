"""Writes golden_vectors.txt: QDP/1 frames byte for byte with their meaning, computed from
PROTOCOL.md alone (its own bit-at-a-time CRC-32C, struct packing), independently of the Rust and C
implementations that the vectors check. Run: python3 firmware_interface/make_golden_vectors.py
"""

from __future__ import annotations

import struct
from pathlib import Path

MAGIC = b"\xa5\x51"
DATA, STATUS, REPLY, COMMAND = 0x01, 0x02, 0x03, 0x81
INFO, START, STOP, CONFIGURE, STATUS_CMD, SELF_TEST, RESET = range(1, 8)


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF


def frame(kind: int, seq: int, payload: bytes) -> bytes:
    body = struct.pack("<BBIH", 1, kind, seq, len(payload)) + payload
    return MAGIC + body + struct.pack("<I", crc32c(body))


def fmt(bits: int, packing: int, order: int, rate: int) -> bytes:
    return struct.pack("<BBBBI", bits, packing, order, 0, rate)


def status(state: int, flags: int, produced: int, frames: int, dropped: int, rct: int, apt: int) -> bytes:
    # The reference device's cutoffs: H = 7 bits per 8-bit sample at alpha = 2^-20 (RCT 4,
    # APT 18 over 512), temperature not measured.
    return struct.pack("<BBHQIIIIHHHh", state, flags, 0, produced, frames, dropped, rct, apt, 4, 18, 512, -0x8000)


def info(format_bytes: bytes) -> bytes:
    head = struct.pack("<BBH", 1, 1, 4100) + format_bytes + struct.pack("<HH", 7 * 256, 0)
    strings = b"".join(bytes([len(s)]) + s for s in (b"qitcore", b"QDP reference", b"REF-0001", b"1.0.0"))
    return head + strings


def command(code: int, tag: int, args: bytes = b"") -> bytes:
    return bytes([code, tag]) + args


def reply(code: int, tag: int, result: int, data: bytes = b"") -> bytes:
    return bytes([code, tag, result, 0]) + data


def data(count: int, flags: int, samples: bytes) -> bytes:
    return struct.pack("<HBB", count, flags, 0) + samples


def main(path: Path | None = None) -> None:
    out: list[str] = []
    w = out.append
    w("# QDP/1 golden vectors, written by make_golden_vectors.py from PROTOCOL.md.")
    w("# Lines: 'crc INPUT CRC', 'frame NAME TYPE SEQ PAYLOAD FRAME', 'stream NAME BYTES key=value...',")
    w("# 'session NAME send FRAME expect FRAME|-' and 'session NAME samples SAMPLES expect FRAME'.")
    w("# Hex throughout; '-' is empty. Comment lines above each vector give its meaning.")
    w("")
    w("# CRC-32C check value of ASCII '123456789' (the CRC catalogue's CRC-32/ISCSI).")
    w(f"crc {b'123456789'.hex()} e3069283")
    w("# CRC-32C of nothing.")
    w("crc - 00000000")
    w("")

    default = fmt(8, 1, 0, 1_000_000)
    vectors = [
        ("data_8bit_aligned", "DATA, sequence 0: 4 samples of 8 bits aligned: 0x00 0x7f 0x80 0xff.",
         DATA, 0, data(4, 0, bytes([0x00, 0x7F, 0x80, 0xFF]))),
        ("data_1bit_packed", "DATA, sequence 1: 12 one-bit samples 1 0 1 1 0 0 1 1 1 0 0 0, packed MSB first.",
         DATA, 1, data(12, 0, bytes([0b10110011, 0b10000000]))),
        ("data_12bit_packed_lsb", "DATA, sequence 2: 12-bit samples 0xabc, 0x123 packed LSB first.",
         DATA, 2, data(2, 0, bytes([0xBC, 0x3A, 0x12]))),
        ("data_flagged", "DATA, sequence 3: no samples, flags 3 (device health failure and overrun).",
         DATA, 3, data(0, 3, b"")),
        ("status_running", "STATUS, sequence 4: running, 1,000,000 samples, 245 frames, nothing dropped.",
         STATUS, 4, status(1, 0, 1_000_000, 245, 0, 0, 0)),
        ("status_failed", "STATUS, sequence 0xfffffffe: failed, RCT latched, 1 RCT failure, 2^40 samples.",
         STATUS, 0xFFFFFFFE, status(2, 1, 1 << 40, 0x01000000, 17, 1, 0)),
        ("command_info", "COMMAND, sequence 0: INFO, tag 1.", COMMAND, 0, command(INFO, 1)),
        ("command_configure", "COMMAND, sequence 1: CONFIGURE 1 bit packed MSB first at 2 MHz, tag 2.",
         COMMAND, 1, command(CONFIGURE, 2, fmt(1, 0, 0, 2_000_000))),
        ("reply_info", "REPLY, sequence 5: INFO tag 1 ok: class QRNG, payloads up to 4100, 8-bit aligned at 1 MHz, "
         "claims 7 bits per sample, 'qitcore' 'QDP reference' 'REF-0001' '1.0.0'.",
         REPLY, 5, reply(INFO, 1, 0, info(default))),
        ("reply_not_now", "REPLY, sequence 6: START tag 9 refused, result 3 (not now).", REPLY, 6, reply(START, 9, 3)),
    ]
    for name, meaning, kind, seq, payload in vectors:
        w(f"# {meaning}")
        w(f"frame {name} {kind:02x} {seq:08x} {payload.hex() or '-'} {frame(kind, seq, payload).hex()}")
    w("")

    f0 = frame(DATA, 10, data(3, 0, b"\x01\x02\x03"))
    f1 = frame(DATA, 11, data(3, 0, b"\x04\x05\x06"))
    f2 = frame(DATA, 12, data(3, 0, b"\x07\x08\x09"))
    f4 = frame(DATA, 14, data(3, 0, b"\x0a\x0b\x0c"))
    junk = bytes.fromhex("00a5ff51a5a55100")
    w("# Garbage (8 bytes) before a frame: its last three, a5 51 00, open a false frame of length 0")
    w("# whose CRC fails: one CRC error, 8 garbage bytes, one frame.")
    w(f"stream garbage_first {(junk + f0).hex()} frames=1 crc_errors=1 garbage=8 gaps=0 lost=0")
    bad = bytearray(f1)
    bad[12] ^= 0x01
    w("# Three frames, a bit flipped in the second's payload: it fails its CRC, its bytes are garbage,")
    w("# and the third reports a gap of one lost frame.")
    w(f"stream corrupted_middle {(f0 + bytes(bad) + f2).hex()} frames=2 crc_errors=1 garbage={len(bad)} gaps=1 lost=1")
    w("# Sequence 10, 11, 12 then 14: frame 13 was dropped by the device.")
    w(f"stream dropped_frame {(f0 + f1 + f2 + f4).hex()} frames=4 crc_errors=0 garbage=0 gaps=1 lost=1")
    w("")

    # A session with the reference device from power-up: its sequence numbers start at 0.
    w("# Session with the reference device from power-up (device sequence numbers from 0):")
    seq = 0
    host = 0

    def step(name: str, meaning: str, cmd: bytes, rep: bytes | None) -> None:
        nonlocal seq, host
        w(f"# {meaning}")
        expect = "-"
        if rep is not None:
            expect = frame(REPLY, seq, rep).hex()
            seq += 1
        w(f"session {name} send {frame(COMMAND, host, cmd).hex()} expect {expect}")
        host += 1

    step("info", "INFO: the info block (8-bit aligned at 1 MHz by default).", command(INFO, 1), reply(INFO, 1, 0, info(default)))
    step("status_idle", "STATUS: idle, all counters zero.", command(STATUS_CMD, 2), reply(STATUS_CMD, 2, 0, status(0, 0, 0, 0, 0, 0, 0)))
    step("configure_bad", "CONFIGURE with 0 bits per sample: bad argument (2), format unchanged.",
         command(CONFIGURE, 3, fmt(0, 1, 0, 0)), reply(CONFIGURE, 3, 2))
    step("configure", "CONFIGURE 8 bits aligned at 500 kHz: ok, the format echoed.",
         command(CONFIGURE, 4, fmt(8, 1, 0, 500_000)), reply(CONFIGURE, 4, 0, fmt(8, 1, 0, 500_000)))
    step("unknown", "Command 0x55: unknown command (1).", command(0x55, 5), reply(0x55, 5, 1))
    step("start", "START: ok.", command(START, 6), reply(START, 6, 0))
    step("configure_running", "CONFIGURE while running: not now (3).",
         command(CONFIGURE, 7, fmt(1, 0, 0, 0)), reply(CONFIGURE, 7, 3))
    w("# Four samples pushed and flushed: one DATA frame.")
    w(f"session samples samples 0102fe03 expect {frame(DATA, seq, data(4, 0, bytes.fromhex('0102fe03'))).hex()}")
    seq += 1
    step("status_running", "STATUS: running, 4 samples, 1 frame.", command(STATUS_CMD, 8),
         reply(STATUS_CMD, 8, 0, status(1, 0, 4, 1, 0, 0, 0)))
    w("# Five equal samples: the device's RCT (cutoff 4) fires on the fourth; the frame is withheld, the")
    w("# fifth sample ignored, and a STATUS frame announces the failed state (8 samples produced).")
    w(f"session stuck samples 0909090909 expect {frame(STATUS, seq, status(2, 1, 8, 1, 0, 1, 0)).hex()}")
    seq += 1
    step("start_failed", "START while failed: not now (3).", command(START, 9), reply(START, 9, 3))
    step("self_test", "SELF_TEST: ok, no test failed.", command(SELF_TEST, 10), reply(SELF_TEST, 10, 0, b"\x00"))
    step("reset", "RESET: ok; failure and counters cleared, default format back.", command(RESET, 11), reply(RESET, 11, 0))
    step("status_after_reset", "STATUS: idle, counters zero.", command(STATUS_CMD, 12),
         reply(STATUS_CMD, 12, 0, status(0, 0, 0, 0, 0, 0, 0)))
    step("stop", "STOP: ok (always).", command(STOP, 13), reply(STOP, 13, 0))
    w("# A COMMAND frame whose CRC fails gets no reply.")
    broken = bytearray(frame(COMMAND, host, command(INFO, 14)))
    broken[-1] ^= 0xFF
    w(f"session corrupted send {bytes(broken).hex()} expect -")

    path = path or Path(__file__).with_name("golden_vectors.txt")
    path.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
