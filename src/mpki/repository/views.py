"""What the public repository shows: search filters, certificate, CA and CRL entries, with their links.

Links are paths from the site root, so the HTML page works behind any host name (the internet portal
and the private gateway alike); JSON makes them absolute under the installation's public URL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields
from urllib.parse import quote, urlencode

from mpki.domain import RemotePartyRole, RevocationReason
from mpki.profiles import delta_crl_url, status_urls

REPOSITORY = "/repository"
API = "/api/v1/repository"


def role_name(code: str | None) -> str | None:
    """`02` -> `supplier`: the name the search form and `RemotePartyRole.from_name` use."""
    if code is None:
        return None
    try:
        return RemotePartyRole(int(code, 16)).name.lower().replace("_", "-")
    except ValueError:
        return None


def reason_name(code: int | None) -> str | None:
    if code is None:
        return None
    try:
        return RevocationReason(code).rfc_name
    except ValueError:
        return str(code)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _absolute(base_url: str, links: dict[str, str]) -> dict[str, str]:
    base = base_url.rstrip("/")
    return {name: base + path for name, path in links.items()}


def ca_links(ca: str) -> dict[str, str]:
    """Where a CA's certificate and CRLs are; the .crt path is the caIssuers URL certificates carry."""
    crl, _, crt = status_urls("", ca)
    return {
        "certificate": crt,
        "pem": crt.removesuffix(".crt") + ".pem",
        "chain": crt.removesuffix(".crt") + "/chain.pem",
        "crl": crl,
        "delta_crl": delta_crl_url("", ca),
    }


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """A search as given (text, unchecked); `Repository.search` checks and normalises each filter.
    Empty strings count as not given, because an HTML form sends its empty fields."""

    serial: str | None = None
    eui64: str | None = None
    organisation: str | None = None
    role: str | None = None
    key_usage: str | None = None
    status: str | None = None

    def given(self) -> dict[str, str]:
        """The filters that have a value, for a next-page link or an audit of what was asked."""
        found = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and value.strip():
                found[field.name] = value.strip()
        return found


@dataclass(frozen=True, slots=True)
class CertificateEntry:
    """One end-entity certificate in the repository (no DER: listings stay small)."""

    id: int
    serial: str
    ca: str
    issuer: str
    subject: str
    eui64: str | None
    role_code: str | None
    key_usage: str | None
    profile: str
    status: str
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    organisation: str | None
    fingerprint_sha256: str

    @property
    def role(self) -> str | None:
        return role_name(self.role_code)

    def expired(self, now: dt.datetime) -> bool:
        return self.not_after <= now

    @property
    def links(self) -> dict[str, str]:
        base = f"{REPOSITORY}/certificates/{quote(self.serial)}"
        ca = "?" + urlencode({"ca": self.ca})
        issuer = ca_links(self.ca)
        return {
            "self": f"{API}/certificates/{quote(self.serial)}{ca}",
            "pem": f"{base}.pem{ca}",
            "der": f"{base}.der{ca}",
            "chain": f"{base}/chain.pem{ca}",
            "issuer": issuer["certificate"],
            "crl": issuer["crl"],
        }

    def as_json(self, base_url: str, now: dt.datetime) -> dict[str, object]:
        return {
            "serial": self.serial,
            "ca": self.ca,
            "issuer": self.issuer,
            "subject": self.subject,
            "eui64": self.eui64,
            "role_code": self.role_code,
            "role": self.role,
            "key_usage": self.key_usage,
            "profile": self.profile,
            "status": self.status,
            "expired": self.expired(now),
            "revoked_at": _iso(self.revoked_at),
            "revocation_reason": self.revocation_reason,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "organisation": self.organisation,
            "fingerprint_sha256": self.fingerprint_sha256,
            "links": _absolute(base_url, self.links),
        }


@dataclass(frozen=True, slots=True)
class SearchPage:
    items: list[CertificateEntry]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class CaEntry:
    """A CA certificate the repository publishes, active or revoked."""

    name: str
    profile: str
    subject: str
    parent: str | None
    serial: str
    status: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str
    revoked_at: dt.datetime | None
    revocation_reason: str | None

    @property
    def links(self) -> dict[str, str]:
        return ca_links(self.name)

    def as_json(self, base_url: str) -> dict[str, object]:
        body: dict[str, object] = asdict(self)
        for name in ("not_before", "not_after", "revoked_at"):
            body[name] = _iso(getattr(self, name))
        body["links"] = _absolute(base_url, self.links)
        return body


@dataclass(frozen=True, slots=True)
class CrlEntry:
    """The newest published CRL of one kind of one CA; a root's full CRL is its ARL."""

    ca: str
    kind: str
    is_arl: bool
    number: int
    this_update: dt.datetime
    next_update: dt.datetime

    @property
    def path(self) -> str:
        links = ca_links(self.ca)
        return links["crl"] if self.kind == "full" else links["delta_crl"]

    def as_json(self, base_url: str) -> dict[str, object]:
        return {
            "ca": self.ca,
            "kind": self.kind,
            "arl": self.is_arl,
            "number": self.number,
            "this_update": self.this_update.isoformat(),
            "next_update": self.next_update.isoformat(),
            "url": base_url.rstrip("/") + self.path,
        }
