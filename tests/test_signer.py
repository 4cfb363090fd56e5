"""The signer process and its socket: the narrow protocol, purposes, activation held in memory only.

Each test runs a real `SignerServer` on a real Unix socket (a thread of the test process, or `mpki signer`
as a subprocess where the process boundary is the point), and talks to it as the CA does."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mpki.ca import CertificationAuthority, IssuanceOrder
from mpki.ceremony import run_dev_ceremony
from mpki.config import Environment, Settings, load_settings
from mpki.domain import ConfigError, Forbidden, InvalidRequest, KeyStoreError
from mpki.keys import KeyAlgorithm, SoftwareKeyStore
from mpki.keys.purposes import CA_PURPOSES, OCSP_RESPONDER_PURPOSES, Purpose
from mpki.keys.quorum import QuorumError, read_share
from mpki.signer.client import SignerClient, signer_listening
from mpki.signer.connect import open_signer
from mpki.signer.server import SignerServer
from mpki.signer.service import DEV_PASSPHRASE, SigningService
from mpki.signer.signing_keys import SigningKeys
from mpki.signer.wire import read_message, send_message
from mpki.store import AuditRepository, Database
from tests.csr_factory import device_csr

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# The whole protocol. A request added here must be argued for: none may return key material.
NARROW_PROTOCOL = {"status", "activate", "deactivate", "active", "keys", "info", "generate", "sign", "checkpoint"}


@pytest.fixture
def socket_path() -> Iterator[Path]:
    """Unix socket paths are limited to ~107 bytes: a short directory of its own, mode 0700."""
    directory = Path(tempfile.mkdtemp(prefix="mpki-s"))
    yield directory / "signer.sock"
    shutil.rmtree(directory, ignore_errors=True)


def serve_in_thread(service: SigningService, path: Path) -> SignerServer:
    server = SignerServer(service, path)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    server.ready.wait(5)
    return server


@pytest.fixture
def signer(authority: CertificationAuthority, socket_path: Path) -> Iterator[SignerClient]:
    server = serve_in_thread(SigningService(authority.settings), socket_path)
    client = SignerClient(socket_path)
    yield client
    client.close()
    server.shutdown()


def test_the_ca_issues_through_the_socket_and_every_purpose_is_counted(
    authority: CertificationAuthority, signer: SignerClient
) -> None:
    remote = CertificationAuthority(authority.settings, authority.database, SigningKeys(signer))
    assert remote.keystore.remote
    orders = [IssuanceOrder("smki-device", device_csr(os.urandom(8)), approved_by="test") for _ in range(5)]
    results = remote.issue_many(orders, actor="test")
    ca = x509.load_der_x509_certificate(remote.get_ca("smki-device-ca").certificate_der)
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    for result in results:
        assert result.certificate is not None
        certificate = x509.load_der_x509_certificate(result.certificate.der)
        assert certificate.signature_hash_algorithm is not None
        public.verify(
            certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(certificate.signature_hash_algorithm)
        )
    assert signer.status().signatures == {"certificate": 5}


def test_an_ocsp_key_never_signs_a_certificate(authority: CertificationAuthority, signer: SignerClient) -> None:
    responder = signer.generate("responder", KeyAlgorithm.EC_P256, None, OCSP_RESPONDER_PURPOSES)
    tbs_certificate = x509.load_der_x509_certificate(authority.get_ca("smki-root").certificate_der)
    with pytest.raises(Forbidden, match="made for ocsp"):
        signer.sign(responder.key_id, Purpose.CERTIFICATE, "sha256", [tbs_certificate.tbs_certificate_bytes])
    # Nor by calling the certificate an OCSP response: the signer looks at the shape.
    with pytest.raises(InvalidRequest, match="not shaped like one"):
        signer.sign(responder.key_id, Purpose.OCSP, "sha256", [tbs_certificate.tbs_certificate_bytes])
    assert signer.status().signatures == {}


def test_a_ca_key_refuses_what_it_was_not_made_for_and_unknown_keys(
    authority: CertificationAuthority, signer: SignerClient
) -> None:
    ca = authority.get_ca("smki-device-ca")
    with pytest.raises(Forbidden, match="not for signing audit-checkpoint"):
        signer.sign(ca.key_id, Purpose.AUDIT_CHECKPOINT, "sha256", [b"mpki-audit-checkpoint\n{}"])
    with pytest.raises(KeyStoreError, match="no recorded purposes"):
        signer.sign("0" * 32, Purpose.CERTIFICATE, "sha256", [b"\x30\x00"])
    with pytest.raises(InvalidRequest, match="hash 'md5'"):
        signer.sign(ca.key_id, Purpose.RECORD, "md5", [b"{}"])


def test_the_protocol_is_narrow_and_nothing_it_answers_carries_a_secret(
    authority: CertificationAuthority, socket_path: Path
) -> None:
    service = SigningService(authority.settings)
    server = serve_in_thread(service, socket_path)
    try:
        assert set(server.dispatcher.handlers) == NARROW_PROTOCOL
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(str(socket_path))
        replies = []
        for op in ("export", "wrap", "backup", "pin", "secret"):
            send_message(raw, {"op": op, "key_id": authority.get_ca("smki-root").key_id})
            message = read_message(raw)
            assert message is not None
            assert message[0]["ok"] is False and "has no request" in message[0]["error"]
        for op in ("status", "keys", "active"):
            send_message(raw, {"op": op})
            message = read_message(raw)
            assert message is not None and message[0]["ok"] is True
            replies.append(json.dumps(message[0]).encode())
        raw.close()
        # Every private key's scalar, as DER and base64, appears in no answer.
        opened = SoftwareKeyStore.open(authority.settings.keys_dir, DEV_PASSPHRASE)
        for info in opened.list_keys():
            private = opened._private(info.key_id)
            assert isinstance(private, ec.EllipticCurvePrivateKey)
            scalar = private.private_numbers().private_value.to_bytes(32, "big")
            for reply in replies:
                assert (
                    scalar not in reply and base64.b64encode(scalar) not in reply and scalar.hex().encode() not in reply
                )
    finally:
        server.shutdown()


def test_the_socket_is_its_owners_only_and_a_second_signer_is_refused(
    authority: CertificationAuthority, socket_path: Path
) -> None:
    server = serve_in_thread(SigningService(authority.settings), socket_path)
    try:
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
        with pytest.raises(KeyStoreError, match="already listening"):
            SignerServer(SigningService(authority.settings), socket_path)
    finally:
        server.shutdown()
    deadline = time.monotonic() + 5
    while socket_path.exists():  # the serving thread removes its socket as it ends
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # A socket file left by a dead signer is taken over.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path))
    stale.close()
    assert socket_path.exists() and not signer_listening(socket_path)
    again = serve_in_thread(SigningService(authority.settings), socket_path)
    assert signer_listening(socket_path)
    again.shutdown()


def test_garbage_on_the_socket_drops_that_connection_only(
    authority: CertificationAuthority, signer: SignerClient
) -> None:
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(signer.path))
    raw.sendall(b"\x00\x00\x00\x05nope!")
    assert raw.recv(10) == b""  # not JSON: the signer closes this connection
    raw.close()
    assert signer.status().active_groups == ()


def test_concurrent_clients_all_get_valid_signatures(authority: CertificationAuthority, signer: SignerClient) -> None:
    ca = authority.get_ca("smki-device-ca")
    public = x509.load_der_x509_certificate(ca.certificate_der).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    failures: list[str] = []

    def sign_many(index: int) -> None:
        client = SignerClient(signer.path)
        try:
            payloads = [json.dumps({"n": index, "i": i}).encode() for i in range(50)]
            for payload, signature in zip(
                payloads, client.sign(ca.key_id, Purpose.RECORD, "sha256", payloads), strict=True
            ):
                public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        except Exception as error:  # collected: an exception in a thread would be lost
            failures.append(repr(error))
        finally:
            client.close()

    threads = [threading.Thread(target=sign_many, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert signer.status().signatures == {"record": 300}


# ----- activation, in production: memory only --------------------------------------------------------


@pytest.fixture
def quorum_home(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[dict[str, str], Path]]:
    """The development ceremony's installation (a 2-of-3 quorum), then marked production."""
    home = Path(env["MPKI_HOME"])
    run_dev_ceremony(env, home)
    production = env | {"MPKI_ENVIRONMENT": "production"}
    # The development ceremony leaves its group active on disk; production starts from nothing.
    for stale in (home / "run" / "active").glob("*"):
        stale.unlink()
    yield production, home


def activation_shares(home: Path) -> list[Path]:
    groups = {path: read_share(path).group for path in sorted((home / "dev-shares").iterdir())}
    return [path for path, group in groups.items() if group == "ca-keys"]


def test_production_holds_activation_in_memory_only_and_forgets_it_on_restart(
    quorum_home: tuple[dict[str, str], Path],
) -> None:
    env, home = quorum_home
    settings = load_settings(env)
    assert settings.environment is Environment.PRODUCTION
    service = SigningService(settings)
    assert not service.is_active()
    shares = [read_share(path) for path in activation_shares(home)[:2]]
    result = service.activate(shares, None)
    assert result.group == "ca-keys" and service.is_active()
    assert not any((home / "run").rglob("*.secret"))
    ca = next(info for info in service.list_keys() if info.label == "smki-device-ca")
    assert service.sign(ca.key_id, Purpose.RECORD, "sha256", [b"{}"])
    # A restarted signer is a new service: the quorum must come again.
    assert not SigningService(settings).is_active()
    assert service.deactivate() == ["ca-keys"] and not service.is_active()


def test_production_refuses_a_passphrase_keystore_and_a_missing_signer(authority: CertificationAuthority) -> None:
    production = authority.settings.with_overrides(environment=Environment.PRODUCTION)
    with pytest.raises(ConfigError, match="passphrase alone is refused in production"):
        SigningService(production).is_active()
    with pytest.raises(ConfigError, match="no signer answers"):
        open_signer(production)


def test_one_share_or_a_share_of_another_group_does_not_activate(quorum_home: tuple[dict[str, str], Path]) -> None:
    env, home = quorum_home
    service = SigningService(load_settings(env))
    [first, *_] = activation_shares(home)
    with pytest.raises(QuorumError):
        service.activate([read_share(first)], None)
    others = [p for p in sorted((home / "dev-shares").iterdir()) if read_share(p).group != "ca-keys"]
    by_group: dict[str, list[Path]] = {}
    for path in others:
        by_group.setdefault(read_share(path).group, []).append(path)
    for group, paths in by_group.items():
        with pytest.raises(QuorumError):
            service.activate([read_share(p) for p in paths], None)
        assert not service.is_active(), group
    assert service.active_groups() == []


def test_mpki_signer_process_activated_by_the_cli_then_restarted_needs_the_quorum_again(
    quorum_home: tuple[dict[str, str], Path], socket_path: Path, database_url: str
) -> None:
    env, home = quorum_home
    env = env | {"MPKI_SIGNER_SOCKET": str(socket_path)}

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-m", "mpki", "signer"], env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not signer_listening(socket_path):
            assert process.poll() is None and time.monotonic() < deadline, "the signer did not start"
            time.sleep(0.05)
        return process

    def mpki(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mpki", *args], env=env, capture_output=True, text=True, timeout=120
        )

    process = start()
    try:
        shares = activation_shares(home)[:2]
        done = mpki("keys", "activate", *[arg for path in shares for arg in ("--share", str(path))])
        assert done.returncode == 0, done.stderr
        issued = mpki("crl", "generate")
        assert issued.returncode == 0, issued.stderr
        counted = json.loads(mpki("signer", "status", "--json").stdout)
        assert counted["active_groups"] == ["ca-keys"] and counted["signatures"]["crl"] >= 1
        assert counted["pid"] == process.pid
    finally:
        process.terminate()
        process.wait(15)
    process = start()
    try:
        refused = mpki("crl", "generate")
        assert refused.returncode != 0 and "not active" in refused.stderr
    finally:
        process.terminate()
        process.wait(15)
    database = Database(env["MPKI_DATABASE_URL"])
    try:
        with database.reader() as session:
            activations = AuditRepository(session).by_action("keys.activated")
            assert [json.loads(event.details)["signer"] for event in activations][-1:] == ["process"]
    finally:
        database.dispose()


def test_no_signer_in_development_signs_in_process(settings: Settings) -> None:
    assert settings.environment is Environment.DEVELOPMENT
    assert isinstance(open_signer(settings), SigningService)
    assert os.environ.get("MPKI_ENVIRONMENT") != "production"


def test_keys_made_before_purposes_are_refused_until_their_purposes_are_recorded(
    authority: CertificationAuthority,
) -> None:
    from mpki.ca.custody import KeyCustody
    from mpki.keys.purposes import PURPOSES_FILE

    (authority.settings.keys_dir / PURPOSES_FILE).unlink()
    order = IssuanceOrder("smki-device", device_csr(os.urandom(8)), approved_by="test")
    with pytest.raises(KeyStoreError, match="no recorded purposes"):
        authority.issue(order)
    keeper = KeyCustody(authority.settings, authority.database, authority.keystore)
    recorded = keeper.record_missing_purposes(actor="operator:test")
    assert {tuple(p) for p in recorded.values()} == {tuple(sorted(p.value for p in CA_PURPOSES))}
    assert len(recorded) == len(authority.list_cas())
    assert authority.issue(order).profile == "smki-device"
    assert keeper.record_missing_purposes(actor="operator:test") == {}
