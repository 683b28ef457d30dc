"""mqtt.tls and mqtt.brokers: a file that does not exist or does not load is refused at start with its key
path and value; host/port and brokers are one or the other."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ingest.config import ConfigError, MqttSettings, load_settings
from ingest.gateway.uplink import UplinkError, ssl_context
from ingest.tls import TlsFiles, client_context
from tests.certs import client_cert, make_ca, server_cert


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("REALLABOR_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("certs")
    ca = make_ca(directory, "ca")
    client = client_cert(ca, directory)
    other = server_cert(make_ca(directory, "other-ca"), directory, "other")
    encrypted = directory / "encrypted.key"
    key = serialization.load_pem_private_key(client.key.read_bytes(), password=None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass phrase"),
        )
    )
    junk = directory / "junk.pem"
    junk.write_text("not a certificate\n")
    return {
        "ca": ca.cert,
        "cert": client.cert,
        "key": client.key,
        "other_key": other.key,
        "encrypted": encrypted,
        "junk": junk,
        "missing": directory / "missing.pem",
    }


def refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    return str(refused.value)


def tls_yaml(certs: dict[str, Path], **files: str) -> str:
    entries = ", ".join(f"{key}: '{certs[name]}'" for key, name in files.items())
    return f"mqtt: {{tls: {{{entries}}}}}\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"ca_file": "missing"},
            "mqtt.tls.ca_file: cannot read: No such file or directory (got '{missing}')",
        ),
        ({"ca_file": "junk"}, "mqtt.tls.ca_file: no PEM CA certificate in it"),
        ({"ca_file": "key"}, "mqtt.tls.ca_file: no PEM CA certificate in it"),
        (
            {"ca_file": "ca", "cert_file": "missing", "key_file": "key"},
            "mqtt.tls.cert_file: cannot read: No such file or directory (got '{missing}')",
        ),
        ({"ca_file": "ca", "cert_file": "junk", "key_file": "key"}, "mqtt.tls.cert_file: no PEM certificate"),
        ({"ca_file": "ca", "cert_file": "key", "key_file": "key"}, "mqtt.tls.cert_file: no PEM certificate"),
        (
            {"ca_file": "ca", "cert_file": "cert", "key_file": "missing"},
            "mqtt.tls.key_file: cannot read: No such file or directory (got '{missing}')",
        ),
        ({"ca_file": "ca", "cert_file": "cert", "key_file": "junk"}, "mqtt.tls.key_file: no PEM private key"),
        (
            {"ca_file": "ca", "cert_file": "cert", "key_file": "other_key"},
            "mqtt.tls.key_file: not the private key of {cert} (got '{other_key}')",
        ),
        (
            {"ca_file": "ca", "cert_file": "cert", "key_file": "encrypted"},
            "mqtt.tls.key_file: encrypted: give the key without a pass phrase",
        ),
        ({"ca_file": "ca", "cert_file": "cert"}, "mqtt.tls: cert_file and key_file go together"),
        ({"ca_file": "ca", "key_file": "key"}, "mqtt.tls: cert_file and key_file go together"),
    ],
)
def test_tls_files_are_loaded_at_start_and_the_key_named(
    tmp_path: Path, certs: dict[str, Path], files: dict[str, str], expected: str
) -> None:
    message = refusal(tmp_path, tls_yaml(certs, **files))
    assert expected.format(**{name: str(path) for name, path in certs.items()}) in message, message


def test_tls_missing_ca_file_and_unknown_key(tmp_path: Path, certs: dict[str, Path]) -> None:
    message = refusal(tmp_path, f"mqtt: {{tls: {{cert_file: '{certs['cert']}', ca: x}}}}\n")
    assert "mqtt.tls.ca_file: Field required" in message
    assert "mqtt.tls.ca: unknown key" in message


def test_good_tls_settings(tmp_path: Path, certs: dict[str, Path]) -> None:
    path = tmp_path / "config.yaml"
    text = tls_yaml(certs, ca_file="ca", cert_file="cert", key_file="key")
    path.write_text(text.replace("}}", ", server_name: broker.example}}"))
    tls = load_settings(path).mqtt.tls
    assert tls is not None
    assert (tls.ca_file, tls.cert_file, tls.key_file) == (certs["ca"], certs["cert"], certs["key"])
    assert tls.server_name == "broker.example"


def test_environment_sets_tls_too(
    tmp_path: Path, certs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REALLABOR_MQTT__TLS__CA_FILE", str(certs["junk"]))
    message = refusal(tmp_path, "{}\n")
    assert (
        f"mqtt.tls.ca_file: no PEM CA certificate in it (NO_CERTIFICATE_OR_CRL_FOUND) (got '{certs['junk']}')"
        in message
    )


def test_brokers_are_tried_in_order_and_host_port_name_the_first() -> None:
    settings = MqttSettings.model_validate({"brokers": ["node-1.example:8883", "[::1]:8884"]})
    assert settings.addresses() == [("node-1.example", 8883), ("::1", 8884)]
    assert (settings.host, settings.port) == ("node-1.example", 8883)
    assert MqttSettings.model_validate(settings.model_dump(exclude_unset=True)) == settings
    assert MqttSettings().addresses() == [("127.0.0.1", 1883)]
    assert MqttSettings(host="broker", port=8883).addresses() == [("broker", 8883)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt: {host: a, brokers: ['b:1883']}\n", "mqtt: host and brokers both set"),
        ("mqtt: {port: 8883, brokers: ['b:1883']}\n", "mqtt: port and brokers both set"),
        ("mqtt: {brokers: ['b:1883', 'c']}\n", "mqtt.brokers: 'c' is not host:port"),
        ("mqtt: {brokers: ['b:88830']}\n", "mqtt.brokers: 'b:88830' is not host:port"),
    ],
)
def test_brokers_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in refusal(tmp_path, text)


def test_host_from_the_environment_and_brokers_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REALLABOR_MQTT__HOST", "broker.example")
    assert "mqtt: host and brokers both set" in refusal(tmp_path, "mqtt: {brokers: ['b:1883']}\n")


def test_cli_refuses_a_bad_tls_file_with_exit_2(tmp_path: Path, certs: dict[str, Path]) -> None:
    path = tmp_path / "config.yaml"
    secret = "not-shown-Zq8vX2kP9wL4"
    path.write_text(
        f"mqtt: {{username: ingest, password: {secret}, brokers: ['127.0.0.1:8883'], "
        f"tls: {{ca_file: '{certs['missing']}'}}}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALLABOR_")}
    result = subprocess.run(
        [sys.executable, "-m", "ingest.cli", "config", "check", str(path)],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert (
        f"mqtt.tls.ca_file: cannot read: No such file or directory (got '{certs['missing']}')"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert secret not in result.stderr + result.stdout


def test_the_gateway_shares_the_helper(certs: dict[str, Path]) -> None:
    """central.tls is loaded by the same code (ingest/tls.py): the same key named in its refusal."""
    assert (
        ssl_context(TlsFiles(ca_file=certs["ca"], cert_file=certs["cert"], key_file=certs["key"])) is not None
    )
    with pytest.raises(UplinkError, match=r"TLS: cannot load key_file .*: not the private key of"):
        ssl_context(TlsFiles(ca_file=certs["ca"], cert_file=certs["cert"], key_file=certs["other_key"]))


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> None:
    """A TLS handshake in memory; ssl.SSLError if the client refuses the server's certificate."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {c: False, s: False}
    for _ in range(10):
        for side in (c, s):
            try:
                side.do_handshake()
                done[side] = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("no handshake")


def test_issued_certificates_chain_to_their_ca_and_name_loopback(tmp_path: Path) -> None:
    """tests/certs.py itself: the server certificate is good for 127.0.0.1 and localhost under its CA only."""
    ca, other = make_ca(tmp_path, "ca"), make_ca(tmp_path, "other")
    server = server_cert(ca, tmp_path)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(server.cert, server.key)
    for name in ("127.0.0.1", "localhost"):
        _handshake(client_context(TlsFiles(ca_file=ca.cert)), server_side, name)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _handshake(client_context(TlsFiles(ca_file=ca.cert)), server_side, "broker.example")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(client_context(TlsFiles(ca_file=other.cert)), server_side, "127.0.0.1")


def test_brokers_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REALLABOR_MQTT__BROKERS", '["node-1:8883", "node-2:8883"]')
    path = tmp_path / "config.yaml"
    path.write_text("{}\n")
    assert load_settings(path).mqtt.addresses() == [("node-1", 8883), ("node-2", 8883)]
    assert "mqtt: port and brokers both set" in refusal(tmp_path, "mqtt: {port: 1884}\n")
