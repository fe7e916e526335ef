"""A device URL's seed (a simulator's ``seed=``, an ``extractor_seed=``) is never shown: not in a
stream's repr or description, a bit generator's state, the CLI's description of a stream or
its error messages, nor the daemon's refusal of two devices that replay the same input."""

from __future__ import annotations

import pytest
import qitcore
from qitcore.cli import main
from qitcore.errors import InvalidArgumentError
from qitcore.service.config import DeviceSettings, check_devices

SEED = "123456789"
EXTRACTOR_SEED = "ab" * 32


def test_streams_and_generators_show_no_seed() -> None:
    with qitcore.open(f"sim://?seed={SEED}") as stream:
        shown = [repr(stream), stream.description, str(qitcore.QuantumBitGenerator(stream).state)]
    assert all(SEED not in text for text in shown), shown
    assert "seed=***" in shown[0]


def test_the_cli_shows_no_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", "--device", f"sim://?seed={SEED}", "--bytes", "64", "-o", "/dev/null"]) == 0
    assert main(["stream", "--device", f"sim://?extractor_seed={EXTRACTOR_SEED}&alpha=5", "--bytes", "8"]) != 0
    out, err = capsys.readouterr()
    assert SEED not in out + err and EXTRACTOR_SEED not in out + err, out + err


def test_devices_that_replay_the_same_input_are_refused_without_their_seed() -> None:
    devices = [DeviceSettings(f"sim://?seed={SEED}", {}), DeviceSettings(f"sim://?seed={SEED}&frame=512", {})]
    with pytest.raises(InvalidArgumentError, match="same replayable input") as caught:
        check_devices(devices)
    assert SEED not in str(caught.value)
