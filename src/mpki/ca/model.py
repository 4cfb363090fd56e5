"""What goes into and comes out of the CA."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mpki.domain import KeyUsageChoice


@dataclass(frozen=True, slots=True)
class IssuanceOrder:
    """An approved order: the CA re-checks the CSR against the profile before it signs (rule 4)."""

    profile: str
    csr: bytes
    approved_by: str
    key_usage: KeyUsageChoice | None = None
    request_id: int | None = None
    organisation_id: int | None = None


@dataclass(frozen=True, slots=True)
class IssuedView:
    """A stored certificate, as callers see it."""

    serial: str
    ca: str
    issuer: str
    subject: str
    profile: str
    status: str
    key_usage: str | None
    eui64: str | None
    role_code: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str
    der: bytes

    def as_json(self) -> dict[str, object]:
        return {
            "serial": self.serial,
            "ca": self.ca,
            "issuer": self.issuer,
            "subject": self.subject,
            "profile": self.profile,
            "status": self.status,
            "key_usage": self.key_usage,
            "eui64": self.eui64,
            "role_code": self.role_code,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "fingerprint_sha256": self.fingerprint_sha256,
        }


@dataclass(frozen=True, slots=True)
class IssuanceResult:
    """One item of a batch: issued with its certificate, or rejected with a one-line reason."""

    index: int
    certificate: IssuedView | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.certificate is not None


@dataclass(frozen=True, slots=True)
class CaView:
    name: str
    profile: str
    subject: str
    parent: str | None
    serial: str
    key_id: str
    key_backend: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str
    issues_profiles: tuple[str, ...]
    status: str
    certificate_der: bytes

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "subject": self.subject,
            "profile": self.profile,
            "parent": self.parent,
            "serial": self.serial,
            "key_id": self.key_id,
            "key_backend": self.key_backend,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "fingerprint_sha256": self.fingerprint_sha256,
            "issues_profiles": list(self.issues_profiles),
            "status": self.status,
        }
