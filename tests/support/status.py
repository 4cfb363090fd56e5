"""Helpers for the status tests: certificates to revoke, OCSP requests (one or many certificates), the
checks every OCSP response must pass, and a snapshot of everything revocation may write."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from pyasn1.codec.der import encoder
from pyasn1.type import univ
from pyasn1_alt_modules import rfc5280, rfc6960
from sqlalchemy import Connection, text

from mpki.ca import CertificationAuthority, IssuanceOrder, IssuedView
from mpki.config import Settings, StatusSettings
from mpki.domain import utcnow
from mpki.keys import KeyStore, SoftwareKeyStore
from mpki.signer.service import SigningService
from mpki.signer.signing_keys import SigningKeys
from mpki.status import StatusService
from mpki.status.issuers import subject_public_key_bits
from mpki.store import CaRepository, CertificateRepository
from tests.csr_factory import device_csr, org_csr, random_eui64, tls_client_csr, tls_server_csr

HASH_OIDS = {"sha1": "1.3.14.3.2.26", "sha256": "2.16.840.1.101.3.4.2.1", "md5": "1.2.840.113549.2.5"}
NONCE_OID = "1.3.6.1.5.5.7.48.1.2"
ISSUING = {"smki-org": "smki-org-ca", "smki-device": "smki-device-ca", "tls-server": "tls-issuing"}
ISSUING["tls-client"] = "tls-issuing"


# ----- an installation with other status settings -------------------------------------------------


class _InactiveSigner(SigningService):
    """A signer whose keystore is present but not unlocked, as after `mpki keys deactivate`."""

    def _open(self) -> KeyStore:
        return SoftwareKeyStore.open_inactive(self.settings.keys_dir)


def inactive_node(authority: CertificationAuthority) -> StatusService:
    """Another node of the same installation whose signer holds no activation."""
    keys = SigningKeys(_InactiveSigner(authority.settings))
    return StatusService(CertificationAuthority(authority.settings, authority.database, keys))


def status_with(authority: CertificationAuthority, **changes: int) -> StatusService:
    """A StatusService over the same database and keys, with some `StatusSettings` changed."""
    settings: Settings = authority.settings.with_overrides(status=StatusSettings(**changes))
    return StatusService(CertificationAuthority(settings, authority.database, authority.keystore))


# ----- certificates ---------------------------------------------------------------------------------


def csr_for(profile: str) -> bytes:
    if profile == "smki-device":
        return device_csr(random_eui64())
    if profile == "smki-org":
        return org_csr(random_eui64())
    if profile == "tls-server":
        return tls_server_csr()
    if profile == "tls-client":
        return tls_client_csr()
    raise ValueError(profile)


def issue(authority: CertificationAuthority, profile: str) -> IssuedView:
    """A certificate of `profile` straight from the CA (no organisation)."""
    return authority.issue(IssuanceOrder(profile, csr_for(profile), "test"))


def certificate(view: IssuedView) -> x509.Certificate:
    return x509.load_der_x509_certificate(view.der)


def ca_certificate(authority: CertificationAuthority, name: str) -> x509.Certificate:
    return x509.load_der_x509_certificate(authority.get_ca(name).certificate_der)


def insert_certificates(
    authority: CertificationAuthority,
    ca_name: str,
    count: int,
    *,
    revoked: Sequence[tuple[dt.datetime, int]] | None = None,
    profile: str = "smki-device",
) -> list[str]:
    """`count` certificate rows through the store (placeholder DER; CRLs and OCSP read only the status
    columns), revoked at the given (time, reason) in turn when `revoked` is given. Returns the serials."""
    now = utcnow()
    with authority.database.reader() as session:
        ca_id = CaRepository(session).by_name(ca_name).id
    rows: list[dict[str, Any]] = []
    for index in range(count):
        serial = f"{int.from_bytes(os.urandom(16), 'big') | 1 << 126:x}"
        row: dict[str, Any] = {
            "ca_id": ca_id,
            "serial": serial,
            "subject": "",
            "profile": profile,
            "status": "issued",
            "not_before": now,
            "not_after": now + dt.timedelta(days=365),
            "der": b"\x30\x00",
            "fingerprint_sha256": os.urandom(32).hex(),
            "public_key_sha256": os.urandom(32).hex(),
            "created_at": now,
        }
        if revoked:
            at, reason = revoked[index % len(revoked)]
            row |= {"status": "revoked", "revoked_at": at, "revocation_reason": reason, "revoked_by": "bulk"}
        rows.append(row)
    with authority.database.transaction() as session:
        CertificateRepository(session).add_many(rows)
    return [row["serial"] for row in rows]


# ----- OCSP requests ----------------------------------------------------------------------------------


def ocsp_request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    algorithm: hashes.HashAlgorithm | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """A one-certificate request as `cryptography` builds it."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def request_by_hash(issuer: x509.Certificate, serial: int, algorithm: hashes.HashAlgorithm | None = None) -> bytes:
    """A one-certificate request for any serial under `issuer` (no certificate needed)."""
    algorithm = algorithm or hashes.SHA1()
    _, name_hash, key_hash, _ = cert_id(issuer, serial, algorithm.name)
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, algorithm)
    return builder.build().public_bytes(serialization.Encoding.DER)


def cert_id(issuer: x509.Certificate, serial: int, algorithm: str = "sha1") -> tuple[str, bytes, bytes, int]:
    """(hash algorithm, issuerNameHash, issuerKeyHash, serial) as RFC 6960 4.1.1 computes them."""
    name_hash = hashlib.new(algorithm, issuer.subject.public_bytes()).digest()
    key_hash = hashlib.new(algorithm, subject_public_key_bits(issuer)).digest()
    return algorithm, name_hash, key_hash, serial


def multi_request(cert_ids: Sequence[tuple[str, bytes, bytes, int]], nonce_value: bytes | None = None) -> bytes:
    """An OCSPRequest for several certificates (which `cryptography` cannot build), with pyasn1.
    `nonce_value` is the nonce extension's extnValue as sent (normally DER of an OCTET STRING)."""
    request = rfc6960.OCSPRequest()
    tbs = request["tbsRequest"]
    for algorithm, name_hash, key_hash, serial in cert_ids:
        item = rfc6960.Request()
        req_cert = item["reqCert"]
        req_cert["hashAlgorithm"]["algorithm"] = univ.ObjectIdentifier(HASH_OIDS[algorithm])
        req_cert["hashAlgorithm"]["parameters"] = univ.Null("")
        req_cert["issuerNameHash"] = name_hash
        req_cert["issuerKeyHash"] = key_hash
        req_cert["serialNumber"] = serial
        tbs["requestList"].append(item)
    if nonce_value is not None:
        extension = rfc5280.Extension()
        extension["extnID"] = univ.ObjectIdentifier(NONCE_OID)
        extension["extnValue"] = nonce_value
        tbs["requestExtensions"].append(extension)
    return bytes(encoder.encode(request))


def nonce_value(nonce: bytes) -> bytes:
    return bytes(encoder.encode(univ.OctetString(nonce)))


# ----- OCSP responses ----------------------------------------------------------------------------------


def successful(der: bytes) -> ocsp.OCSPResponse:
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL, response.response_status
    return response


def response_status(der: bytes) -> ocsp.OCSPResponseStatus:
    return ocsp.load_der_ocsp_response(der).response_status


def check_signed_by_responder(response: ocsp.OCSPResponse, ca: x509.Certificate) -> x509.Certificate:
    """The response carries one delegated responder certificate, issued by `ca` for OCSP signing with
    ocsp-nocheck, named by key hash, whose key signed the response. Returns the responder certificate."""
    [responder] = response.certificates
    responder.verify_directly_issued_by(ca)
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert responder.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    key_hash = x509.SubjectKeyIdentifier.from_public_key(responder.public_key()).digest
    assert response.responder_key_hash == key_hash and response.responder_name is None
    public_key = responder.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert response.signature_hash_algorithm is not None
    public_key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))
    return responder


def check_cert_id(single: Any, issuer: x509.Certificate, serial: int, algorithm: str = "sha1") -> None:
    """The SingleResponse (or one-certificate response) echoes the CertID the request sent."""
    _, name_hash, key_hash, _ = cert_id(issuer, serial, algorithm)
    assert single.hash_algorithm.name == algorithm
    assert single.serial_number == serial
    assert single.issuer_name_hash == name_hash and single.issuer_key_hash == key_hash


def nonce_of(response: ocsp.OCSPResponse) -> bytes | None:
    try:
        return response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


# ----- what revocation may write ----------------------------------------------------------------------


def snapshot(sql: Connection) -> dict[str, Any]:
    """Every row revocation, CRL publication and OCSP signing may touch, and the audit chain's length."""
    queries = {
        "certificates": "SELECT serial, status, revoked_at, revocation_reason, revoked_by, hold_released_at "
        "FROM certificates ORDER BY id",
        "cas": "SELECT name, status, revoked_at, revocation_reason FROM cas ORDER BY id",
        "crls": "SELECT ca_id, number, kind, status FROM crls ORDER BY ca_id, number",
        "ca_revocations": "SELECT id, status, approved_by FROM ca_revocations ORDER BY id",
        "ocsp_responses": "SELECT ca_id, serial, status, this_update, responder_id FROM ocsp_responses "
        "ORDER BY ca_id, serial",
        "ocsp_responders": "SELECT id FROM ocsp_responders ORDER BY id",
        "audit_events": "SELECT COUNT(*), MAX(seq) FROM audit_events",
    }
    return {name: [tuple(row) for row in sql.execute(text(query))] for name, query in queries.items()}


def signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    public_key = issuer.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    return crl.is_signature_valid(public_key)


def events(sql: Connection, action: str) -> list[dict[str, Any]]:
    rows = sql.execute(
        text("SELECT seq, at, actor, ca, serial, details FROM audit_events WHERE action = :a ORDER BY seq"),
        {"a": action},
    )
    return [dict(row._mapping) for row in rows]


def crl_serials(crl: x509.CertificateRevocationList) -> dict[int, x509.ReasonFlags | None]:
    """serial -> the entry's reason (None when the entry has no reasonCode)."""
    found: dict[int, x509.ReasonFlags | None] = {}
    for entry in crl:
        try:
            found[entry.serial_number] = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            found[entry.serial_number] = None
    return found
