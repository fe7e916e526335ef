"""User errors of ``qitcore kme ...`` are one line on stderr (``qitcore: error: ...``) and exit
status 2, never a traceback; the KME's background threads report through ``logging``
(``qitcore.kme.*``), never by printing, and never log a key."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import qitcore.kme
from qitcore.cli import main
from qitcore.kme import KeyStore, KMEClient
from qitcore.kme.config import SourceSettings
from qitcore.kme.feeder import Feeder
from qitcore.kme.peer import PeerClient, PeerSettings, SessionDriver
from qitcore.kme.pki import local_pki
from qitcore.qkd import Params


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return local_pki(tmp_path_factory.mktemp("pki"), ["SAE-A", "SAE-B"])


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("qitcore: error: ") and message in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("action", [["status", "SAE-B"], ["get", "SAE-B"], ["get-by-id", "SAE-A", "some-id"]])
@pytest.mark.parametrize(
    "files, message",
    [
        ({"cert": "missing.pem"}, "cert, key: cannot load missing.pem"),
        ({"key": "missing.key"}, "No such file"),
        ({"ca": "missing.pem"}, "ca: cannot load missing.pem"),
        ({"key": "SAE-B_key"}, "the key is not the certificate's"),
        ({"cert": "ca_key"}, "cert, key: cannot load"),
        ({"ca": "SAE-A_key"}, "ca: cannot load"),
        ({"url": "http://127.0.0.1:1"}, "plain HTTP is not offered"),
        ({"url": "https://127.0.0.1:port"}, "url:"),
        ({"url": "https://127.0.0.1:99999"}, "url:"),
        ({"url": "closed"}, "Connection refused"),
    ],
)
def test_client_commands_report_user_errors_in_one_line(
    pki: dict[str, Path], capsys: pytest.CaptureFixture[str], action: list[str], files: dict[str, str], message: str
) -> None:
    chosen = {"cert": "SAE-A", "key": "SAE-A_key", "ca": "ca", **files}
    paths = {k: str(pki[v]) if v in pki else v for k, v in chosen.items() if k != "url"}
    url = files.get("url", "https://127.0.0.1:1")
    if url == "closed":
        url = f"https://127.0.0.1:{_closed_port()}"
    argv = ["kme", *action, "--url", url, "--cert", paths["cert"], "--key", paths["key"], "--ca", paths["ca"]]
    _one_line_error(capsys, argv, message)


def test_serve_reports_an_unwritable_folder_and_store_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _one_line_error(capsys, ["kme", "serve", "--dir", str(blocker / "kme")], "certificates: cannot write")
    local_pki(tmp_path, ["A"])
    config = tmp_path / "kme.toml"
    config.write_text(f'[kme]\nsaes = ["A"]\nstore = "{blocker}/store.sqlite"\n[tls]\ncert = "kme.pem"\n')
    _one_line_error(capsys, ["kme", "serve", "--config", str(config), "--no-source"], "store: cannot open")
    config.write_text('[kme]\nsaes = ["A"]\n[connections]\nidle_timeout = 0\n')
    _one_line_error(capsys, ["kme", "serve", "--config", str(config)], "[connections] idle_timeout")
    # Limits of the wrong kind or out of order are refused at load, not in a request or the key
    # source's thread (a float key size stopped the source and served no keys).
    for limits, named in (
        ("key_size = 256.0", "[limits] key_size: expected an int"),
        ("min_key_size = 512\nmax_key_size = 256", "[limits] key sizes"),
        ("key_size = 16\nmin_key_size = 64", "[limits] key sizes"),
    ):
        config.write_text(f'[kme]\nsaes = ["A"]\n[limits]\n{limits}\n')
        _one_line_error(capsys, ["kme", "serve", "--config", str(config)], named)
    config.write_text('[kme]\nsaes = ["A"]\n[source]\npulses = 1.5\n')
    _one_line_error(capsys, ["kme", "serve", "--config", str(config)], "[source] pulses: expected an int")
    # A bad address is refused before the local set-up writes its certificates and keys.
    fresh = tmp_path / "fresh"
    _one_line_error(capsys, ["kme", "serve", "--dir", str(fresh), "--listen", "[::1]"], "--listen: expected HOST:PORT")
    assert not fresh.exists()


def test_serving_without_aiohttp_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if not installed: importing it fails
    monkeypatch.delitem(sys.modules, "qitcore.kme.https", raising=False)
    monkeypatch.delattr(qitcore.kme, "https", raising=False)
    argv = ["kme", "serve", "--dir", str(tmp_path / "kme"), "--listen", "127.0.0.1:0", "--no-source"]
    _one_line_error(capsys, argv, "pip install 'qitcore[kme]'")


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), "5", True])
def test_the_client_checks_its_timeout(pki: dict[str, Path], timeout: object) -> None:
    with pytest.raises(ValueError, match="timeout"):
        KMEClient("https://127.0.0.1:1", str(pki["SAE-A"]), str(pki["SAE-A_key"]), str(pki["ca"]), timeout=timeout)  # type: ignore[arg-type]


def test_a_traceback_never_reaches_the_terminal(pki: dict[str, Path]) -> None:
    """The same through the installed entry point, as a user runs it."""
    argv = ["status", "SAE-B", "--url", "https://127.0.0.1:1", "--cert", str(pki["SAE-A"])]
    result = subprocess.run(
        [sys.executable, "-m", "qitcore", "kme", *argv, "--key", str(pki["SAE-B_key"]), "--ca", str(pki["ca"])],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_the_feeder_logs_instead_of_printing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    store = KeyStore(tmp_path / "s.sqlite")
    caplog.set_level(logging.DEBUG, logger="qitcore.kme")
    feeder = Feeder(store, SourceSettings(distance_km=20, pulses=30_000_000, low_water=1), 256, 10).start()
    try:
        for _ in range(600):
            if any("distilled" in r.getMessage() for r in caplog.records):
                break
            feeder._stop.wait(0.1)
    finally:
        feeder.stop()
    (record,) = [r for r in caplog.records if "distilled" in r.getMessage()]
    assert record.name == "qitcore.kme.feeder" and record.levelno == logging.INFO
    assert capsys.readouterr() == ("", "")
    keys = store.take("SAE-A", ["SAE-B"], 10, 32)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert all(k.hex() not in logged and repr(k) not in logged for _, k in keys)
    store.close()


def test_the_session_driver_logs_a_peer_it_cannot_reach(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    store = KeyStore(tmp_path / "s.sqlite")
    port = _closed_port()
    settings = PeerSettings("bob", "127.0.0.1", port, "127.0.0.1", 0, b"k" * 32, frozenset({"SAE-A"}), 1)
    client = PeerClient(store, settings, timeout=1)
    caplog.set_level(logging.INFO, logger="qitcore.kme")
    driver = SessionDriver(store, client, settings, Params(), 1024).start()
    try:
        for _ in range(100):
            if caplog.records:
                break
            driver._stop.wait(0.05)
    finally:
        driver.stop()
        client.close()
    record = caplog.records[0]
    assert record.name == "qitcore.kme.peer" and record.levelno == logging.WARNING
    assert "peer link" in record.getMessage() and str(port) in record.getMessage()
    assert "k" * 32 not in "\n".join(r.getMessage() for r in caplog.records)
    assert capsys.readouterr() == ("", "")
    store.close()
