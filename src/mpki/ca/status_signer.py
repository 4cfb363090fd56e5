"""The CA's part in certificate status: delegated OCSP responder certificates, and the keys that sign
CRLs and OCSP responses. What to say (who is revoked) is decided in `status`; here it is signed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mpki.audit import AuditRecord, append
from mpki.ca.authority import CertificationAuthority
from mpki.ca.crl import CrlSpec, sign_crl
from mpki.ca.ocsp import OcspSigner
from mpki.ca.owner import this_owner
from mpki.ca.serials import new_serials
from mpki.ca.signing import signature_hash
from mpki.domain import InvalidRequest, KeyStoreError, SerialStatus, utcnow
from mpki.keys import INACTIVE_MESSAGE, KeyAlgorithm
from mpki.keys.purposes import OCSP_RESPONDER_PURPOSES, Purpose
from mpki.store import CaRepository, CertificateAuthority, OcspRepository, OcspResponder, SerialRepository

_CN_MAX = 64


def responder_common_name(ca_certificate: x509.Certificate) -> str:
    names = ca_certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    base = str(names[0].value) if names else "CA"
    return f"{base} OCSP Responder"[-_CN_MAX:]


class StatusSigner:
    """Signs for `status`: CRLs with the CA key, OCSP responses with the CA's delegated responder key."""

    def __init__(self, authority: CertificationAuthority) -> None:
        self.authority = authority
        self.database = authority.database
        self.keystore = authority.keystore

    def issue_responder(self, ca_name: str, *, actor: str, lifetime: dt.timedelta) -> OcspSigner:
        """A new responder key and certificate for the CA: id-kp-OCSPSigning, ocsp-nocheck, digitalSignature;
        never valid beyond the CA itself. The serial is recorded before signing (rule 5)."""
        if not self.keystore.is_active():
            raise KeyStoreError(INACTIVE_MESSAGE)
        with self.database.reader() as session:
            ca = CaRepository(session).by_name(ca_name)
        if ca.status != "active":
            raise InvalidRequest(f"CA {ca.name} is {ca.status}: it signs no responder certificate")
        issuer_certificate = x509.load_der_x509_certificate(ca.certificate_der)
        ca_key = self.keystore.info(ca.key_id)
        now = utcnow().replace(microsecond=0)
        info = self.keystore.generate(
            f"{ca.name}-ocsp-{now:%Y%m%d%H%M%S}", KeyAlgorithm.EC_P256, ca_key.token, purposes=OCSP_RESPONDER_PURPOSES
        )
        [(serial, serial_text)] = new_serials(1)
        with self.database.transaction() as session:
            SerialRepository(session).reserve(ca.id, [serial_text], this_owner(), now)
        not_after = min(now + lifetime, ca.not_after)
        public_key = info.public_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, responder_common_name(issuer_certificate))])
        issuer_key = self.keystore.signing_key(ca.key_id, Purpose.CERTIFICATE)
        certificate = (
            x509.CertificateBuilder()
            .issuer_name(issuer_certificate.subject)
            .subject_name(subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(not_after)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier(bytes.fromhex(ca.key_identifier), None, None), critical=False)
            .sign(issuer_key, signature_hash(issuer_key))
        )
        der = certificate.public_bytes(serialization.Encoding.DER)
        with self.database.transaction() as session:
            row = OcspRepository(session).add_responder(
                OcspResponder(
                    ca_id=ca.id,
                    key_id=info.key_id,
                    serial=serial_text,
                    certificate_der=der,
                    not_before=now,
                    not_after=not_after,
                    created_at=now,
                )
            )
            SerialRepository(session).settle(ca.id, [serial_text], SerialStatus.USED, utcnow())
            append(
                session,
                [
                    AuditRecord(
                        action="ocsp.responder.issued",
                        actor=actor,
                        ca=ca.name,
                        serial=serial_text,
                        details={"key_id": info.key_id, "not_after": not_after.isoformat()},
                    )
                ],
            )
            responder_id = row.id
        return self._ocsp_signer(responder_id, certificate, info.key_id)

    def ocsp_signer(self, ca_id: int, now: dt.datetime) -> OcspSigner | None:
        """The CA's responder valid now, or None when it has none (then `status` issues one)."""
        with self.database.reader() as session:
            row = OcspRepository(session).current_responder(ca_id, now)
        if row is None:
            return None
        if not self.keystore.is_active():
            raise KeyStoreError(INACTIVE_MESSAGE)
        certificate = x509.load_der_x509_certificate(row.certificate_der)
        return self._ocsp_signer(row.id, certificate, row.key_id)

    def _ocsp_signer(self, responder_id: int, certificate: x509.Certificate, key_id: str) -> OcspSigner:
        key = self.keystore.signing_key(key_id, Purpose.OCSP)
        algorithm = signature_hash(key).name

        def sign_batch(payloads: Sequence[bytes]) -> list[bytes]:
            return self.keystore.sign_many(key_id, Purpose.OCSP, algorithm, payloads)

        return OcspSigner(responder_id, certificate, key, sign_batch)

    def sign_crl(
        self, ca: CertificateAuthority, spec_without_issuer: CrlSpec, entries: Iterable[tuple[int, dt.datetime, int]]
    ) -> tuple[bytes, int]:
        """Sign a CRL for `ca` with the CA's own key (no indirect CRLs)."""
        if not self.keystore.is_active():
            raise KeyStoreError(INACTIVE_MESSAGE)
        return sign_crl(spec_without_issuer, entries, self.keystore.signing_key(ca.key_id, Purpose.CRL))
