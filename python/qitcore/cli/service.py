"""``qitcore serve``: the randomness service (one process owns the QRNGs and serves every
client); ``qitcore status``: what a running service is doing, as a table or JSON.

The daemon itself is :class:`qitcore.service.daemon.Daemon`; this module turns the command line
into its configuration, sets its logging up for a terminal or for journald, and prints the
systemd unit and udev rule that ship in the package.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import Any

from ..errors import InvalidArgumentError
from .args import Commands, count, positive_real


def add_parsers(sub: Commands) -> None:
    serve_p = sub.add_parser(
        "serve",
        help="serve health-tested, extracted random bytes from QRNGs to local clients, the kernel and the network",
        description=(
            "Owns the devices and serves their health-tested, extracted bytes until SIGTERM; SIGHUP reloads "
            "--config. Clients: qitcore.open('qitcored://'), qitcore.randbytes() (see docs/service.md)."
        ),
    )
    serve_p.add_argument(
        "--device",
        dest="devices",
        action="append",
        default=[],
        metavar="URL",
        help="a device to serve from (repeatable), e.g. sim://",
    )
    serve_p.add_argument("--config", metavar="FILE", help="a TOML configuration (see docs/service.md)")
    serve_p.add_argument(
        "--socket",
        metavar="PATH",
        help="the Unix socket (default: $QITCORE_SOCKET, else /run/qitcore/qitcored.sock as root, else "
        "$XDG_RUNTIME_DIR/qitcored.sock; without a runtime folder name it, in a folder only you may write to)",
    )
    serve_p.add_argument(
        "--feed-kernel", action="store_true", help="feed the kernel's entropy pool (RNDADDENTROPY; needs CAP_SYS_ADMIN)"
    )
    serve_p.add_argument("--https", metavar="HOST:PORT", help="serve over HTTPS with mutual TLS (needs --tls-*)")
    serve_p.add_argument("--tls-cert", metavar="PEM", help="the HTTPS server's certificate chain")
    serve_p.add_argument("--tls-key", metavar="PEM", help="its private key")
    serve_p.add_argument("--tls-ca", metavar="PEM", help="the CA that signs the clients' certificates")
    serve_p.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics here (off by default)")
    serve_p.add_argument(
        "--buffer",
        dest="buffer_bytes",
        type=count,
        metavar="BYTES",
        help="extracted bytes held ready, all devices together, filled at once (8 MiB)",
    )
    serve_p.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error"), help="default info"
    )
    serve_p.add_argument("--print-systemd-unit", action="store_true", help="print the systemd unit and exit")
    serve_p.add_argument("--print-udev-rule", action="store_true", help="print the udev rule for QRNGs and exit")
    serve_p.set_defaults(func=serve)

    status_p = sub.add_parser("status", help="what a running qitcore serve is doing (devices, pool, clients, counters)")
    status_p.add_argument(
        "--socket",
        dest="path",  # DaemonClient's parameter: its errors name it, written back as --socket
        metavar="PATH",
        help="the service's socket (default: $QITCORE_SOCKET alone if set, else "
        "/run/qitcore/qitcored.sock, then $XDG_RUNTIME_DIR/qitcored.sock)",
    )
    status_p.add_argument("--json", action="store_true", help="the whole status as JSON")
    status_p.add_argument(
        "--wait",
        type=positive_real,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for the service to answer (it may be starting)",
    )
    status_p.set_defaults(func=status)


# -- serve -------------------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    """``qitcore serve``: runs the service until SIGTERM or Ctrl-C; exit status 0 then."""
    if args.print_systemd_unit or args.print_udev_rule:
        if args.print_systemd_unit:
            sys.stdout.write(systemd_unit())
            for warning in unit_warnings(sys.executable):
                print(f"qitcore serve: warning: {warning}", file=sys.stderr)
        if args.print_udev_rule:
            sys.stdout.write(udev_rule())
        return 0
    from ..service.config import build
    from ..service.daemon import Daemon

    https = None
    tls = {"cert": args.tls_cert, "key": args.tls_key, "ca": args.tls_ca}
    if args.https is not None:
        missing = [f"--tls-{k}" for k, v in tls.items() if not v]
        if missing:
            raise InvalidArgumentError(f"--https: give {', '.join(missing)} too (mutual TLS needs all three)")
        https = {"listen": args.https, **{k: os.path.abspath(v) for k, v in tls.items()}}
    elif any(tls.values()):
        raise InvalidArgumentError("--tls-cert, --tls-key, --tls-ca: only with --https HOST:PORT")

    def make() -> Any:
        return build(
            args.config,
            devices=args.devices,
            socket=args.socket,
            feed_kernel=args.feed_kernel,
            metrics=args.metrics,
            https=https,
            buffer_bytes=args.buffer_bytes,
        )

    import logging

    from .logs import service_handler

    config = make()
    handler = service_handler()
    logger = logging.getLogger("qitcore")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(args.log_level.upper())
    try:
        return Daemon(config, reload=make if args.config else None).run()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def unit_warnings(python: str) -> list[str]:
    """Why the unit's ``ExecStart`` (``python``) may not run under systemd as user ``qitcore``: a
    path under /tmp (the unit's ``PrivateTmp=yes`` hides it) or one that other users cannot reach
    (a folder such as a 0700 home on the way, or the file itself not executable by others)."""
    warnings = []
    path = os.path.abspath(python)
    if path == "/tmp" or path.startswith(("/tmp/", "/var/tmp/")):
        warnings.append(
            f"ExecStart={path} is under /tmp, which the unit's PrivateTmp=yes hides from the service: "
            "install qitcore in a virtual environment elsewhere (such as /opt/qitcore) and print the unit from there"
        )
    folder = os.path.dirname(path)
    while folder and folder != "/":
        try:
            mode = os.stat(folder).st_mode
        except OSError:
            break
        if not mode & stat.S_IXOTH:
            warnings.append(
                f"ExecStart={path}: user qitcore cannot reach it ({folder} is not searchable by others): "
                "use a Python outside that folder"
            )
            break
        folder = os.path.dirname(folder)
    return warnings


def systemd_unit() -> str:
    """The systemd unit, ``ExecStart`` pointing at this Python's qitcore."""
    text = _shipped("qitcored.service")
    return text.replace("@PYTHON@", sys.executable)


def udev_rule() -> str:
    """The udev rule giving the QRNGs qitcore has drivers for to the ``qitcore`` group."""
    return _shipped("60-qitcore.rules")


def _shipped(name: str) -> str:
    from importlib import resources

    return (resources.files("qitcore.service") / "files" / name).read_text(encoding="utf-8")


# -- status ------------------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    """``qitcore status``: asks the running service; exit status 0, or 2 (with the reason) when
    none answers."""
    from ..service.client import DaemonClient  # type: ignore[import-not-found,unused-ignore]

    info = _ask(DaemonClient, args.path, args.wait)
    if args.json:
        import json

        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        sys.stdout.write(table(info))
    return 0


def _ask(client: Any, path: str | None, wait: float) -> dict[str, Any]:
    import time

    from ..errors import DeviceError

    deadline = time.monotonic() + wait
    while True:
        try:
            with client(path) as daemon:
                info: dict[str, Any] = daemon.status()
                return info
        except DeviceError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - the loop returns


def _duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes)
    return " ".join([*parts, f"{s} s"])


def table(info: dict[str, Any]) -> str:
    """The status as the terminal shows it: the service, the pool, one line per device, the
    clients and counters."""
    lines = []
    fronts = info.get("front_ends", {})
    lines.append(
        f"qitcore {info.get('version', '?')} serving, pid {info.get('pid', '?')}, "
        f"up {_duration(info.get('uptime', 0))}" + (f", config {info['config']}" if info.get("config") else "")
    )
    where = [f"socket {fronts['local']['path']}"] if "local" in fronts else []
    for name in ("https", "metrics"):
        if name in fronts:
            port = fronts[name].get("port")
            where.append(f"{name} {fronts[name]['listen']}" + (f" (port {port})" if port else ""))
    if "kernel" in fronts:
        feed = fronts["kernel"]
        if feed.get("credit_refused"):
            where.append(f"kernel feed on, no credit ({feed['credit_refused']})")
        elif "bits_per_write" in feed:
            bits, chunk = feed["bits_per_write"], feed.get("chunk", "?")
            where.append(f"kernel feed on, {bits} bits credited per {chunk}-byte write")
        else:
            where.append("kernel feed on")
    lines.append("  " + "; ".join(where))
    pool = info.get("pool") or {}
    lines.append(f"pool: {_size(pool.get('buffered', 0))} of {_size(pool.get('capacity', 0))} ready")
    rows = [("DEVICE", "STATE", "SERVED", "READY", "HEALTH FAILURES", "REOPENS", "LAST ERROR")]
    for d in pool.get("devices", []):
        failures = ", ".join(f"{k} {v}" for k, v in sorted(d.get("health_failures", {}).items())) or "0"
        rows.append(
            (
                d["url"],
                d["state"],
                _size(d.get("bytes_served", 0)),
                _size(d.get("buffered", 0)),
                failures,
                str(d.get("reopens", 0)),
                (d.get("last_error") or "-")[:80],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    stats = info.get("stats") or {}
    clients = stats.get("clients", {})
    if clients:
        lines.append(
            "clients: "
            + "; ".join(f"{name} {c['open']} open ({c['total']} since start)" for name, c in sorted(clients.items()))
        )
    requests = stats.get("requests", {})
    for name, n in sorted(stats.get("served", {}).items()):
        r = requests.get(name, {})
        refused = sum(r.get("refused", {}).values())
        lines.append(f"served to {name}: {_size(n)} in {r.get('total', 0)} requests ({refused} refused)")
    for name, r in sorted(requests.items()):
        if name not in stats.get("served", {}):
            lines.append(f"requests from {name}: {r.get('total', 0)} ({sum(r.get('refused', {}).values())} refused)")
    kernel = stats.get("kernel", {})
    if kernel.get("bytes_written"):
        written, bits = _size(kernel["bytes_written"]), kernel.get("bits_credited", 0)
        lines.append(f"kernel: {written} written, {bits} bits of entropy credited")
    if stats.get("discarded"):
        lines.append(f"discarded unserved: {_size(stats['discarded'])}")
    return "\n".join(lines) + "\n"
