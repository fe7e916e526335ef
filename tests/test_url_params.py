"""Device URL parameters: for every registered backend (the registry is enumerated, so a new
backend is covered without editing this file), an unknown parameter is refused by name, and a
hostile value of any declared parameter is refused with ``InvalidArgumentError`` naming it, all
before the backend runs (its factory is replaced by a sentinel here: no device is needed, and
reaching the sentinel means validation let the URL through)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import qitcore
from qitcore._validate import public_url
from qitcore.cli import main
from qitcore.devices import _registry
from qitcore.devices._params import Param
from qitcore.errors import InvalidArgumentError, QitError

SCHEMES = qitcore.devices.backends()

# Refused for every number parameter, whatever its range: not numbers, or not written plainly.
NOT_NUMBERS = ["nan", "NaN", "-nan", "", "abc", "1_0", "\uff11", "\u0663", "0x10", "1e", "--1", " 1", "1 ", "1,5"]
# Refused for every whole-number parameter (all are bounded well below 10^20).
NOT_WHOLE = [
    "inf",
    "-inf",
    "1e300",
    "-1e300",
    "99999999999999999999999",
    "-99999999999999999999999",
    "1e999999999",
    "0.5",
]


class Opened(Exception):
    """The backend's factory was reached: the URL passed validation."""

    def __init__(self, url: Any, options: Any) -> None:
        super().__init__("opened")
        self.url, self.options = url, options


@pytest.fixture
def sentinel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def factory(url: Any, options: Any, raw: bool) -> Any:
        raise Opened(url, options)

    for scheme in SCHEMES:
        qitcore.devices.backend_params(scheme)  # load plug-ins' declarations first
        monkeypatch.setitem(_registry._BACKENDS, scheme, factory)
    yield


def refused(url: str, name: str) -> str:
    with pytest.raises(InvalidArgumentError) as info:
        qitcore.open(url)
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    return message


def reaches_backend(url: str) -> Opened:
    with pytest.raises(Opened) as info:
        qitcore.open(url)
    return info.value


def hostile(p: Param) -> list[str]:
    """Values outside ``p``'s range: the fixed lists, then just past each declared bound."""
    values = list(NOT_NUMBERS)
    if p.kind == "int":
        values += NOT_WHOLE
    else:
        values += ["-inf"] + ([] if p.infinite else ["inf"])
        values += [] if p.high is None else ["1e300"]
        values += [] if p.low is None else ["-1e300"]
    if p.low is not None and not (p.zero and p.low > 0):
        values.append(repr(p.low) if p.open_low else repr(p.low - 1))
    if p.high is not None:
        values.append(
            str(int(p.high) + 1) if p.kind == "int" else repr(p.high) if p.open_high else repr(p.high * 2 + 1)
        )
    return values


def in_range(p: Param) -> list[str]:
    """Values inside ``p``'s declared range."""
    if p.kind == "int":
        return [str(int(p.low)), str(int(p.high))] if p.low is not None and p.high is not None else []
    values = [] if p.high is None or p.open_high else [repr(float(p.high))]
    if p.low is not None:
        values.append(repr(p.low + (p.high - p.low) / 2 if p.high is not None else p.low + 1))
    return values + (["inf"] if p.infinite else []) + (["0"] if p.zero else [])


def cases() -> Iterator[tuple[str, str, str, str]]:
    """(scheme, param, query, the name the refusal starts with) for every declared parameter,
    list items included."""
    for scheme in SCHEMES:
        for name, p in qitcore.devices.backend_params(scheme).items():
            if p.kind == "list":
                for item_name, item in p.items.items():
                    for v in hostile(item):
                        yield scheme, name, f"{name}={item_name}:{v}", name
            elif p.numeric:
                for v in hostile(p):
                    yield scheme, name, f"{name}={v}", name
            elif p.kind == "choice":
                yield scheme, name, f"{name}=not-one-of-them", name
            else:
                yield scheme, name, f"{name}=a%00b", name


def test_every_backend_declares_its_parameters() -> None:
    assert {"sim", "sim+pty", "file", "serial", "loop", "usb", "chaoskey", "hwrng", "cdc", "truerng"} <= set(SCHEMES)
    for scheme in SCHEMES:
        params = qitcore.devices.backend_params(scheme)
        assert set(_registry.OPTION_PARAMS) <= set(params), scheme
        assert all(isinstance(p, Param) and p.name == name for name, p in params.items())


@pytest.mark.usefixtures("sentinel")
@pytest.mark.parametrize("scheme", SCHEMES)
def test_unknown_parameters_are_refused_by_name(scheme: str) -> None:
    message = refused(f"{scheme}://?definitely_not_a_parameter=1", "definitely_not_a_parameter")
    assert f"{scheme}://" in message
    # A misspelling of a real parameter as well (rat for rate, sead for seed, ...).
    refused(f"{scheme}://?min_entropi=1", "min_entropi")
    # Given twice: which one would win is a guess; refused.
    refused(f"{scheme}://?epsilon=1e-30&epsilon=1e-20", "epsilon")
    # Declared parameters, within range, reach the backend.
    reaches_backend(f"{scheme}://?epsilon=1e-30&startup_samples=1e3&gap_policy=error")


@pytest.mark.usefixtures("sentinel")
@pytest.mark.parametrize(("scheme", "name", "query", "prefix"), list(cases()))
def test_hostile_values_are_refused_before_the_backend_runs(scheme: str, name: str, query: str, prefix: str) -> None:
    refused(f"{scheme}://?{query}", prefix)


@pytest.mark.usefixtures("sentinel")
@pytest.mark.parametrize("scheme", SCHEMES)
def test_values_in_range_reach_the_backend_as_numbers(scheme: str) -> None:
    for name, p in qitcore.devices.backend_params(scheme).items():
        if not p.numeric:
            continue
        for v in in_range(p):
            opened = reaches_backend(f"{scheme}://?{name}={v}")
            value = opened.url.get(name, str)
            if p.kind == "int":
                assert type(value) is int and value == int(v), (name, v, value)
            else:
                assert isinstance(value, float) and (value == float(v) or (math.isinf(value) and v == "inf"))


@pytest.mark.usefixtures("sentinel")
def test_counts_written_with_exponents_are_whole_numbers() -> None:
    opened = reaches_backend("sim://?startup_samples=1e3&seed=12e2&fault=stuck:1E5,drop:0.01&rate=1e6")
    assert opened.options.startup_samples == 1000
    assert opened.url.get("seed", int) == 1200 and opened.url.get("rate", float) == 1e6
    assert opened.url.values["fault"] == [("stuck", 100_000), ("drop", 0.01)]
    refused("sim://?seed=1.5", "seed")
    refused("sim://?fault=stuck:1e5.5", "fault")
    refused("sim://?fault=stuck", "fault")
    refused("sim://?fault=melt:1", "fault")


# The examples that raised OverflowError with a traceback, through the real backends.
ISSUE_URLS = [
    ("sim://?seed=-1", "seed"),
    ("sim://?rate=1e300", "rate"),
    ("sim://?fault=stuck:inf", "fault"),
    ("sim://?fault=disconnect:-5", "fault"),
    ("sim://?rate=nan", "rate"),
    ("sim://?seed=99999999999999999999999", "seed"),
    ("sim://?bits=300", "bits"),
    ("sim://?frame=-1", "frame"),
    ("sim://?frame=8189", "frame"),  # 8-bit samples: 8189 bytes do not fit a frame
    ("sim://?buffer_bytes=-5", "buffer_bytes"),
    ("sim://?rat=1e6", "rat"),
    ("sim+pty://?seed=-1", "seed"),
    ("sim+pty://?frame=70000", "frame"),
    ("file:///dev/null?bits=1e300", "bits"),
    ("cdc://?baud=-1", "baud"),
    ("usb://1209:0001?serial=x&endpoint=raw", "endpoint"),
    ("usb://12345:1", "usb://12345:1"),  # IDs are 16-bit
    ("sim://[", "url"),
]


@pytest.mark.parametrize(("url", "name"), ISSUE_URLS)
def test_the_reported_urls_are_refused_naming_the_parameter(url: str, name: str) -> None:
    refused(url, name)


@pytest.mark.parametrize(("url", "name"), ISSUE_URLS[:4] + ISSUE_URLS[10:11])
def test_the_command_line_says_one_line_and_exits_2(
    url: str, name: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.bin"
    assert main(["stream", "--device", url, "--bytes", "10", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    # The URL is named (its seeds hidden): its parameters share names with options (--alpha, --output).
    assert err.startswith(f"qitcore: error: --device: {public_url(url)}: {name}: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_keyword_options_are_checked_as_the_url_is() -> None:
    for name, value in [("buffer_bytes", -5), ("buffer_bytes", 2**80), ("startup_samples", math.nan),
                        ("timeout", math.inf), ("block_bits", 1.5), ("epsilon", "1e-30"), ("gap_policy", "ignore"),
                        ("min_entropy", "lots"), ("alpha", True)]:  # fmt: skip
        with pytest.raises(InvalidArgumentError, match=f"^{name}: "):
            qitcore.open("sim://", **{name: value})
    with qitcore.open("sim://", startup_samples=1e3, buffer_bytes=4096) as s:
        assert len(s.read(100)) == 100


def test_refusals_echo_the_value_as_given() -> None:
    """A number is shown as the number, text as quoted text; only what is longer than 60
    characters is cut (with "..."), so a short value is never shown as if it went on."""
    given = [("epsilon", 2.0, "got 2.0"), ("buffer_bytes", -5, "got -5"), ("epsilon", "2", "got '2'"),
             ("buffer_bytes", 2**80, f"got {2**80}")]  # fmt: skip
    for name, value, shown in given:
        with pytest.raises(InvalidArgumentError) as info:
            qitcore.open("sim://", **{name: value})
        assert str(info.value).endswith(shown), info.value
    with pytest.raises(InvalidArgumentError) as info:
        qitcore.open("sim://?rate=" + "9" * 500)
    assert str(info.value).endswith("got '" + "9" * 59 + "...") and len(str(info.value)) < 200


def test_a_device_that_claims_impossible_entropy_is_refused() -> None:
    """Numbers from a device are checked as those from a user: /dev/hwrng's quality from sysfs."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        sysfs = Path(tmp)
        (sysfs / "rng_current").write_text("fake\n")
        dev = sysfs / "hwrng"
        dev.write_bytes(bytes(range(256)) * 64)
        for quality in ["99999999999999999999", "-5", "1e3", "x" * 5000, "9" * 5000]:
            (sysfs / "rng_quality").write_text(quality)
            with qitcore.open_raw(f"hwrng://?path={dev}&sysfs={sysfs}") as raw:
                # No statement of quality: the driver's conservative default claim.
                assert raw.info["claimed_min_entropy"] == 4.0
        with pytest.raises(QitError):
            qitcore.open(f"hwrng://?path={dev}&sysfs={sysfs}&min_entropy=9")
