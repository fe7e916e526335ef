"""``qitcore serve`` and ``qitcore status`` as real processes: the daemon starts, says where it
listens, serves, reports its devices, reloads its configuration on SIGHUP, and stops cleanly on
SIGTERM and SIGINT (exit status 0, its socket removed)."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from qitcore.devices.catalog import DRIVERS
from qitcore.kme.pki import local_pki
from qitcore.service import config as service_config
from qitcore.service.client import DaemonClient
from qitcore.service.daemon import Daemon as ServiceDaemon

QITCORE = [sys.executable, "-m", "qitcore"]
READY = "qitcore serve: listening on "


class Daemon:
    """A ``qitcore serve`` process whose stderr goes to a file."""

    def __init__(self, folder: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.socket = str(folder / "q.sock")
        self.log = folder / "serve.log"
        with open(self.log, "wb") as err:
            self.process = subprocess.Popen(
                [*QITCORE, "serve", "--socket", self.socket, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while READY not in self.text():
            assert self.process.poll() is None, f"qitcore serve exited {self.process.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"qitcore serve did not say it listens:\n{self.text()}"
            time.sleep(0.05)

    def status(self) -> dict[str, Any]:
        out = _qitcore("status", "--socket", self.socket, "--json")
        assert out.returncode == 0, out.stderr
        info: dict[str, Any] = json.loads(out.stdout)
        return info

    def until(self, condition: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            info = self.status()
            if condition(info):
                return info
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {info}\n{self.text()}"
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"qitcore serve did not stop on {signal.Signals(sig).name}:\n{self.text()}") from None


def _qitcore(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QITCORE, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Starts daemons; every one still running at the end is killed."""
    started: list[Daemon] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> Daemon:
        folder = tmp_path / f"d{len(started)}"
        folder.mkdir()
        daemon = Daemon(folder, list(args), env)
        started.append(daemon)
        if ready:
            daemon.wait_ready()
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            if daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait(10)


def _healthy(n: int) -> Callable[[dict[str, Any]], bool]:
    def check(info: dict[str, Any]) -> bool:
        devices = info["pool"]["devices"]
        return len(devices) == n and all(d["state"] == "healthy" for d in devices)

    return check


def test_serve_status_and_a_clean_stop(daemons: Callable[..., Daemon]) -> None:
    daemon = daemons("--device", "sim://?seed=1")
    assert f"{READY}{daemon.socket}\n" in daemon.text()
    info = daemon.until(_healthy(1), "a healthy device")
    device = info["pool"]["devices"][0]
    assert device["url"] == "sim://?seed=***"  # the seed stays hidden
    assert device["health_failures"] == {} and 0 < device["min_entropy"] <= 8
    assert info["pid"] == daemon.process.pid and info["front_ends"]["local"]["path"] == daemon.socket
    with DaemonClient(daemon.socket) as client:
        data = client.read(100_000)
    assert len(data) == 100_000
    info = daemon.status()
    assert info["pool"]["devices"][0]["bytes_served"] >= 100_000
    assert info["stats"]["served"]["local"] >= 100_000
    table = _qitcore("status", "--socket", daemon.socket)
    assert table.returncode == 0, table.stderr
    assert "DEVICE" in table.stdout and "sim://?seed=***  healthy" in table.stdout
    assert f"socket {daemon.socket}" in table.stdout
    assert daemon.stop(signal.SIGTERM) == 0
    assert not os.path.exists(daemon.socket)
    assert "SIGTERM: stopping" in daemon.text() and "stopped" in daemon.text()


def test_ctrl_c_stops_it_cleanly_too(daemons: Callable[..., Daemon]) -> None:
    daemon = daemons("--device", "sim://")
    assert daemon.stop(signal.SIGINT) == 0
    assert not os.path.exists(daemon.socket)
    assert "SIGINT: stopping" in daemon.text()


def test_sighup_reloads_the_configuration(daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    config = tmp_path / "qitcored.toml"
    config.write_text('[[device]]\nurl = "sim://?seed=1"\n')
    daemon = daemons("--config", str(config))
    daemon.until(_healthy(1), "one healthy device")
    config.write_text('[[device]]\nurl = "sim://?seed=1"\n\n[[device]]\nurl = "sim://?seed=2"\n')
    daemon.process.send_signal(signal.SIGHUP)
    info = daemon.until(_healthy(2), "the added device")
    assert info["pool"]["devices"][0]["reopens"] == 0  # the unchanged device kept running
    assert "SIGHUP: configuration reloaded; serving from 2 device(s)" in daemon.text()
    # A file that does not check is logged, and the running configuration kept.
    config.write_text('[[device]]\nurl = "sim://?rat=1"\n')
    daemon.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while "not reloaded" not in daemon.text():
        assert time.monotonic() < deadline, daemon.text()
        time.sleep(0.05)
    assert "rat: not a parameter of sim:// URLs" in daemon.text()
    assert len(daemon.status()["pool"]["devices"]) == 2
    # Removing a device.
    config.write_text('[[device]]\nurl = "sim://?seed=2"\n')
    daemon.process.send_signal(signal.SIGHUP)
    daemon.until(lambda i: [d["url"] for d in i["pool"]["devices"]] == ["sim://?seed=***"], "the removal")
    assert daemon.stop() == 0


def test_serve_without_a_device_says_what_to_give() -> None:
    out = _qitcore("serve")
    assert out.returncode == 2
    assert "qitcore: error: no device to serve from: give --device URL" in out.stderr
    assert "simulator is served only when named" in out.stderr


def test_serve_refuses_bad_options_before_starting(tmp_path: Path) -> None:
    out = _qitcore("serve", "--device", "sim://?rat=5", "--socket", str(tmp_path / "s"))
    assert out.returncode == 2 and "rat: not a parameter of sim:// URLs" in out.stderr
    out = _qitcore("serve", "--device", "sim://", "--https", "127.0.0.1:0")
    assert out.returncode == 2 and "--https: give --tls-cert, --tls-key, --tls-ca too" in out.stderr
    out = _qitcore("serve", "--device", "sim://", "--tls-ca", "x.pem")
    assert out.returncode == 2 and "only with --https" in out.stderr
    out = _qitcore("serve", "--config", str(tmp_path / "none.toml"))
    assert out.returncode == 2 and "none.toml: No such file" in out.stderr
    assert not os.path.exists(tmp_path / "s")


def test_status_without_a_daemon_says_how_to_start_one(tmp_path: Path) -> None:
    out = _qitcore("status", "--socket", str(tmp_path / "nobody.sock"))
    assert out.returncode == 2
    assert "qitcore: error:" in out.stderr and "qitcore serve" in out.stderr


def test_status_wait_waits_for_a_starting_daemon(daemons: Callable[..., Daemon]) -> None:
    daemon = daemons("--device", "sim://", ready=False)
    out = _qitcore("status", "--socket", daemon.socket, "--json", "--wait", "30")
    assert out.returncode == 0, out.stderr + daemon.text()
    assert json.loads(out.stdout)["pid"] == daemon.process.pid
    assert daemon.stop() == 0


def test_a_device_failing_its_health_test_shows_in_status(daemons: Callable[..., Daemon]) -> None:
    daemon = daemons("--device", "sim://?seed=1", "--device", "sim://?seed=2&fault=stuck:50000")

    def stuck_failed(info: dict[str, Any]) -> bool:
        return bool(info["pool"]["devices"][1]["health_failures"].get("RepetitionCountFailure"))

    info = daemon.until(stuck_failed, "the stuck device's failure")
    assert info["pool"]["devices"][0]["state"] == "healthy"
    assert "Repetition Count Test failed; the device stopped contributing" in daemon.text()
    table = _qitcore("status", "--socket", daemon.socket).stdout
    assert "RepetitionCountFailure" in table
    assert daemon.stop() == 0


def test_logs_carry_syslog_priorities_under_journald(daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    # journald sets JOURNAL_STREAM to the device:inode of the stream it gives the service.
    log = tmp_path / "d0" / "serve.log"
    log.parent.mkdir()
    log.touch()
    st = os.stat(log)
    env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    folder = tmp_path / "d0"
    daemon = Daemon(folder, ["--device", "sim://"], env)
    try:
        daemon.wait_ready()
        assert "<6>qitcore.service.daemon: listening on" in daemon.text()
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(10)


def test_the_systemd_unit_and_udev_rule_ship_with_the_package() -> None:
    unit = _qitcore("serve", "--print-systemd-unit")
    assert unit.returncode == 0
    assert f"ExecStart={sys.executable} -m qitcore serve --config /etc/qitcore/qitcored.toml" in unit.stdout
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit.stdout and "[Install]" in unit.stdout
    assert "Environment=QITCORE_SOCKET=/run/qitcore/qitcored.sock" in unit.stdout
    # No capability unless the kernel feed is wanted: the lines are there, commented.
    granted = [line for line in unit.stdout.splitlines() if "CAP_SYS_ADMIN" in line and not line.startswith("#")]
    assert granted == [], granted
    assert "#AmbientCapabilities=CAP_SYS_ADMIN" in unit.stdout and "uncomment" in unit.stdout.lower()
    rule = _qitcore("serve", "--print-udev-rule")
    assert rule.returncode == 0
    rules = [line for line in rule.stdout.splitlines() if line and not line.startswith("#")]
    # One rule for each device qitcore has a driver for, and none other.
    ids = {(d.vid, d.pid) for d in DRIVERS}
    assert len(rules) == len(ids)
    for vid, pid in ids:
        assert any(f'ATTRS{{idVendor}}=="{vid:04x}", ATTRS{{idProduct}}=="{pid:04x}"' in r for r in rules)
    assert all('GROUP="qitcore", MODE="0660"' in r for r in rules)


# -- reloads that fail, and stops with requests waiting ----------------------------------------


def _socket_answers(path: str) -> bool:
    with DaemonClient(path, timeout=10) as client:
        return len(client.read(16)) == 16


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[Callable[..., ServiceDaemon]]:
    """Daemons run in this process from a TOML file (SIGHUP is :meth:`Daemon.reload`), stopped at
    the end."""
    made: list[ServiceDaemon] = []

    def start(toml: str, default_reload: bool = False) -> ServiceDaemon:
        path = tmp_path / "qitcored.toml"
        path.write_text(toml)
        reload = None if default_reload else (lambda: service_config.load(path))
        daemon = ServiceDaemon(service_config.load(path), reload=reload, announce=io.StringIO())
        made.append(daemon)
        daemon.start()
        return daemon

    try:
        yield start
    finally:
        for daemon in made:
            daemon.stop()


def test_a_reload_to_a_socket_that_cannot_be_made_keeps_the_old_one_answering(
    in_process: Callable[..., ServiceDaemon], tmp_path: Path
) -> None:
    old = str(tmp_path / "old.sock")
    daemon = in_process(f'[[device]]\nurl = "sim://"\n[socket]\npath = "{old}"\n')
    assert _socket_answers(old)
    before = daemon.config
    # A folder that cannot be made: the new socket fails; the old one keeps serving, and the
    # configuration the daemon reports is still the one it runs (the devices not changed either).
    (tmp_path / "qitcored.toml").write_text(
        '[[device]]\nurl = "sim://?frame=512"\n[socket]\npath = "/proc/qitcore-nope/new.sock"\n'
    )
    assert daemon.reload() is False  # the default reload reads the file again
    assert daemon.config is before
    assert [d["url"] for d in daemon.status()["pool"]["devices"]] == ["sim://"]
    assert _socket_answers(old)
    # A group that does not exist is refused with the file's other checks.
    (tmp_path / "qitcored.toml").write_text(
        f'[[device]]\nurl = "sim://"\n[socket]\npath = "{old}"\ngroup = "qitcore-no-such-group"\n'
    )
    assert daemon.reload() is False
    assert _socket_answers(old)
    # A good new path: the new socket serves, the old one is gone.
    new = str(tmp_path / "new.sock")
    (tmp_path / "qitcored.toml").write_text(f'[[device]]\nurl = "sim://"\n[socket]\npath = "{new}"\n')
    assert daemon.reload() is True
    assert daemon.config.local.path == new and _socket_answers(new)
    assert not os.path.exists(old)


def test_a_failed_reload_of_one_front_end_puts_back_the_others(
    in_process: Callable[..., ServiceDaemon], tmp_path: Path
) -> None:
    old = str(tmp_path / "old.sock")
    daemon = in_process(f'[[device]]\nurl = "sim://"\n[socket]\npath = "{old}"\n')
    # The socket moves (fine), then the metrics address cannot be listened on: all is undone.
    blocker = socket.create_server(("127.0.0.1", 0))
    try:
        taken = blocker.getsockname()[1]
        (tmp_path / "qitcored.toml").write_text(
            f'[[device]]\nurl = "sim://"\n[socket]\npath = "{tmp_path / "new.sock"}"\n'
            f'[metrics]\nlisten = "127.0.0.1:{taken}"\n'
        )
        assert daemon.reload() is False
    finally:
        blocker.close()
    assert daemon.config.local.path == old and daemon.config.metrics is None
    assert _socket_answers(old) and not os.path.exists(tmp_path / "new.sock")
    assert "metrics" not in daemon.status()["front_ends"]


def test_a_daemon_made_from_a_file_reloads_that_file_by_default(
    in_process: Callable[..., ServiceDaemon], tmp_path: Path
) -> None:
    daemon = in_process(f'[[device]]\nurl = "sim://"\n[socket]\npath = "{tmp_path / "q.sock"}"\n', default_reload=True)
    (tmp_path / "qitcored.toml").write_text(
        f'[[device]]\nurl = "sim://?frame=512"\n[socket]\npath = "{tmp_path / "q.sock"}"\n'
    )
    assert daemon.reload() is True
    assert [d["url"] for d in daemon.status()["pool"]["devices"]] == ["sim://?frame=512"]


def test_sigterm_returns_promptly_with_an_https_request_waiting(daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    pki = local_pki(tmp_path / "pki", ["client-a"])
    config = tmp_path / "qitcored.toml"
    config.write_text(
        '[[device]]\nurl = "sim://?fault=stuck:0"\n'  # never healthy: requests wait
        f'[https]\nlisten = "127.0.0.1:0"\ncert = "{pki["kme"]}"\nkey = "{pki["kme_key"]}"\nca = "{pki["ca"]}"\n'
        "wait = 60\n"
    )
    daemon = daemons("--config", str(config))
    port = daemon.status()["front_ends"]["https"]["port"]
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    context.load_cert_chain(str(pki["client-a"]), str(pki["client-a_key"]))
    answers: list[Any] = []

    def ask() -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        try:
            conn.request("GET", "/random?bytes=16")
            answers.append(conn.getresponse().status)
        except (OSError, http.client.HTTPException) as exc:
            answers.append(exc)
        finally:
            conn.close()

    asking = threading.Thread(target=ask)
    asking.start()
    try:
        daemon.until(lambda i: i["stats"]["clients"].get("https", {}).get("open", 0) >= 1, "the request to arrive")
        time.sleep(0.5)  # it waits for the pool now
        started = time.monotonic()
        assert daemon.stop(timeout=20) == 0
        took = time.monotonic() - started
    finally:
        asking.join(35)
    # Before, the stop waited for the request's 60 s wait (systemd's TimeoutStopSec is 15).
    assert took < 5, f"SIGTERM took {took:.1f} s"
    assert len(answers) == 1 and answers[0] != 200, answers


def test_printing_the_unit_warns_when_its_python_cannot_run_under_systemd(tmp_path: Path) -> None:
    from qitcore.cli.service import unit_warnings

    # Under /tmp: the unit's PrivateTmp=yes hides it.
    assert any("PrivateTmp=yes" in w for w in unit_warnings("/tmp/venv/bin/python"))
    # Behind a folder others cannot search (a 0700 home): user qitcore cannot reach it.
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    home.chmod(0o700)
    warnings = unit_warnings(str(home / "bin" / "python"))
    assert any(f"{home} is not searchable by others" in w for w in warnings), warnings
    assert unit_warnings("/usr/bin/python3") == []


def test_a_second_daemon_on_a_held_socket_stops_before_opening_a_device(
    daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    first = daemons("--device", "sim://")
    (tmp_path / "second").mkdir()
    second = Daemon(tmp_path / "second", ["--device", "sim://", "--socket", first.socket])  # the last --socket wins
    try:
        assert second.process.wait(30) == 2
    finally:
        if second.process.poll() is None:
            second.process.kill()
            second.process.wait(10)
    assert "another daemon listens" in second.text()
    assert "serving from" not in second.text() and "healthy" not in second.text()
    assert _socket_answers(first.socket)
