"""``sim+pty://``: the loopback simulator through the same stack as real hardware. The C
reference firmware, compiled for this machine by the system C compiler on first use
(:mod:`.firmware`), runs as a process behind a pseudo-terminal; the noise model feeds it samples
through a pipe; pyserial opens the pty like any serial device and the QDP/1 handshake runs for
real. Query parameters are those of ``sim://``
(the model and its faults: ``stuck`` and ``drift`` act on the samples, ``drop``, ``corrupt``,
``garbage`` and ``disconnect`` on the firmware's link)."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from pathlib import Path

from .. import _core
from ..errors import DeviceError
from ..health import HealthMonitor
from ..stream import QrngStream
from ._extras import device_packages
from ._registry import Options, Url, register_backend
from .firmware import build_firmware
from .qdp import QdpLink
from .serial_port import open_port
from .sim import SIM_PARAMS, describe, frame_samples, model_with_faults

__all__ = ["host_firmware"]


def host_firmware() -> Path:
    """The firmware's host build behind the pty."""
    return build_firmware("host_pty", ("host_pty.c", "qdp.c", "qdp_device.c"))


def _open_sim_pty(url: Url, options: Options, raw: bool) -> QrngStream:
    with device_packages("sim+pty://"):  # before the firmware process starts
        import serial  # noqa: F401
    model, faults = model_with_faults(url)
    h = model.min_entropy
    description = describe(model)  # before the feeder thread holds the model
    # The device's own health tests, at its claimed entropy (rounded down to 1/256 bit).
    claimed = int(h * 256) / 256
    own = HealthMonitor(claimed, bits_per_sample=model.bits, alpha=_core.Stream.DEFAULT_ALPHA)
    rct, apt, window = own.rct_cutoff, own.apt_cutoff, own.window
    argv = [str(host_firmware()), "--bits", str(model.bits), "--rate", str(int(model.rate)), "--entropy", str(claimed)]
    argv += ["--rct", str(rct), "--apt", str(apt), "--window", str(window), "--frame", str(frame_samples(url))]
    argv += ["--drop", str(faults.get("drop", 0)), "--corrupt", str(faults.get("corrupt", 0))]
    argv += ["--garbage", str(faults.get("garbage", 0)), "--seed", str(url.get("seed", int, 1))]
    argv += ["--disconnect-after", str(int(faults.get("disconnect", 0)))]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    slave = proc.stdout.readline().decode().strip()
    if not slave:
        proc.kill()
        raise DeviceError("sim+pty: the firmware process did not start")
    stop = threading.Event()
    feeder_in = proc.stdin

    def feed() -> None:
        # The firmware reads samples only while running, so this blocks (is paced) otherwise.
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            while not stop.is_set():
                feeder_in.write(model.read(1 << 16))
        with contextlib.suppress(BrokenPipeError, OSError):
            feeder_in.close()

    feeder = threading.Thread(target=feed, name="qitcore sim+pty feeder", daemon=True)
    feeder.start()

    def shut_down() -> None:
        stop.set()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        feeder.join(timeout=5)

    try:
        port = open_port(Url(f"serial://{slave}", "serial", "", slave))
        link = QdpLink(port, options, url.public)
        stream = link.open(raw)
    except BaseException:
        shut_down()
        raise
    link_close = link.close

    def close() -> None:
        try:
            link_close()
        finally:
            shut_down()

    stream._on_close = close
    stream.info = {**description, **stream.info, "pty": slave}
    return stream


register_backend("sim+pty", _open_sim_pty, SIM_PARAMS)
