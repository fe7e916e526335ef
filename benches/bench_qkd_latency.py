"""QKD distillation over a classical channel with a link's latency: what a round trip costs.

Both ends in one process, every message held for half the round trip by
:func:`qitcore.qkd.delay.delayed`, at 0, 1 and 10 ms round trip, on a 10^6-bit sifted block at
QBER 2 % (the link simulator, misalignment 2 %; about 1.56 x 10^6 detections), for each
reconciliation method. Once over TCP too, through
:class:`~qitcore.qkd.proxy.DelayProxy` at 0 and 10 ms round trip, on a 10^5-bit sifted block,
Alice serving on a thread.

Each run's ``extra_info`` (from the median round) gives the secret key rate (bits of key per
second of wall time), the sifted key reconciled per second (issue 18's target: >= 1 Mbit/s at a
10 ms round trip, with LDPC), the round trips taken and the share of the wall time spent waiting
on the delay. Keys are checked equal at both ends on every round.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from qitcore import qkd
from qitcore.qkd.delay import delayed
from qitcore.qkd.proxy import DelayProxy

ROUND_TRIPS_MS = [0, 1, 10]
SIFTED = 10**6
QBER = 0.02
METHODS = ["cascade", "ldpc", "blind"]
"""Issue 18's reconciliation methods: Cascade, one-way LDPC and blind LDPC."""


CASES = {m: qkd.Params(reconciliation=m) for m in METHODS}


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    model = qkd.LinkModel(distance_km=20, misalignment=QBER)
    return model.simulate(model.pulses_for(SIFTED), seed=SIFTED)


Run = tuple[float, qkd.Report, int, float]
"""One round: its wall time (s), the report, the round trips and the seconds of delay imposed."""


def _median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r[0])[len(runs) // 2]


def _summarise(benchmark: Any, record: Any, note: Any, case: str, runs: list[Run]) -> None:
    median = float(benchmark.stats.stats.median)
    _, report, round_trips, waited = _median_run(runs)
    record(case, "qitcore", benchmark, report.sifted_key)
    info = {
        "secret_key_bits_per_s": report.key_bits / median,
        "sifted_bits_reconciled_per_s": report.reconciled_bits / median,
        "key_bits": report.key_bits,
        "reconciled_bits": report.reconciled_bits,
        "round_trips": round_trips,
        "cascade_rounds": report.cascade_rounds,
        "delay_share": waited / median,
    }
    benchmark.extra_info.update(info)
    note(
        f"{case}: {median:.3f} s median; {info['sifted_bits_reconciled_per_s'] / 1e6:.3f} Mbit/s sifted reconciled, "
        f"{info['secret_key_bits_per_s'] / 1e3:.1f} kbit/s secret key; {round_trips} round trips "
        f"({report.cascade_rounds} Cascade), {info['delay_share']:.0%} of the time waiting on the delay"
    )


@pytest.mark.parametrize("rtt_ms", ROUND_TRIPS_MS, ids=lambda ms: f"rtt{ms}ms")
@pytest.mark.parametrize("method", list(CASES))
def test_distill_with_latency(
    benchmark: Any, record: Any, note: Any, link: qkd.SimulatedLink, method: str, rtt_ms: int
) -> None:
    params = CASES[method]
    runs: list[Run] = []

    def run() -> None:
        factory = delayed(rtt_ms / 2e3)
        start = time.perf_counter()
        result = qkd.distill(link.alice, link.bob, channel=factory, params=params)
        wall = time.perf_counter() - start
        # Equal keys always; a method that leaks too much for this block leaves none (reported).
        assert result.alice_key == result.bob_key and (result.report.key_bits > 0 or method == "ldpc")
        runs.append((wall, result.report, factory.delay.messages // 2, factory.delay.seconds))

    rounds, warmup = (5, 1) if rtt_ms == 0 else (3, 0)
    benchmark.pedantic(run, rounds=rounds, warmup_rounds=warmup)
    _summarise(benchmark, record, note, f"{method} 1e6 bits QBER 2%, {rtt_ms} ms RTT", runs[warmup:])


TCP_SIFTED = 10**5
TCP_ROUND_TRIPS_MS = [0, 10]


@pytest.fixture(scope="module")
def small_link() -> qkd.SimulatedLink:
    model = qkd.LinkModel(distance_km=20, misalignment=QBER)
    return model.simulate(model.pulses_for(TCP_SIFTED), seed=TCP_SIFTED)


@pytest.mark.parametrize("rtt_ms", TCP_ROUND_TRIPS_MS, ids=lambda ms: f"rtt{ms}ms")
def test_distill_over_tcp_through_the_delaying_proxy(
    benchmark: Any, record: Any, note: Any, small_link: qkd.SimulatedLink, rtt_ms: int
) -> None:
    """Timed: Bob's session, from connecting to the proxy to his key; Alice's listener and the
    proxy are started before and stopped after each round."""
    key = b"bench-latency-key-0123456789abcd"
    params = qkd.Params()
    runs: list[Run] = []
    rounds: list[tuple[qkd.AliceSession, socket.socket, threading.Thread, DelayProxy]] = []

    def setup() -> None:
        alice = qkd.AliceSession(small_link.alice, params, key)
        server = socket.create_server(("127.0.0.1", 0))
        thread = threading.Thread(target=qkd.serve_tcp, args=(alice, server), daemon=True)
        thread.start()
        rounds.append((alice, server, thread, DelayProxy(server.getsockname()[:2], rtt_ms / 2e3).start()))

    def run() -> None:
        alice, server, thread, proxy = rounds[-1]
        start = time.perf_counter()
        with qkd.TcpChannel(key, *proxy.address) as channel:
            bob_key, report = qkd.BobSession(small_link.bob, params, channel).run()
        wall = time.perf_counter() - start
        proxy.close()
        thread.join(60)
        server.close()
        assert alice.result()[0] == bob_key
        runs.append((wall, report, 0, 0.0))

    benchmark.pedantic(run, setup=setup, rounds=3, warmup_rounds=0)
    median = float(benchmark.stats.stats.median)
    _, report, _, _ = _median_run(runs)
    case = f"cascade 1e5 bits QBER 2%, TCP proxy {rtt_ms} ms RTT"
    record(case, "qitcore", benchmark, report.sifted_key)
    benchmark.extra_info.update(
        {
            "secret_key_bits_per_s": report.key_bits / median,
            "sifted_bits_reconciled_per_s": report.reconciled_bits / median,
            "key_bits": report.key_bits,
            "reconciled_bits": report.reconciled_bits,
            "cascade_rounds": report.cascade_rounds,
        }
    )
    note(
        f"{case}: {median:.3f} s median; {report.reconciled_bits / median / 1e6:.3f} Mbit/s sifted reconciled, "
        f"{report.key_bits} key bits; {report.cascade_rounds} Cascade round trips "
        f"(>= {report.cascade_rounds * rtt_ms / 1e3:.2f} s of latency alone)"
    )
