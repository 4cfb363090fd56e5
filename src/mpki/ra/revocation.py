"""Who may revoke what: the RA authorises, `status` revokes and re-publishes.

A subscriber revokes its own organisation's certificates, an RA agent anyone's; a CA certificate is
revoked under dual control by two service administrators (one proposes, another approves).
"""

from __future__ import annotations

from mpki.domain import Action, InvalidRequest, RevocationReason
from mpki.ra.authorisation import Principal, authorise
from mpki.ra.principals import principal_of
from mpki.status import CaRevocationView, RevocationOutcome, StatusService
from mpki.store import Database, PersonRepository


class RevocationDesk:
    def __init__(self, database: Database, status: StatusService) -> None:
        self.database = database
        self.status = status

    def revoke(
        self, principal: Principal, serial: str, reason: RevocationReason, *, ca_name: str | None = None
    ) -> RevocationOutcome:
        certificate = self.status.revocations.find(serial, ca_name)
        authorise(principal, Action.CERT_REVOKE, certificate.organisation_id)
        return self.status.revocations.revoke(
            [certificate.serial], reason, actor=principal.actor, ca_name=ca_name, context={"via": "ra"}
        )

    def release_hold(self, principal: Principal, serial: str, *, ca_name: str | None = None) -> RevocationOutcome:
        """Lifting a suspension is an RA decision (agents, or the organisation's RA officer), not the
        subscriber's: a hold an agent placed must not be undone by the party it was placed on."""
        certificate = self.status.revocations.find(serial, ca_name)
        authorise(principal, Action.REQUEST_DECIDE, certificate.organisation_id)
        return self.status.revocations.release_hold(certificate.serial, actor=principal.actor, ca_name=ca_name)

    def propose_ca_revocation(self, principal: Principal, ca_name: str, reason: RevocationReason) -> CaRevocationView:
        authorise(principal, Action.CA_ADMIN)
        return self.status.revocations.propose_ca_revocation(ca_name, reason, actor=principal.actor)

    def approve_ca_revocation(self, principal: Principal, proposal_id: int) -> RevocationOutcome:
        authorise(principal, Action.CA_ADMIN)
        return self.status.revocations.approve_ca_revocation(proposal_id, actor=principal.actor)

    def withdraw_ca_revocation(self, principal: Principal, proposal_id: int) -> CaRevocationView:
        authorise(principal, Action.CA_ADMIN)
        return self.status.revocations.withdraw_ca_revocation(proposal_id, actor=principal.actor)

    def pending_ca_revocations(self, principal: Principal) -> list[CaRevocationView]:
        authorise(principal, Action.CA_ADMIN)
        return self.status.revocations.pending_ca_revocations()

    def person(self, email: str) -> Principal:
        """The principal of a registered, active person: the CLI names who acts under dual control."""
        with self.database.reader() as session:
            people = PersonRepository(session)
            if not people.exists(email):
                raise InvalidRequest(f"no person {email!r}; create them with `mpki user create`")
            return principal_of(session, people.by_email(email).id, "person")
