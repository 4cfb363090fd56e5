"""What the subscriber portal shows: an organisation's requests, batches and certificates, newest first.

Each read authorises here, scoped to the organisation, the same way `Registration`'s reads do; the web
room only renders what comes back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mpki.domain import Action, InvalidRequest, NotFound, RevocationReason, format_serial, parse_serial
from mpki.profiles import get_profile
from mpki.ra.authorisation import Principal, authorise, visible_organisation
from mpki.ra.views import BatchView, RequestView
from mpki.store import BatchRepository, CaRepository, Database, IssuedCertificate
from mpki.store.subscriber_queries import SubscriberQueries

R = RevocationReason
# The reasons an organisation gives for its own certificates, most likely first. cACompromise is the
# CA's; privilegeWithdrawn is the RA's judgement, not the subscriber's.
SUBSCRIBER_REASONS = (R.KEY_COMPROMISE, R.AFFILIATION_CHANGED, R.SUPERSEDED, R.CESSATION_OF_OPERATION, R.UNSPECIFIED)
REQUEST_STATUSES = ("submitted", "pending", "approved", "issued", "rejected", "failed")
PAGE = 50


@dataclass(frozen=True, slots=True)
class CertificateView:
    """A certificate as its organisation sees it, with its revocation state."""

    id: int
    serial: str
    ca: str
    subject: str
    profile: str
    status: str
    eui64: str | None
    key_usage: str | None
    role_code: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str
    organisation_id: int | None
    request_id: int | None
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    revoked_by: str | None

    @classmethod
    def of(cls, row: IssuedCertificate, ca_name: str) -> CertificateView:
        reason = R(row.revocation_reason).rfc_name if row.revocation_reason is not None else None
        return cls(
            id=row.id,
            serial=row.serial,
            ca=ca_name,
            subject=row.subject,
            profile=row.profile,
            status=row.status,
            eui64=row.eui64,
            key_usage=row.key_usage,
            role_code=row.role_code,
            not_before=row.not_before,
            not_after=row.not_after,
            fingerprint_sha256=row.fingerprint_sha256,
            organisation_id=row.organisation_id,
            request_id=row.request_id,
            revoked_at=row.revoked_at,
            revocation_reason=reason,
            revoked_by=row.revoked_by,
        )

    @property
    def on_hold(self) -> bool:
        return self.revocation_reason == R.CERTIFICATE_HOLD.rfc_name

    @property
    def revoked_for_good(self) -> bool:
        return self.revoked_at is not None and not self.on_hold

    def reasons(self) -> tuple[RevocationReason, ...]:
        """What the subscriber may still ask for: nothing once revoked; a hold only where the profile has one."""
        if self.revoked_for_good:
            return ()
        if self.on_hold or not get_profile(self.profile).allows_hold:
            return SUBSCRIBER_REASONS
        return (*SUBSCRIBER_REASONS, R.CERTIFICATE_HOLD)


def subscriber_reason(text: str, certificate: CertificateView) -> RevocationReason:
    """Parse a reason from the form and refuse one the subscriber may not give for this certificate."""
    reason = RevocationReason.parse(text)
    allowed = certificate.reasons()
    if not allowed:
        raise InvalidRequest(f"certificate {certificate.serial} is already revoked")
    if reason not in allowed:
        names = ", ".join(r.rfc_name for r in allowed)
        raise InvalidRequest(f"{reason.rfc_name} is not a reason you can give here; use one of {names}")
    return reason


class SubscriberViews:
    """Authorised, paged reads over one installation's database."""

    def __init__(self, database: Database, page: int = PAGE) -> None:
        self.database = database
        self.page = page

    def requests(self, principal: Principal, *, status: str | None, after: int | None) -> list[RequestView]:
        if status is not None and status not in REQUEST_STATUSES:
            raise InvalidRequest(f"unknown request status {status!r}; use one of {', '.join(REQUEST_STATUSES)}")
        only = visible_organisation(principal, Action.REQUEST_VIEW)
        with self.database.reader() as session:
            rows = SubscriberQueries(session).requests(only, status=status, before_id=after, limit=self.page)
            return [RequestView.of(row) for row in rows]

    def batches(self, principal: Principal, *, after: int | None) -> list[BatchView]:
        only = visible_organisation(principal, Action.REQUEST_VIEW)
        with self.database.reader() as session:
            rows = SubscriberQueries(session).batches(only, before_id=after, limit=self.page)
            return [BatchView.of(row) for row in rows]

    def batch_items(
        self, principal: Principal, batch_id: int, *, start: int = 0
    ) -> tuple[BatchView, list[RequestView]]:
        """The batch and a page of its items from item `start`: a batch of 50,000 is not one page."""
        with self.database.reader() as session:
            batch = BatchRepository(session).by_id(batch_id)
            authorise(principal, Action.REQUEST_VIEW, batch.organisation_id)
            rows = SubscriberQueries(session).batch_items(batch_id, from_index=start, limit=self.page * 4)
            return BatchView.of(batch), [RequestView.of(row) for row in rows]

    def certificates(self, principal: Principal, *, after: int | None) -> list[CertificateView]:
        only = visible_organisation(principal, Action.CERT_VIEW)
        with self.database.reader() as session:
            names = {ca.id: ca.name for ca in CaRepository(session).all()}
            rows = SubscriberQueries(session).certificates(only, before_id=after, limit=self.page)
            return [CertificateView.of(row, names[row.ca_id]) for row in rows]

    def certificate(self, principal: Principal, serial: str) -> tuple[CertificateView, bytes]:
        """One certificate and its DER, if the principal may see its organisation's certificates."""
        try:
            text = format_serial(parse_serial(serial))
        except (InvalidRequest, ValueError):
            raise NotFound(f"no certificate with serial {serial[:64]!r}") from None
        with self.database.reader() as session:
            rows = SubscriberQueries(session).certificates_by_serial(text)
            if not rows:
                raise NotFound(f"no certificate with serial {text}")
            if len(rows) > 1:
                raise InvalidRequest(f"serial {text} is ambiguous across CAs")
            row = rows[0]
            authorise(principal, Action.CERT_VIEW, row.organisation_id)
            return CertificateView.of(row, CaRepository(session).by_id(row.ca_id).name), row.der
