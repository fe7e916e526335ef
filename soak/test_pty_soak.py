"""The soak test (``make soak``, not part of ``make test``): 1 GiB of raw samples from the C
reference firmware through the pseudo-terminal and pyserial, every frame's sequence number
checked (a gap raises), and nothing lost anywhere."""

from __future__ import annotations

import time

import qitcore

GIB = 1 << 30


def test_one_gibibyte_through_the_pty_without_loss() -> None:
    start = time.perf_counter()
    with qitcore.open_raw("sim+pty://?seed=2026", gap_policy="error") as raw:
        got = 0
        while got < GIB:
            got += len(raw.read_samples(min(1 << 24, GIB - got)))
        stats = raw.stats()
        status = raw.device.command(qitcore.protocol.Command.STATUS)["data"]
    seconds = time.perf_counter() - start
    device = qitcore.protocol.parse_status(status)
    c = stats.counters
    print(
        f"\nsoak: {got / 2**30:.2f} GiB of samples in {seconds:.1f} s ({c['bytes_in'] * 8 / seconds / 1e6:.0f} Mbit/s "
        f"of frames through the pty); frames {c['frames']:,}, lost {c['frames_lost']}, CRC errors "
        f"{c['crc_errors']}, garbage {c['garbage_bytes']}, device dropped {device['samples_dropped']}"
    )
    assert got == GIB
    assert c["frames_lost"] == c["gaps"] == c["crc_errors"] == c["garbage_bytes"] == c["malformed_frames"] == 0
    assert device["samples_dropped"] == 0 and device["state"] == "running"
    # Every sample the device framed before the STATUS command reached the host, in order.
    assert c["samples_in"] <= device["samples_produced"]
