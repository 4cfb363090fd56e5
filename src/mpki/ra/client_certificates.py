"""Client-certificate credentials: a person registers certificates, the API authenticates by them.

A certificate is pinned by the SHA-256 of its DER. The chain is checked before it gets here (by the TLS
handshake of `mpki serve --client-ca`, or by the trusted reverse proxy that forwards RFC 9440 Client-Cert);
this module decides whose it is and whether it still counts.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from mpki.audit import AuditRecord, append
from mpki.domain import (
    Action,
    CertificateStatus,
    InvalidRequest,
    NotFound,
    Role,
    Unauthenticated,
    utcnow,
)
from mpki.ra.authorisation import Principal, authorise, authorise_grant
from mpki.ra.principals import principal_of
from mpki.store import (
    ClientCertificate,
    ClientCertificateRepository,
    Database,
    PersonRepository,
)

__all__ = ["ClientCertificates", "fingerprint", "load_certificate"]


def load_certificate(data: bytes) -> x509.Certificate:
    """One X.509 certificate, PEM or DER; anything else is an InvalidRequest."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as error:
        raise InvalidRequest(f"not an X.509 certificate (PEM or DER): {error}") from None


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _check_usable(certificate: x509.Certificate) -> None:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None and constraints.ca:
        raise InvalidRequest("a CA certificate cannot be a client certificate")
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise InvalidRequest("the certificate's extended key usage does not allow TLS client authentication")
    if certificate.not_valid_after_utc <= utcnow():
        raise InvalidRequest("the certificate has expired")


class ClientCertificates:
    """Mixed into `Directory`: registration and authentication by client certificate."""

    database: Database

    def register_client_certificate(self, principal: Principal, email: str, certificate: bytes) -> str:
        """Let the person authenticate with `certificate` (PEM or DER); returns its SHA-256 fingerprint.
        Whoever may create the person's API tokens may register their certificates."""
        parsed = load_certificate(certificate)
        _check_usable(parsed)
        der = parsed.public_bytes(Encoding.DER)
        digest = fingerprint(der)
        subject = parsed.subject.rfc4514_string()[:512]
        with self.database.transaction() as session:
            person = PersonRepository(session).by_email(email.strip().lower())
            authorise(principal, Action.TOKEN_CREATE, person.organisation_id)
            authorise_grant(principal, Role(person.role))
            certificates = ClientCertificateRepository(session)
            if certificates.by_fingerprint(digest) is not None:
                raise InvalidRequest(f"the certificate {digest} is already registered")
            certificates.add(
                ClientCertificate(
                    person_id=person.id,
                    fingerprint_sha256=digest,
                    subject=subject,
                    not_after=parsed.not_valid_after_utc,
                    created_at=utcnow(),
                )
            )
            append(
                session,
                [
                    AuditRecord(
                        action="client_certificate.registered",
                        actor=principal.actor,
                        details={"email": person.email, "fingerprint_sha256": digest, "subject": subject},
                    )
                ],
            )
        return digest

    def revoke_client_certificate(self, principal: Principal, fingerprint_sha256: str) -> None:
        """Stop a registered certificate from authenticating (authorised as for registering it)."""
        digest = fingerprint_sha256.strip().lower().replace(":", "")
        with self.database.transaction() as session:
            certificates = ClientCertificateRepository(session)
            row = certificates.by_fingerprint(digest)
            if row is None:
                raise NotFound(f"no client certificate with fingerprint {digest}")
            person = PersonRepository(session).by_id(row.person_id)
            authorise(principal, Action.TOKEN_CREATE, person.organisation_id)
            authorise_grant(principal, Role(person.role))
            if row.revoked_at is not None:
                return
            certificates.revoke(row, utcnow())
            append(
                session,
                [
                    AuditRecord(
                        action="client_certificate.revoked",
                        actor=principal.actor,
                        details={"email": person.email, "fingerprint_sha256": digest},
                    )
                ],
            )

    def authenticate_certificate(self, der: bytes) -> Principal:
        """The principal a client certificate (DER) stands for; unknown, revoked or expired certificates,
        disabled people and suspended organisations are refused."""
        digest = fingerprint(der)
        with self.database.reader() as session:
            certificates = ClientCertificateRepository(session)
            row = certificates.by_fingerprint(digest)
            if row is None or row.revoked_at is not None:
                raise Unauthenticated("the client certificate is not registered")
            if certificates.issued_status(digest) == CertificateStatus.REVOKED.value:
                raise Unauthenticated("the client certificate has been revoked")
            if row.not_after <= utcnow():
                raise Unauthenticated("the client certificate has expired")
            return principal_of(session, row.person_id, "client certificate")
