"""The service's configuration: a TOML file and the command line become one ServiceConfig, and
every bad key or value is refused before anything opens, with a message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
from qitcore.errors import InvalidArgumentError, QitError
from qitcore.service.config import DeviceSettings, ServiceConfig, build, load, public_url

FULL = """
[pool]
buffer_bytes = 1048576
backoff = [1, 10]
reopen_after_health_failure = false

[[device]]
url = "sim://?seed=1"
min_entropy = 5.5
epsilon = 1e-30

[[device]]
url = "sim://?seed=2&rate=100000"
extractor_seed = "0011"

[socket]
path = "run/q.sock"
mode = 0o600
max_clients = 8
idle_timeout = 5

[metrics]
listen = "127.0.0.1:0"
"""


def _write(tmp_path: Path, text: str, name: str = "qitcored.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_full_file_is_read(tmp_path: Path) -> None:
    config = load(_write(tmp_path, FULL))
    assert [d.url for d in config.devices] == ["sim://?seed=1", "sim://?seed=2&rate=100000"]
    assert dict(config.devices[0].options) == {"min_entropy": 5.5, "epsilon": 1e-30}
    assert config.devices[1].options["extractor_seed"] == b"\x00\x11"
    assert config.buffer_bytes == 1 << 20
    assert config.backoff == (1.0, 10.0) and config.reopen_after_health_failure is False
    # A relative socket path is taken from the file's folder.
    assert config.local.path == str(tmp_path / "run" / "q.sock")
    assert config.local.mode == 0o600 and config.local.max_clients == 8
    assert config.metrics.listen == "127.0.0.1:0"
    assert config.https is None and config.kernel is None
    assert config.path == str(tmp_path / "qitcored.toml")
    assert config.devices[0].epsilon == 1e-30


def test_the_command_line_adds_devices_and_overrides_the_socket(tmp_path: Path) -> None:
    config = build(
        _write(tmp_path, FULL), devices=["sim://?seed=3"], socket=str(tmp_path / "other.sock"), metrics="127.0.0.1:1"
    )
    assert [d.url for d in config.devices][-1] == "sim://?seed=3"
    assert config.local.path == str(tmp_path / "other.sock")
    assert config.metrics.listen == "127.0.0.1:1"


def test_devices_from_the_command_line_alone(tmp_path: Path) -> None:
    config = build(devices=["sim://"], socket=str(tmp_path / "s.sock"), buffer_bytes=1 << 16)
    assert [d.url for d in config.devices] == ["sim://"] and config.path is None
    assert config.buffer_bytes == 1 << 16 and config.backoff == (0.5, 30.0)
    assert config.reopen_after_health_failure is True


def test_no_device_at_all_is_refused_and_the_simulator_is_not_a_default(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="no device to serve from: give --device URL"):
        build(socket=str(tmp_path / "s.sock"))
    with pytest.raises(InvalidArgumentError, match="no device to serve from"):
        load(_write(tmp_path, "[socket]\npath = 's.sock'\n"))


def test_the_kernel_feed_from_the_command_line(tmp_path: Path) -> None:
    config = build(devices=["serial:///dev/ttyACM0"], socket=str(tmp_path / "s.sock"), feed_kernel=True)
    assert config.kernel is not None and config.kernel.device == "/dev/random"


@pytest.mark.parametrize("url", ["sim://", "sim+pty://?seed=1", "file:///tmp/c.qdp", "qitcored:///tmp/q.sock"])
def test_a_kernel_credit_from_a_source_that_is_not_entropy_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(InvalidArgumentError, match="credit_cap = 0"):
        build(devices=[url], socket=str(tmp_path / "s.sock"), feed_kernel=True)
    # Fed without credit, it is accepted.
    path = _write(tmp_path, f"[[device]]\nurl = '{url}'\n[kernel]\ncredit_cap = 0\n")
    assert load(path).kernel.credit_cap == 0


BAD = [
    ("[[device]]\nurl = 'sim://'\n[bogus]\n", r"unknown table\(s\) bogus \(known: pool, device"),
    ("[pool]\nbufer_bytes = 1\n[[device]]\nurl = 'sim://'\n", r"\[pool\]: unknown key\(s\) bufer_bytes"),
    ("[pool]\nbuffer_bytes = 10\n[[device]]\nurl = 'sim://'\n", "buffer_bytes: must be at least 65536"),
    ("[pool]\nbuffer_bytes = 'big'\n[[device]]\nurl = 'sim://'\n", "buffer_bytes: expected an int"),
    ("[pool]\nbackoff = [5, 1]\n[[device]]\nurl = 'sim://'\n", "backoff: expected"),
    ("[pool]\nbackoff = 3\n[[device]]\nurl = 'sim://'\n", "backoff: expected"),
    ("[pool]\nreopen_after_health_failure = 'no'\n[[device]]\nurl = 'sim://'\n", "reopen_after_health_failure"),
    ("[device]\nurl = 'sim://'\n", r"\[\[device\]\] must be an array of tables"),
    ("[[device]]\nrate = 1\n", r"\[\[device\]\] #1: url must be a device URL"),
    ("[[device]]\nurl = 'sim://'\n[[device]]\nurl = 'sim://'\nbogus = 1\n", r"#2: sim://: unknown option\(s\) bogus"),
    ("[[device]]\nurl = 'sim://?rat=10'\n", "rat: not a parameter of sim:// URLs"),
    ("[[device]]\nurl = 'sim://?rate=-1'\n", "rate"),
    ("[[device]]\nurl = 'nosuch://x'\n", "no backend for 'nosuch://'"),
    ("[[device]]\nurl = 'sim://'\nepsilon = 2.0\n", "epsilon: expected a number above 0, below 1"),
    ("[[device]]\nurl = 'sim://'\nextractor_seed = 'zz'\n", "extractor_seed must be hex digits"),
    ("[[device]]\nurl = 'sim://'\n[[device]]\nurl = 'sim://'\n", "sim:// given more than once"),
    ("[[device]]\nurl = 'sim://'\n[socket]\npth = 'x'\n", r"\[socket\]: unknown key\(s\) pth"),
    ("[[device]]\nurl = 'sim://'\n[socket]\nmode = 'rw'\n", r"\[socket\]: mode: expected octal"),
    ("[[device]]\nurl = 'sim://'\n[socket]\nmax_clients = 0\n", r"\[socket\]: max_clients"),
    ("socket = 3\n[[device]]\nurl = 'sim://'\n", r"\[socket\] must be a table, got int"),
    ("[[device]]\nurl = 'sim://'\nsocket = 3\n", r"unknown option\(s\) socket \(known: url, alpha"),
    ("[[device]]\nurl = 'sim://'\n[metrics]\nlisten = 'nowhere'\n", r"\[metrics\]: metrics listen"),
    ("[[device]]\nurl = 'sim://'\n[metrics.connections]\nmax_conections = 3\n", r"\[metrics.connections\]: unknown"),
    ("[[device]]\nurl = 'sim://'\n[kernel]\ncredit_cap = 9\n", r"\[kernel\]: kernel credit_cap"),
    ("[[device]]\nurl = 'sim://'\n[kernel]\ncredit = 1\n", r"\[kernel\]: unknown key\(s\) credit"),
    ("[[device]]\nurl = 'sim://'\n[pool]\n[pool.x]\n", r"\[pool\]: unknown key\(s\) x"),
    ("[[device]]\nurl = 'sim://\n", "is not valid TOML"),
    ("[[device]]\nurl = 'sim://'\nmin_entropy = 9\n", r"min_entropy: must lie in \(0, 8\] bits per sample"),
    ("[[device]]\nurl = 'sim://?bits=4&min_entropy=4.5'\n", r"must lie in \(0, 4\]"),
    # One replayable input under two URLs: its entropy would be spent twice.
    ("[[device]]\nurl = 'sim://?seed=3'\n[[device]]\nurl = 'sim+pty://?seed=3&rate=1000'\n", "same replayable input"),
    ("[[device]]\nurl = 'file:///tmp/c.qdp'\n[[device]]\nurl = 'file:///tmp/../tmp/c.qdp?bits=8'\n", "same replayable"),
    # The socket's group is looked up with the file, so a reload naming a wrong one changes nothing.
    ("[[device]]\nurl = 'sim://'\n[socket]\ngroup = 'qitcore-no-such-group'\n", r"\[socket\]: group: no group named"),
]


@pytest.mark.parametrize(("text", "match"), BAD, ids=[m for _, m in BAD])
def test_bad_files_are_refused_naming_the_key(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InvalidArgumentError, match=match) as info:
        load(path)
    assert str(info.value).startswith(str(path)) or "config:" in str(info.value)


def test_https_tables_become_the_front_ends_settings(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp", reason="the HTTPS front end needs the service extra")
    text = (
        "[[device]]\nurl = 'sim://'\n[https]\nlisten = '127.0.0.1:0'\ncert = 'c.pem'\nkey = 'k.pem'\nca = 'ca.pem'\n"
        "[https.clients.alice]\nbytes_per_second = 1000\n[https.clients.'*']\nmax_request = 64\n"
    )
    config = load(_write(tmp_path, text))
    assert config.https.cert == str(tmp_path / "c.pem") and config.https.ca == str(tmp_path / "ca.pem")
    assert config.https.clients["alice"].bytes_per_second == 1000
    assert config.https.clients["*"].max_request == 64
    bad = text + "[https.clients.bob]\nbytes_per_sec = 1\n"
    with pytest.raises(InvalidArgumentError, match=r"\[https.clients.bob\]: unknown key\(s\) bytes_per_sec"):
        load(_write(tmp_path, bad, "bad.toml"))
    worse = text + "[https.clients.bob]\nmax_request = -1\n"
    with pytest.raises(InvalidArgumentError, match=r"\[https.clients.bob\]: max_request"):
        load(_write(tmp_path, worse, "worse.toml"))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="config: .*missing.toml: No such file"):
        load(tmp_path / "missing.toml")


def test_service_config_checks_its_own_fields(tmp_path: Path) -> None:
    local = build(devices=["sim://"], socket=str(tmp_path / "s.sock")).local
    with pytest.raises(QitError, match="devices"):
        ServiceConfig(devices=("sim://",), local=local)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="given more than once"):
        ServiceConfig(devices=(DeviceSettings("sim://"), DeviceSettings("sim://")), local=local)
    # One check for each, with one message, whether the pool or the configuration is given it.
    from qitcore.service.pool import Pool

    for make in (lambda b: ServiceConfig(devices=(DeviceSettings("sim://"),), local=local, backoff=b), _pool_backoff):
        with pytest.raises(InvalidArgumentError, match=r"backoff: expected \[first, longest\] seconds"):
            make((5, 1))
    with pytest.raises(QitError, match="reopen_after_health_failure: expected true or false"):
        ServiceConfig(devices=(DeviceSettings("sim://"),), local=local, reopen_after_health_failure="no")  # type: ignore[arg-type]
    with pytest.raises(QitError, match="reopen_after_health_failure: expected true or false"):
        Pool([DeviceSettings("sim://")], reopen_after_health_failure="no")  # type: ignore[arg-type]
    # The buffer's bound is the same too.
    ServiceConfig(devices=(DeviceSettings("sim://"),), local=local, buffer_bytes=1 << 32)
    Pool([DeviceSettings("sim://")], buffer_bytes=1 << 32).close()
    with pytest.raises(InvalidArgumentError, match="buffer_bytes"):
        Pool([DeviceSettings("sim://")], buffer_bytes=(1 << 32) + 1)


def _pool_backoff(backoff: object) -> object:
    from qitcore.service.pool import Pool

    return Pool([DeviceSettings("sim://")], backoff=backoff)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sim://", "sim://"),
        ("sim://?seed=5&rate=10", "sim://?seed=***&rate=10"),
        ("https://h:1/?cert=a.pem&key=k.pem&password=x", "https://h:1/?cert=a.pem&key=***&password=***"),
        ("https://h/?api_token=t&bits=8", "https://h/?api_token=***&bits=8"),
    ],
)
def test_public_urls_hide_secret_values(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_binary_files_are_refused_as_not_toml_by_every_loader(tmp_path: Path) -> None:
    """TOML is UTF-8 text: a binary file given as a configuration (of the service or of a KME) is
    one clear error, not a UnicodeDecodeError."""
    from qitcore.kme import config as kme_config

    path = tmp_path / "random.bin"
    path.write_bytes(bytes(range(255, -1, -1)) * 4)
    for loader in (load, kme_config.load):
        with pytest.raises(InvalidArgumentError, match="is not valid TOML"):
            loader(path)
