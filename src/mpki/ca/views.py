"""Turning stored rows into the views callers see."""

from __future__ import annotations

from mpki.ca.model import CaView, IssuedView
from mpki.store import CertificateAuthority, IssuedCertificate


def ca_view(ca: CertificateAuthority, parent_name: str | None) -> CaView:
    return CaView(
        name=ca.name,
        profile=ca.profile,
        subject=ca.subject,
        parent=parent_name,
        serial=ca.serial,
        key_id=ca.key_id,
        key_backend=ca.key_backend,
        not_before=ca.not_before,
        not_after=ca.not_after,
        fingerprint_sha256=ca.fingerprint_sha256,
        issues_profiles=tuple(p for p in ca.issues_profiles.split(",") if p),
        status=ca.status,
        certificate_der=ca.certificate_der,
    )


def issued_view(row: IssuedCertificate, ca: CertificateAuthority) -> IssuedView:
    return IssuedView(
        serial=row.serial,
        ca=ca.name,
        issuer=ca.subject,
        subject=row.subject,
        profile=row.profile,
        status=row.status,
        key_usage=row.key_usage,
        eui64=row.eui64,
        role_code=row.role_code,
        not_before=row.not_before,
        not_after=row.not_after,
        fingerprint_sha256=row.fingerprint_sha256,
        der=row.der,
    )
