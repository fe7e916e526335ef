"""Health tests: SP 800-90B cutoffs against Table 2, the monitor's release and failure rules
against the definitions, and the FIPS 140-2 / AIS 31 block tests on good and defective data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qitcore import health
from qitcore._records import as_dict
from qitcore.errors import (
    AdaptiveProportionFailure,
    HealthTestFailure,
    InvalidArgumentError,
    InvalidLengthError,
    InvalidTypeError,
    QitError,
    RepetitionCountFailure,
    SampleFileError,
)
from qitcore.health import (
    DEFAULT_ALPHA,
    DEFAULT_STARTUP_SAMPLES,
    BlockTest,
    HealthMonitor,
    HealthScan,
    ScanFailure,
    ais31_procedure_a,
    fips140_2,
    scan,
)

ALPHA = 2.0**-20


@pytest.mark.parametrize(
    ("h", "bits", "rct", "apt"),
    [
        (0.5, 8, 41, 410),
        (1.0, 1, 21, 589),
        (8.0, 8, 4, 13),
        (0.2, 8, 101, 480),
        (2.0, 8, 11, 177),
        (4.0, 4, 6, 62),
    ],
)
def test_cutoffs_match_sp800_90b_table_2(h: float, bits: int, rct: int, apt: int) -> None:
    m = HealthMonitor(h, bits_per_sample=bits, alpha=ALPHA)
    assert (m.rct_cutoff, m.apt_cutoff) == (rct, apt)
    assert m.window == (1024 if bits == 1 else 512)


def test_hills_correction_is_available() -> None:
    assert HealthMonitor(0.5, alpha=ALPHA, apt_formula="hill").apt_cutoff == 411
    assert HealthMonitor(1.0, bits_per_sample=8, alpha=2.0**-30, apt_formula="hill").apt_cutoff == 325


def test_samples_come_out_in_order_after_startup_in_whole_windows(rng) -> None:
    m = HealthMonitor(7.0, alpha=2.0**-40)
    data = rng.integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    out = b"".join(m.feed(data[i : i + 777]) for i in range(0, len(data), 777))
    # 1024 start-up samples dropped; whole windows of 512 released: 9216 of the remaining 8976 → 8704.
    assert out == data[1024 : 1024 + 8704]
    assert m.pending == 10_000 - 1024 - 8704 and m.state == "healthy"


def test_a_stuck_source_stops_output_until_reset(rng) -> None:
    m = HealthMonitor(8.0)
    good = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    m.feed(good)
    with pytest.raises(RepetitionCountFailure) as info:
        m.feed(b"\x07" * 10)
    f = info.value
    assert (f.index, f.value, f.count, f.cutoff) == (3003, 7, 4, 4)
    assert isinstance(f, HealthTestFailure) and isinstance(f, QitError)
    with pytest.raises(RepetitionCountFailure):
        m.feed(good)  # still failed: nothing more comes out
    assert m.state == "failed" and m.pending == 0
    m.reset()
    assert m.state == "startup" and m.feed(good) == good[1024:2560]


def test_a_biased_source_trips_the_adaptive_proportion_test() -> None:
    m = HealthMonitor(1.0, bits_per_sample=1)
    data = bytes(int(i % 4 == 3) for i in range(4096))
    with pytest.raises(AdaptiveProportionFailure) as info:
        m.feed(data)
    assert (info.value.index, info.value.count) == (784, 589)


def test_self_test_fires_both_tests() -> None:
    for h, bits in [(0.3, 1), (1.0, 1), (0.5, 8), (8.0, 8), (3.0, 4)]:
        HealthMonitor(h, bits_per_sample=bits).self_test()


def test_scan_finds_every_injected_failure(rng) -> None:
    data = bytearray(rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    for at in (30_000, 90_000, 150_000):
        data[at : at + 10] = b"\x42" * 10
    report = scan(bytes(data), 7.0, alpha=2.0**-40)
    # RCT cutoff 7 at α = 2^-40, H = 7: each run of 10 fires at its 7th sample.
    assert [(f.test, f.index) for f in report.failures] == [
        ("Repetition Count Test", at + 6) for at in (30_000, 90_000, 150_000)
    ]
    assert not report.passed and report.rct_cutoff == 7


def test_bad_arguments_are_refused() -> None:
    for kwargs, name in [
        ({"min_entropy": 0.0}, "min_entropy"),
        ({"min_entropy": 9.0}, "min_entropy"),
        ({"min_entropy": 1.0, "alpha": 0.0}, "alpha"),
        ({"min_entropy": 1.0, "alpha": 1.5}, "alpha"),
        ({"min_entropy": 1.0, "bits_per_sample": 9}, "bits_per_sample"),
        ({"min_entropy": 1.0, "apt_formula": "other"}, "apt_formula"),
    ]:
        with pytest.raises(InvalidArgumentError, match=f"^{name}: "):
            HealthMonitor(**kwargs)
    with pytest.raises(InvalidArgumentError, match="^data: .*offset 2"):
        scan(b"\x01\x01\x04", 1.0, bits_per_sample=2)


def test_an_adaptive_proportion_test_that_could_never_fail_is_refused() -> None:
    """A cutoff above the window's size would switch the test off silently: refused, wherever a
    configuration comes in. The reference is the count itself: one value among W samples occurs
    at most W times."""
    for h, bits, alpha in [(0.1, 1, 1e-100), (0.1, 1, 1e-300), (0.05, 8, 2.0**-40), (1.0, 8, 1e-300)]:
        with pytest.raises(InvalidArgumentError, match="^alpha: .*could never fail"):
            HealthMonitor(h, bits_per_sample=bits, alpha=alpha)
        with pytest.raises(InvalidArgumentError, match="^alpha: .*could never fail"):
            scan(b"\x00\x01" * 600, h, bits_per_sample=bits, alpha=alpha)
    for h, bits, alpha in [(0.1, 1, 2.0**-40), (0.2, 8, 2.0**-40), (1.0, 8, 1e-100)]:
        m = HealthMonitor(h, bits_per_sample=bits, alpha=alpha)
        assert m.apt_cutoff <= (1024 if bits == 1 else 512)


def test_fips_140_2_passes_good_bits_and_catches_defects(rng) -> None:
    good = rng.integers(0, 256, 2500 * 4, dtype=np.uint8)
    results = fips140_2(good.tobytes())
    assert len(results) == 4 and all(t.passed for block in results for t in block)
    biased = good.copy()
    biased[::4] |= 0x80  # one bit in 32 forced to 1: about 10 300 ones per block
    assert not fips140_2(biased.tobytes())[0][0].passed
    run = good.copy()
    run[100:104] = 0  # 32 zero bits
    assert [t.test for t in fips140_2(run.tobytes())[0] if not t.passed] == ["long run"]
    with pytest.raises(InvalidLengthError, match="^data: "):
        fips140_2(b"\x00" * 100)


def test_ais31_procedure_a_passes_good_bits(rng) -> None:
    data = rng.integers(0, 256, 1_035_716, dtype=np.uint8).tobytes()
    result = ais31_procedure_a(data)
    assert result.t0.passed and len(result.blocks) == 257
    assert result.verdict in ("pass", "repeat")
    stuck = bytes(1_035_716)
    assert ais31_procedure_a(stuck).verdict == "fail"


def test_process_reports_counts_without_copying(rng) -> None:
    data = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    m = HealthMonitor(7.0)
    assert m.process(data) == (1024, 3584)
    with pytest.raises(RepetitionCountFailure):
        m.process(b"\x01" * 8)
    fed = HealthMonitor(7.0)
    fed.feed(data[:100])
    with pytest.raises(InvalidArgumentError, match="process"):
        fed.process(data)
    # The other way round: feed() cannot take over samples the caller holds for process().
    processed = HealthMonitor(7.0)
    processed.process(data[:1000])
    with pytest.raises(InvalidArgumentError, match="^data: feed"):
        processed.feed(data)


def test_results_are_the_cores_classes(rng) -> None:
    data = bytearray(rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    data[5000:5004] = b"\x09" * 4
    report = scan(bytes(data), 8.0)
    assert isinstance(report, HealthScan) and isinstance(report.failures[0], ScanFailure)
    assert as_dict(report.failures[0]) == {
        "count": 4,
        "cutoff": 4,
        "index": 5003,
        "test": "Repetition Count Test",
        "value": 9,
    }
    assert repr(report).startswith("HealthScan(apt_cutoff=13, failures=[ScanFailure(count=4, ")
    assert report == scan(bytes(data), 8.0) and not report.passed
    block = fips140_2(bytes(data[:2500]))[0][0]
    assert isinstance(block, BlockTest) and block.test == "monobit"
    with pytest.raises(QitError):
        BlockTest("monobit", 0.0, True, "")
    m = HealthMonitor(7.0)
    m.feed(bytes(data[:600]))
    counters = m.counters  # a dictionary, as before
    assert sorted(counters) == ["failures", "largest_window_count", "longest_run", "released", "samples", "windows"]
    assert (counters["samples"], counters["windows"], counters["released"]) == (600, 1, 0)


def test_defaults_come_from_the_core() -> None:
    assert DEFAULT_ALPHA == 2.0**-20 and DEFAULT_STARTUP_SAMPLES == 1024
    assert HealthMonitor(4.0).rct_cutoff == HealthMonitor(4.0, alpha=2.0**-20).rct_cutoff == 6


@pytest.mark.parametrize("chunk", [1, 777, 4096, 1 << 20])
@pytest.mark.parametrize("limit", [1, 3, 1000])
def test_a_file_scanned_in_chunks_reports_what_a_scan_of_it_whole_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, limit: int
) -> None:
    # Runs and biased windows, some across the chunks' boundaries: the scan of the whole is the reference.
    data = bytearray(np.random.default_rng(4).integers(0, 16, 60_000, dtype=np.uint8).tobytes())
    for at in (775, 4_094, 20_000, 41_000):
        data[at : at + 9] = bytes([3]) * 9
    data[50_000:51_000:2] = bytes([5]) * 500
    path = tmp_path / "capture.bin"
    path.write_bytes(bytes(data))
    monkeypatch.setattr(health, "SCAN_CHUNK", chunk)
    seen: list[tuple[int, int | None]] = []
    got = health.scan_file(path, 3.0, bits_per_sample=4, max_failures=limit, progress=lambda d, t: seen.append((d, t)))
    whole = health.scan(bytes(data), 3.0, bits_per_sample=4, max_failures=limit)
    assert got == whole
    assert len(whole.failures) == min(limit, len(whole.failures)) and whole.failures
    assert seen and all(t == len(data) for _, t in seen) and seen == sorted(seen)


def test_scan_file_errors_name_the_file_and_the_offset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "SCAN_CHUNK", 1000)
    path = tmp_path / "wide.bin"
    path.write_bytes(bytes(2500) + b"\x10")
    with pytest.raises(InvalidArgumentError, match="offset 2500 .*16.* 4 bits"):
        health.scan_file(path, 3.0, bits_per_sample=4, max_failures=10**6)
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(SampleFileError, match="empty.bin: no samples"):
        health.scan_file(tmp_path / "empty.bin", 3.0)
    with pytest.raises(SampleFileError, match="missing.bin"):
        health.scan_file(tmp_path / "missing.bin", 3.0)
    with pytest.raises(InvalidTypeError, match="^progress"):
        health.scan_file(path, 3.0, progress=3)  # type: ignore[arg-type]
