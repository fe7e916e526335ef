"""``qitcore kme serve``: an ETSI GS QKD 014 KME with keys from a simulated QKD link; ``qitcore
kme status|get|get-by-id``: an SAE's requests to a KME, answered as JSON on stdout."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._validate import host_port, show_host_port
from ..errors import InvalidArgumentError
from ..report.files import write_atomically
from .args import Commands, count

# The KME (aiohttp, cryptography), the QKD session (numpy) and logging are imported by the commands
# that use them, not by every `qitcore` command line.
if TYPE_CHECKING:
    from ..kme import KMEClient
    from ..kme.feeder import Feeder
    from ..kme.peer import SessionDriver


def add_parsers(sub: Commands) -> None:
    kme = sub.add_parser("kme", help="ETSI GS QKD 014 key delivery")
    actions = kme.add_subparsers(dest="action", required=True)
    serve_p = actions.add_parser(
        "serve",
        help="run a KME (without --config: a local one in --dir, with generated certificates for SAE-A and SAE-B)",
    )
    serve_p.add_argument("--config", help="kme.toml (see qitcore.kme.config)")
    serve_p.add_argument("--dir", default="kme-local", help="folder of the local set-up (default kme-local)")
    serve_p.add_argument("--listen", help="HOST:PORT, overriding the configuration (port 0: any free port)")
    serve_p.add_argument("--no-source", action="store_true", help="serve only the keys already stored")
    serve_p.set_defaults(func=serve)

    def client(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", required=True, help="the KME, https://host:port")
        p.add_argument("--cert", required=True, help="this SAE's client certificate (PEM)")
        p.add_argument("--key", required=True, help="its private key (PEM)")
        p.add_argument("--ca", required=True, help="the CA of the KME's certificate (PEM)")

    status_p = actions.add_parser("status", help="a KME's Status for the link to SLAVE (JSON on stdout)")
    status_p.add_argument("slave", help="slave SAE ID")
    client(status_p)
    status_p.set_defaults(func=status)
    get_p = actions.add_parser("get", help="new keys shared with SLAVE, as the master SAE (enc_keys; JSON)")
    get_p.add_argument("slave", help="slave SAE ID")
    get_p.add_argument("--number", type=count, default=1, help="how many keys (default 1)")
    get_p.add_argument("--size", type=count, default=None, help="bits per key (the KME's default)")
    client(get_p)
    get_p.set_defaults(func=get)
    by_id = actions.add_parser("get-by-id", help="keys by ID from MASTER, as the slave SAE (dec_keys; JSON)")
    by_id.add_argument("master", help="master SAE ID")
    by_id.add_argument("key_ids", nargs="+", metavar="KEY_ID", help="the key IDs the master SAE passed on")
    client(by_id)
    by_id.set_defaults(func=get_by_id)


def status(args: argparse.Namespace) -> int:
    """``qitcore kme status``: the KME's Status for the link to the slave SAE."""
    return _ask(args, lambda kme: kme.status(args.slave).to_json())


def get(args: argparse.Namespace) -> int:
    """``qitcore kme get``: new keys shared with the slave SAE (the master's enc_keys)."""
    from ..kme.models import container

    return _ask(args, lambda kme: container(kme.get_keys(args.slave, number=args.number, size=args.size)))


def get_by_id(args: argparse.Namespace) -> int:
    """``qitcore kme get-by-id``: the keys the master SAE named (the slave's dec_keys)."""
    from ..kme.models import container

    return _ask(args, lambda kme: container(kme.get_keys_with_ids(args.master, args.key_ids)))


def _ask(args: argparse.Namespace, request: Callable[[KMEClient], Any]) -> int:
    """Makes one request of the KME as the SAE of ``--cert`` and prints its answer as JSON."""
    import json

    from ..kme import KMEClient

    with KMEClient(args.url, args.cert, args.key, args.ca) as kme:
        out = request(kme)
    print(json.dumps(out, indent=2))
    return 0


def serve(args: argparse.Namespace) -> int:
    """Runs the KME until interrupted (Ctrl-C or SIGTERM); its log goes to stderr meanwhile."""
    import logging

    from .logs import StderrHandler

    logger = logging.getLogger("qitcore.kme")
    handler, level = StderrHandler(), logger.level
    handler.setFormatter(logging.Formatter("kme: %(message)s"))
    logger.addHandler(handler)
    if level == logging.NOTSET or level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        return _serve(args)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _serve(args: argparse.Namespace) -> int:
    import signal
    import threading
    from pathlib import Path

    from ..kme import KeyStore, KMEServer
    from ..kme.config import load, local_config
    from ..kme.feeder import Feeder
    from ..kme.peer import PeerClient, PeerServer, SessionDriver
    from ..kme.pki import local_pki

    # Checked before anything is written: a bad address must not leave a folder of keys behind.
    address = host_port("--listen", args.listen) if args.listen else None
    if args.config is None:
        folder = Path(args.dir)
        local_pki(folder, ["SAE-A", "SAE-B"])
        config_path = folder / "kme.toml"
        if not config_path.exists():
            write_atomically(config_path, local_config("127.0.0.1", 8443))
    else:
        config_path = Path(args.config)
    settings = load(config_path)
    host, port = address or (settings.host, settings.port)
    _enough_descriptors(settings.connections.max_connections)
    # What has started is stopped in reverse order, also when a later part fails to start.
    with contextlib.ExitStack() as running:
        store = KeyStore(settings.store)
        running.callback(store.close)
        peer = settings.peer
        client = PeerClient(store, peer) if peer else None
        if client is not None:
            running.callback(client.close)
        peer_server = PeerServer(store, peer, settings.source.params()).start() if peer else None
        if peer_server is not None:
            running.callback(peer_server.stop)
        try:
            server = KMEServer(
                settings.kme, store, certfile=str(settings.cert), keyfile=str(settings.key), cafile=str(settings.ca),
                host=host, port=port, peer=client, pool=peer.role if peer else "local", limits=settings.connections,
            ).start()  # fmt: skip
        except InvalidArgumentError as exc:
            if args.listen or not str(exc).startswith("listen:"):
                raise
            # The address is the configuration's: said so, not blamed on --listen.
            raise InvalidArgumentError(f"{config_path}: [kme] {exc}") from None
        running.callback(server.stop)
        feeder: Feeder | SessionDriver | None = None
        if peer and client and peer_server:
            low = settings.source.low_water * settings.kme.key_size // 8
            params = settings.source.params()
            feeder = SessionDriver(store, client, peer, params, low, run_sessions=not args.no_source).start()
            listen = show_host_port(peer.listen_host, peer_server.address[1])
            there = show_host_port(peer.peer_host, peer.peer_port)
            _say(f"peer link: {peer.role}'s end, listening on {listen}, peer at {there}")
        elif not args.no_source:
            feeder = Feeder(store, settings.source, settings.kme.key_size, settings.kme.max_key_count).start()
        if feeder is not None:
            running.callback(feeder.stop)
        bound_host, bound_port = server.address
        saes = ", ".join(sorted(settings.kme.saes))
        url = f"https://{show_host_port(bound_host, bound_port)}"
        _say(f"listening on {url} ({settings.kme.kme_id}; SAEs {saes}); store {settings.store}")
        if args.config is None:
            d = Path(args.dir)
            _say(f"try  curl --cacert {d}/ca.pem --cert {d}/SAE-A.pem --key {d}/SAE-A.key "
                 f"{url}/api/v1/keys/SAE-B/status")  # fmt: skip
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    _say("stopped")
    return 0


def _say(text: str) -> None:
    print(f"kme: {text}", file=sys.stderr, flush=True)


def _enough_descriptors(connections: int) -> None:
    """Raises the soft limit on open files to what ``connections`` need (and the store, the peer
    link and the interpreter), as far as the hard limit allows: a common soft limit of 1024 would
    otherwise end accepting well before the configured bound."""
    import logging
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = connections + 256
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
        if target < need:
            logging.getLogger("qitcore.kme").warning(
                "only %d files may be open (hard limit): fewer than the %d connections configured", target, connections
            )
