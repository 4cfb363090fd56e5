"""API authentication by client certificate (DEPENDENCIES.md gotcha 9): registration and authentication in
`ra`, the RFC 9440 Client-Cert header from a trusted proxy only, and a real `mpki serve` over mutual TLS."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from mpki.ca import CertificationAuthority, IssuanceOrder
from mpki.domain import Forbidden, InvalidRequest, OrgStatus, Role, Unauthenticated
from mpki.ra import OPERATOR, Directory, Principal
from mpki.web import create_app
from mpki.web.clientcert import parse_client_cert_header, trusted_proxies
from tests.csr_factory import ec_key, tls_client_csr, tls_server_csr
from tests.support.serve import running_server

EUI_A = "90B3D51F30010000"
EUI_B = "90B3D51F30020000"
SUBSCRIBER = "sub@acme.example"
OTHER = "sub@beta.example"
PROXY = "10.1.2.3"


def client_certificate(authority: CertificationAuthority, cn: str) -> bytes:
    """DER of a tls-client certificate issued by the development TLS issuing CA."""
    return authority.issue(IssuanceOrder("tls-client", tls_client_csr(cn), "test")).der


def self_signed(days: int = 30) -> bytes:
    key = ec_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def directory(authority: CertificationAuthority) -> Directory:
    directory = Directory(authority.database)
    directory.create_organisation(OPERATOR, "Acme Energy", [EUI_A], ["supplier"])
    directory.create_organisation(OPERATOR, "Beta Networks", [EUI_B], ["network-operator"])
    directory.create_person(OPERATOR, SUBSCRIBER, Role.AUTHORISED_SUBSCRIBER, "Acme Energy")
    directory.create_person(OPERATOR, OTHER, Role.AUTHORISED_SUBSCRIBER, "Beta Networks")
    directory.create_person(OPERATOR, "manager@provider.example", Role.RA_MANAGER, None)
    directory.create_person(OPERATOR, "admin@provider.example", Role.SERVICE_ADMIN, None)
    return directory


def principal_of(directory: Directory, email: str) -> Principal:
    return directory.authenticate(directory.create_token(OPERATOR, email))


# ----- ra: registration and authentication -----------------------------------------------------------------


def test_register_and_authenticate(authority: CertificationAuthority, directory: Directory, sql: Connection) -> None:
    der = client_certificate(authority, "acme-client")
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    fingerprint = directory.register_client_certificate(OPERATOR, SUBSCRIBER.upper(), pem)
    assert len(fingerprint) == 64

    who = directory.authenticate_certificate(der)
    acme = directory.organisation(OPERATOR, "Acme Energy").id
    assert (who.email, who.role, who.organisation_id) == (SUBSCRIBER, Role.AUTHORISED_SUBSCRIBER, acme)
    # Isolation: the certificate's principal is scoped to its own organisation.
    assert [view.name for view in directory.organisations(who)] == ["Acme Energy"]
    with pytest.raises(Forbidden):
        directory.organisation(who, "Beta Networks")

    details = sql.execute(
        text("SELECT actor, details FROM audit_events WHERE action = 'client_certificate.registered'")
    ).all()
    assert len(details) == 1 and fingerprint in details[0].details and SUBSCRIBER in details[0].details
    with pytest.raises(InvalidRequest, match="already registered"):
        directory.register_client_certificate(OPERATOR, OTHER, der)


def test_unknown_revoked_and_expired_certificates_are_refused(
    authority: CertificationAuthority, directory: Directory, sql: Connection
) -> None:
    with pytest.raises(Unauthenticated, match="not registered"):
        directory.authenticate_certificate(self_signed())

    revoked = client_certificate(authority, "revoked")
    fingerprint = directory.register_client_certificate(OPERATOR, SUBSCRIBER, revoked)
    directory.revoke_client_certificate(OPERATOR, fingerprint)
    with pytest.raises(Unauthenticated, match="not registered"):
        directory.authenticate_certificate(revoked)
    actions = sql.execute(text("SELECT action FROM audit_events WHERE action LIKE 'client_certificate.%'")).scalars()
    assert sorted(actions) == ["client_certificate.registered", "client_certificate.revoked"]

    expired = client_certificate(authority, "expired")
    fingerprint = directory.register_client_certificate(OPERATOR, SUBSCRIBER, expired)
    sql.execute(
        text("UPDATE client_certificates SET not_after = :t WHERE fingerprint_sha256 = :f"),
        {"t": dt.datetime(2000, 1, 1), "f": fingerprint},
    )
    with pytest.raises(Unauthenticated, match="expired"):
        directory.authenticate_certificate(expired)

    # Revoked by the CA (this service issued it): refused although still registered.
    ca_revoked = client_certificate(authority, "ca-revoked")
    fingerprint = directory.register_client_certificate(OPERATOR, SUBSCRIBER, ca_revoked)
    directory.authenticate_certificate(ca_revoked)
    sql.execute(text("UPDATE certificates SET status = 'revoked' WHERE fingerprint_sha256 = :f"), {"f": fingerprint})
    with pytest.raises(Unauthenticated, match="revoked"):
        directory.authenticate_certificate(ca_revoked)


def test_suspended_organisation_and_disabled_person_are_refused(
    authority: CertificationAuthority, directory: Directory, sql: Connection
) -> None:
    der = client_certificate(authority, "acme-client")
    directory.register_client_certificate(OPERATOR, SUBSCRIBER, der)
    directory.set_organisation_status(OPERATOR, "Acme Energy", OrgStatus.SUSPENDED)
    with pytest.raises(Unauthenticated, match="suspended"):
        directory.authenticate_certificate(der)
    directory.set_organisation_status(OPERATOR, "Acme Energy", OrgStatus.ACTIVE)
    assert directory.authenticate_certificate(der).email == SUBSCRIBER
    sql.execute(text("UPDATE people SET status = 'disabled' WHERE email = :e"), {"e": SUBSCRIBER})
    with pytest.raises(Unauthenticated, match="disabled"):
        directory.authenticate_certificate(der)


def test_registration_is_authorised_like_token_creation(
    authority: CertificationAuthority, directory: Directory
) -> None:
    subscriber = principal_of(directory, SUBSCRIBER)
    manager = principal_of(directory, "manager@provider.example")
    with pytest.raises(Forbidden):
        directory.register_client_certificate(subscriber, SUBSCRIBER, client_certificate(authority, "self-service"))
    with pytest.raises(Forbidden, match="may not give the role service-admin"):
        directory.register_client_certificate(manager, "admin@provider.example", client_certificate(authority, "a"))
    directory.register_client_certificate(manager, OTHER, client_certificate(authority, "beta-client"))


def test_unsuitable_certificates_are_not_registered(authority: CertificationAuthority, directory: Directory) -> None:
    with pytest.raises(InvalidRequest, match=r"not an X\.509 certificate"):
        directory.register_client_certificate(OPERATOR, SUBSCRIBER, b"not a certificate")
    with pytest.raises(InvalidRequest, match="CA certificate"):
        directory.register_client_certificate(OPERATOR, SUBSCRIBER, authority.get_ca("tls-issuing").certificate_der)
    server = authority.issue(IssuanceOrder("tls-server", tls_server_csr(["api.example.test"]), "test")).der
    with pytest.raises(InvalidRequest, match="client authentication"):
        directory.register_client_certificate(OPERATOR, SUBSCRIBER, server)
    with pytest.raises(InvalidRequest, match="expired"):
        directory.register_client_certificate(OPERATOR, SUBSCRIBER, self_signed(days=-1))


# ----- web: RFC 9440 Client-Cert from a trusted proxy only ------------------------------------------------------


def header(der: bytes) -> dict[str, str]:
    return {"Client-Cert": f":{base64.b64encode(der).decode()}:"}


def test_client_cert_header_is_believed_only_from_a_trusted_proxy(
    authority: CertificationAuthority, directory: Directory
) -> None:
    der = client_certificate(authority, "acme-client")
    directory.register_client_certificate(OPERATOR, SUBSCRIBER, der)
    app = create_app(authority, start_worker=False, trusted_proxies=[PROXY, "192.0.2.0/24"])

    with TestClient(app, client=(PROXY, 443)) as proxy:
        answer = proxy.get("/api/v1/organisations", headers=header(der))
        assert answer.status_code == 200, answer.text
        assert [item["name"] for item in answer.json()["items"]] == ["Acme Energy"]
        assert proxy.get("/api/v1/batches", headers=header(der)).status_code == 200
        assert proxy.get("/api/v1/organisations/Beta%20Networks", headers=header(der)).status_code == 403
        assert proxy.get("/api/v1/batches").status_code == 401  # the proxy forwarded no certificate
        assert proxy.get("/api/v1/batches", headers=header(self_signed())).status_code == 401
        assert proxy.get("/api/v1/batches", headers={"Client-Cert": base64.b64encode(der).decode()}).status_code == 401
        assert proxy.get("/api/v1/batches", headers={"Client-Cert": ":not base64!:"}).status_code == 401
        # A bearer token still wins when sent.
        token = directory.create_token(OPERATOR, OTHER)
        mine = proxy.get("/api/v1/organisations", headers=header(der) | {"Authorization": f"Bearer {token}"})
        assert [item["name"] for item in mine.json()["items"]] == ["Beta Networks"]
    with TestClient(app, client=("192.0.2.77", 443)) as proxy_in_network:
        assert proxy_in_network.get("/api/v1/batches", headers=header(der)).status_code == 200

    for untrusted in ("10.9.9.9", "testclient"):
        with TestClient(app, client=(untrusted, 443)) as stranger:
            answer = stranger.get("/api/v1/batches", headers=header(der))
            assert answer.status_code == 401, untrusted
            assert answer.headers["content-type"].startswith("application/problem+json")


def test_no_trusted_proxies_means_the_header_is_ignored(
    authority: CertificationAuthority, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    der = client_certificate(authority, "acme-client")
    directory.register_client_certificate(OPERATOR, SUBSCRIBER, der)
    monkeypatch.delenv("MPKI_TRUSTED_PROXIES", raising=False)
    with TestClient(create_app(authority, start_worker=False), client=(PROXY, 443)) as client:
        assert client.get("/api/v1/batches", headers=header(der)).status_code == 401
    monkeypatch.setenv("MPKI_TRUSTED_PROXIES", f"{PROXY}, ::1")
    with TestClient(create_app(authority, start_worker=False), client=(PROXY, 443)) as client:
        assert client.get("/api/v1/batches", headers=header(der)).status_code == 200


def test_header_and_proxy_list_parsing() -> None:
    assert parse_client_cert_header(" :AAEC: ") == b"\x00\x01\x02"
    for bad in ("AAEC", ":AAEC", "::", ":AA EC:"):
        with pytest.raises(Unauthenticated):
            parse_client_cert_header(bad)
    assert [str(n) for n in trusted_proxies("10.0.0.1, 10.1.0.0/16 fd00::1")] == [
        "10.0.0.1/32",
        "10.1.0.0/16",
        "fd00::1/128",
    ]
    assert trusted_proxies("", env={}) == ()
    with pytest.raises(Exception, match="MPKI_TRUSTED_PROXIES"):
        trusted_proxies("proxy.example")


# ----- end to end: `mpki serve` over mutual TLS ---------------------------------------------------------------


def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    return path


def issue(mpki, tmp_path: Path, name: str, profile: str, csr: bytes) -> Path:  # type: ignore[no-untyped-def]
    (tmp_path / f"{name}.csr").write_bytes(csr)
    out = tmp_path / f"{name}.pem"
    mpki("issue", "--profile", profile, "--csr", str(tmp_path / f"{name}.csr"), "--out", str(out), check=True)
    return out


@pytest.fixture
def tls_server(mpki, env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    server_key = ec_key()
    server_cert = issue(
        mpki, tmp_path, "server", "tls-server", tls_server_csr(["localhost"], ips=["127.0.0.1"], key=server_key)
    )
    chain = tmp_path / "client-ca.pem"
    mpki("ca", "export", "tls-issuing", "--chain", "--out", str(chain), check=True)
    key_file = write_key(server_key, tmp_path / "server.key")
    args = ["--tls-cert", str(server_cert), "--tls-key", str(key_file), "--client-ca", str(chain)]
    with running_server(env, tmp_path / "serve.log", args, ca_file=chain) as base:
        yield base, chain


def test_mutual_tls_end_to_end(mpki, tls_server: tuple[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, chain = tls_server
    mpki("org", "create", "Acme Energy", "--eui64", EUI_A, "--roles", "supplier", check=True)
    mpki("user", "create", SUBSCRIBER, "--role", "authorised-subscriber", "--org", "Acme Energy", check=True)

    def context(name: str | None) -> ssl.SSLContext:
        """Trusting the dev TLS chain; with a client certificate `name` (issued now) unless None."""
        ctx = ssl.create_default_context(cafile=chain)
        if name is not None:
            key = ec_key()
            cert = issue(mpki, tmp_path, name, "tls-client", tls_client_csr(f"{name}.example", key=key, pem=True))
            ctx.load_cert_chain(cert, write_key(key, tmp_path / f"{name}.key"))
        return ctx

    registered = context("registered")
    done = mpki("user", "cert", SUBSCRIBER, "--cert", str(tmp_path / "registered.pem"), check=True)
    assert "registered" in done.stdout

    answer = httpx.get(f"{base}/api/v1/batches", verify=registered)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"items": [], "next_after": None}
    orgs = httpx.get(f"{base}/api/v1/organisations", verify=registered).json()
    assert [item["name"] for item in orgs["items"]] == ["Acme Energy"]

    anonymous = httpx.get(f"{base}/api/v1/batches", verify=context(None))
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    # Issued by the trusted CA but registered to no one.
    assert httpx.get(f"{base}/api/v1/batches", verify=context("unregistered")).status_code == 401
    # Bearer tokens still work over the same TLS listener, without a client certificate.
    token = mpki("token", "create", SUBSCRIBER, check=True).stdout.split()[0]
    bearer = httpx.get(f"{base}/api/v1/batches", verify=context(None), headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200
    # A Client-Cert header sent straight to the server (no trusted proxy) counts for nothing.
    der = x509.load_pem_x509_certificate((tmp_path / "registered.pem").read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    assert httpx.get(f"{base}/api/v1/batches", verify=context(None), headers=header(der)).status_code == 401


def test_serve_refuses_half_a_tls_configuration(mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = mpki("serve", "--tls-cert", str(tmp_path / "nope.pem"))
    assert missing.returncode != 0 and "--tls-key" in missing.stderr
    ca_only = mpki("serve", "--client-ca", str(tmp_path / "ca.pem"))
    assert ca_only.returncode != 0 and "--client-ca needs" in ca_only.stderr
    absent = mpki("serve", "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem"))
    assert absent.returncode != 0 and "no such file" in absent.stderr
