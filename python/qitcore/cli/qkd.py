"""``qitcore qkd``: distil keys from a simulated link, or run Alice and Bob as two programs (and,
between them, ``qitcore qkd proxy`` to give their connection a link's latency).

:mod:`qitcore.qkd` (and numpy with it) is imported when a ``qkd`` command line is parsed: the
options' defaults are its parameters'.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from .. import _validate
from ..errors import InvalidArgumentError, QitError, SampleFileError
from ..report.files import atomic_file, write_atomically
from .args import (
    Commands,
    check_output_folders,
    count,
    count_up_to,
    defer,
    natural,
    positive_real,
    real,
    terminate_as_interrupt,
)

if TYPE_CHECKING:
    from ..qkd import AliceSession, Params, Records, Report
    from ..qkd.channel import AuthKey
    from ..qkd.proxy import DelayProxy


def _show(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


def _triple(text: str) -> tuple[float, float, float]:
    parts = text.split(",")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got {text!r}")
    try:
        a, b, c = (float(x) for x in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got {text!r}") from None
    return a, b, c


def _address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` to listen on (port 0: any free one)."""
    try:
        return _validate.host_port("address", text)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _timeout(text: str) -> float:
    """Seconds to wait, as the channel takes them."""
    from ..qkd.channel import seconds

    try:
        return seconds("timeout", positive_real(text))
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("timeout: ")) from None


def _peer_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` to connect to: port 0 names no one."""
    host, port = _address(text)
    if port == 0:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535 to connect to, got {text!r}")
    return host, port


def add_parsers(sub: Commands) -> None:
    defer(sub.add_parser("qkd", help="QKD key distillation (decoy-state BB84)"), _add_roles)


def _add_roles(qkd: argparse.ArgumentParser) -> None:
    from ..qkd import LinkModel, Params
    from ..qkd.link import MAX_PULSES

    defaults, link = Params(), LinkModel()
    roles = qkd.add_subparsers(dest="role", required=True)

    def session(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--mu", type=_triple, default=defaults.mu, help=f"intensities mu1,mu2,mu3 ({_show(defaults.mu)})"
        )
        p.add_argument("--p", type=_triple, default=defaults.p, help=f"their probabilities ({_show(defaults.p)})")
        p.add_argument(
            "--reconciliation",
            choices=("cascade", "ldpc", "blind"),
            default=defaults.reconciliation,
            help="Cascade (interactive, default), LDPC (one-way) or blind LDPC (at most 3 round trips)",
        )
        p.add_argument(
            "--cascade",
            choices=("modified", "original"),
            default=defaults.cascade,
            help="Cascade's variant: modified (default) or Brassard-Salvail's original",
        )
        p.add_argument("--qber-threshold", type=real, default=defaults.qber_threshold, help="abort above (%(default)g)")
        p.add_argument(
            "--sample-fraction", type=real, default=defaults.sample_fraction, help="key bits disclosed (0.01)"
        )
        p.add_argument("--eps-sec", type=real, default=defaults.eps_sec, help="secrecy (%(default)g)")
        p.add_argument(
            "--eps-cor", type=real, default=defaults.eps_cor, help="largest correctness accepted (%(default)g)"
        )
        p.add_argument("--key-out", metavar="FILE", help="write the key (raw bytes, owner-only permissions)")
        p.add_argument("--json", metavar="FILE", help="write the report as JSON")

    sim = roles.add_parser("simulate", help="simulate a link and distil its key, both ends in this process")
    sim.add_argument("--distance-km", type=real, default=link.distance_km, help="fibre length in km (%(default)g)")
    sim.add_argument("--pulses", type=count_up_to(MAX_PULSES), default=10**8, help="pulses sent (1e8; at most 2^40)")
    sim.add_argument(
        "--attenuation",
        dest="attenuation_db_per_km",  # LinkModel's name: its errors then name this option
        type=real,
        default=link.attenuation_db_per_km,
        help="dB/km (%(default)g)",
    )
    sim.add_argument(
        "--detector-efficiency", type=real, default=link.detector_efficiency, help="Bob's detectors (0.25)"
    )
    sim.add_argument("--dark-count", type=real, default=link.dark_count, help="per detector and pulse (%(default)g)")
    sim.add_argument("--misalignment", type=real, default=link.misalignment, help="error per detection (%(default)g)")
    sim.add_argument(
        "--key-basis-probability", type=real, default=link.key_basis_probability, help="both ends' (%(default)g)"
    )
    sim.add_argument("--seed", type=natural, default=None, help="simulation seed, for a repeatable link")
    sim.add_argument("--save-records", metavar="PREFIX", help="also write PREFIX-alice.npz and PREFIX-bob.npz")
    session(sim)
    sim.set_defaults(func=simulate)
    _add_pool(roles)

    for role, where, help_text, wait, func in (
        ("alice", "--listen", "run Alice: serve one Bob on HOST:PORT (port 0: any free port, printed)", "Bob", alice),
        ("bob", "--connect", "run Bob: connect to Alice at HOST:PORT and drive the session", "Alice", bob),
    ):
        p = roles.add_parser(role, help=help_text)
        p.add_argument(
            where,
            type=_address if role == "alice" else _peer_address,
            required=True,
            metavar="HOST:PORT",
            help="where Alice listens (port 0: any free port, printed)" if role == "alice" else "where Alice is found",
        )
        p.add_argument(
            "--records", required=True, help=f"{role}'s records: .npz (qkd simulate --save-records) or a QDP/1 capture"
        )
        auth = p.add_mutually_exclusive_group(required=True)
        auth.add_argument(
            "--auth-key-file", help="pre-shared key (16 bytes or more): HMAC-SHA256, computationally secure"
        )
        auth.add_argument(
            "--auth-pool",
            metavar="FILE",
            help="pre-shared key pool (qkd pool-create): Wegman-Carter, information-theoretic; "
            "consumed by the session and replenished from its key",
        )
        p.add_argument(
            "--timeout",
            type=_timeout,
            default=30.0,
            help=f"seconds to wait for {wait} to appear, and for each of {wait}'s messages (30)",
        )
        session(p)
        p.set_defaults(func=func)

    _add_proxy(roles)


def _add_proxy(roles: Commands) -> None:
    p = roles.add_parser("proxy", help="forward TCP connections with a link's one-way delay (qkd bob -> it -> alice)")
    p.add_argument(
        "--listen", type=_address, required=True, metavar="HOST:PORT", help="where Bob connects (port 0: any)"
    )
    p.add_argument("--to", type=_peer_address, required=True, metavar="HOST:PORT", help="where Alice listens")
    p.add_argument("--delay-ms", type=real, required=True, help="one-way delay, each direction, in ms")
    p.add_argument("--jitter-ms", type=real, default=0.0, help="widest extra delay of a chunk, in ms (0)")
    p.add_argument("--max-connections", type=count, default=16, help="connections forwarded at once (16; 1 to 1024)")
    p.set_defaults(func=proxy)


def _add_pool(roles: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = roles.add_parser("pool-create", help="write a key pool file for --auth-pool (one at each end, same key)")
    p.add_argument("pool", metavar="FILE", help="the pool file to create (owner-only; never replaced)")
    p.add_argument("--key-file", required=True, help="the pre-shared key bytes the pool starts with")
    p.set_defaults(func=pool_create)


def pool_create(args: argparse.Namespace) -> int:
    """``qitcore qkd pool-create``: writes a key pool holding the bytes of ``--key-file``."""
    from ..qkd import KeyPool
    from ..qkd.keypool import RESERVE

    limit = 1 << 26  # 64 Mbyte: far more pre-shared key than a link starts with; /dev/zero is refused
    try:
        with open(args.key_file, "rb") as f:
            key = f.read(limit + 1)
    except OSError as exc:
        raise InvalidArgumentError(f"--key-file {args.key_file}: {exc.strerror or exc}") from None
    if len(key) > limit:
        raise InvalidArgumentError(f"--key-file {args.key_file}: holds more than {limit} bytes: not a key file")
    if len(key) < RESERVE:
        # A session reserves the pool a step of RESERVE bytes at a time: a smaller pool could
        # never authenticate one.
        raise InvalidArgumentError(
            f"--key-file {args.key_file}: {len(key)} bytes, fewer than the {RESERVE} a session needs at least"
        )
    with KeyPool.create(args.pool, key) as pool:
        print(f"key pool {args.pool}: {8 * pool.size:,} bits")
    return 0


def _prepare(args: argparse.Namespace) -> Params:
    """The session's parameters, checked, and the folders of the files it will write (before any
    work is done)."""
    from ..qkd import Params

    params = Params(
        mu=args.mu,
        p=args.p,
        qber_threshold=args.qber_threshold,
        sample_fraction=args.sample_fraction,
        eps_sec=args.eps_sec,
        eps_cor=args.eps_cor,
        cascade=args.cascade,
        reconciliation=args.reconciliation,
    )
    # An end's own inputs are never its outputs: a --key-out naming the pool would replace the
    # pre-shared key with the session's.
    inputs = [p for p in (getattr(args, k, None) for k in ("records", "auth_key_file", "auth_pool")) if p]
    check_output_folders(
        inputs=inputs, key_out=args.key_out, json=args.json, save_records=getattr(args, "save_records", None)
    )
    return params


def _finish(args: argparse.Namespace, key: bytes, report: Report) -> int:
    import json

    from .._records import as_dict

    print(report.text())
    if args.json:
        write_atomically(args.json, json.dumps(as_dict(report), indent=2) + "\n")
    if not report.key_bits:
        # No key file at all: an empty one would read as a key to a script, and would replace
        # whatever the path held.
        written = f"; {args.key_out} not written" if args.key_out else ""
        print(f"qitcore: no key: {report.no_key_reason()}{written}", file=sys.stderr)
        return 1
    if args.key_out:
        with atomic_file(args.key_out, private=True) as out:
            out.write(key)
    return 0


def _peer_inputs(args: argparse.Namespace) -> tuple[AuthKey, Records]:
    """Alice's or Bob's pre-shared authentication key (or open, locked key pool) and detection
    records."""
    from ..qkd import KeyPool
    from ..qkd.channel import read_auth_key
    from ..qkd.session import check_records

    if args.auth_pool is None:
        return read_auth_key(args.auth_key_file, "--auth-key-file"), check_records(_records(args.records), args.role)
    pool = KeyPool(args.auth_pool)
    try:
        return pool, check_records(_records(args.records), args.role)
    except BaseException:
        pool.close()
        raise


def _close(auth_key: AuthKey) -> None:
    from ..qkd import KeyPool

    if isinstance(auth_key, KeyPool):
        auth_key.close()


def _records(path: str) -> Records:
    """Records from an .npz file (qkd simulate --save-records) or a QDP/1 capture of a device's
    DETECTIONS frames (any other file)."""
    from ..qkd import Records
    from ..qkd.device import read_detections

    if path.endswith(".npz"):
        return Records.load(path)
    try:
        with open(path, "rb") as f:
            # Chunk by chunk: memory follows the records found, not the file (or device) named.
            records = read_detections(iter(lambda: f.read(1 << 20), b""))
    except OSError as exc:
        raise SampleFileError(f"{path}: {exc.strerror or exc}") from None
    if len(records) == 0:
        raise SampleFileError(f"{path}: no detection records (neither an .npz records file nor a QDP/1 capture)")
    return records


def simulate(args: argparse.Namespace) -> int:
    """``qitcore qkd simulate``: 0 when a key was distilled, 1 when none was."""
    from ..qkd import LinkModel, distill

    params = _prepare(args)
    link = LinkModel(
        distance_km=args.distance_km,
        attenuation_db_per_km=args.attenuation_db_per_km,
        detector_efficiency=args.detector_efficiency,
        dark_count=args.dark_count,
        misalignment=args.misalignment,
        mu=params.mu,
        p=params.p,
        key_basis_probability=args.key_basis_probability,
    )
    print(f"simulating {args.pulses:,} pulses over {args.distance_km:g} km ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    sim = link.simulate(args.pulses, seed=args.seed)
    print(f"{len(sim.bob):,} detections in {time.perf_counter() - start:.2f} s; distilling ...", file=sys.stderr)
    if args.save_records:
        sim.alice.save(f"{args.save_records}-alice.npz")
        sim.bob.save(f"{args.save_records}-bob.npz")
    result = distill(sim.alice, sim.bob, params=params)
    return _finish(args, result.bob_key, result.report)


def alice(args: argparse.Namespace) -> int:
    """``qitcore qkd alice``: 0 when a key was distilled, 1 when none was."""
    from ..qkd import AliceSession

    params = _prepare(args)
    auth_key, records = _peer_inputs(args)
    host, port = args.listen
    try:
        return _alice(args, AliceSession(records, params, auth_key), host, port)
    finally:
        _close(auth_key)


def _alice(args: argparse.Namespace, session: AliceSession, host: str, port: int) -> int:
    """Serves one Bob and finishes; Alice's part of :func:`alice`, the pool closed around it."""
    from .._net import listen_socket
    from ..qkd import serve_tcp

    where = _validate.show_host_port(host, port)
    try:
        server = listen_socket(host, port)
    except OSError as exc:
        raise QitError(f"--listen {where}: {exc.strerror or exc}") from None
    with server:
        where = _validate.show_host_port(host, server.getsockname()[1])
        print(f"alice: listening on {where}", file=sys.stderr, flush=True)

        def connected(peer: str) -> None:
            print(f"alice: Bob connected from {peer}", file=sys.stderr, flush=True)

        try:
            serve_tcp(session, server, timeout=args.timeout, on_connect=connected)
        except QitError as exc:
            # The session's own error (Bob's parameters differ, a QBER too high) says more than
            # the channel's.
            raise session.error or exc from None
    key, report = session.result()
    return _finish(args, key, report)


def bob(args: argparse.Namespace) -> int:
    """``qitcore qkd bob``: 0 when a key was distilled, 1 when none was."""
    from ..qkd import BobSession, TcpChannel

    params = _prepare(args)
    auth_key, records = _peer_inputs(args)
    host, port = args.connect
    try:
        with TcpChannel(auth_key, host, port, timeout=args.timeout, retry=args.timeout) as channel:
            key, report = BobSession(records, params, channel).run()
    finally:
        _close(auth_key)
    return _finish(args, key, report)


def proxy(args: argparse.Namespace) -> int:
    """``qitcore qkd proxy``: forwards until Ctrl-C or SIGTERM, then 0."""
    import contextlib

    from ..qkd.delay import check_delay
    from ..qkd.proxy import DelayProxy

    one_way, jitter = check_delay(args.delay_ms, args.jitter_ms, names=("--delay-ms", "--jitter-ms"), unit="ms")
    p = DelayProxy(args.to, one_way, jitter, listen=args.listen, max_connections=args.max_connections)
    with terminate_as_interrupt(), contextlib.suppress(KeyboardInterrupt), p:
        host, port = p.address
        print(
            f"proxy: listening on {_validate.show_host_port(host, port)}, forwarding to "
            f"{_validate.show_host_port(*args.to)} with {args.delay_ms:g} ms "
            f"(+ up to {args.jitter_ms:g} ms) each way",
            file=sys.stderr,
            flush=True,
        )
        while True:
            time.sleep(3600)  # the forwarding runs on the proxy's thread; a signal ends the wait
    print(f"proxy: stopped ({_connections(p)})", file=sys.stderr)
    return 0


def _connections(p: DelayProxy) -> str:
    """What the proxy did with its connections, for its last line."""
    total = p.accepted + p.refused + p.looped
    parts = [f"{p.forwarded:,} forwarded"]
    if p.accepted > p.forwarded:
        parts.append(f"{p.accepted - p.forwarded:,} not (the target unreachable, or still connecting)")
    if p.refused:
        parts.append(f"{p.refused:,} refused (--max-connections)")
    if p.looped:
        parts.append(f"{p.looped:,} from the proxy itself (--to leads back to it)")
    return f"{total:,} connection{'s' * (total != 1)}" + (": " + ", ".join(parts) if total else "")
