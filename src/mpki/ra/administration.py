"""What the administration portal needs beyond `Directory`: the area's gate, approval rules, one person,
disabling and enabling people, listing and revoking API tokens, and reading the audit log.

Every read is authorised; every change is authorised and commits with its audit event (rule 3).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mpki.audit import AuditRecord, append
from mpki.audit.browse import ChainStatus, EventPage, chain_status, events_page
from mpki.domain import Action, Forbidden, InvalidRequest, Role, utcnow
from mpki.ra.authorisation import Principal, authorise, authorise_grant, visible_organisation
from mpki.ra.directory import PersonView
from mpki.ra.intake import SUBSCRIBER_PROFILES, approval_rule
from mpki.store import (
    AdminQueries,
    AuditCriteria,
    Database,
    OrganisationRepository,
    Person,
    PersonRepository,
    PortalSessionRepository,
    TokenListing,
)

# Provider staff who run the service (create organisations, run CAs) or audit it.
AREA_ACTIONS = (Action.ORG_CREATE, Action.CA_ADMIN, Action.AUDIT_VIEW)
# The CA list names key references: those who run the CAs or audit them.
CA_LIST_ACTIONS = (Action.CA_ADMIN, Action.AUDIT_VIEW)
PERSON_STATUSES = ("active", "disabled")


def authorise_one_of(principal: Principal, actions: tuple[Action, ...], what: str = "the administration pages") -> None:
    """Allow when the principal may do any of `actions` for every organisation; else Forbidden naming `what`."""
    refusals: list[Forbidden] = []
    for action in actions:
        try:
            authorise(principal, action)
            return
        except Forbidden as refused:
            refusals.append(refused)
    raise Forbidden(f"{principal.role.value} may not open {what}") from refusals[0]


@dataclass(frozen=True, slots=True)
class RuleView:
    """How one profile's requests from an organisation are approved; `explicit`: set for it, not the default."""

    profile: str
    rule: str
    explicit: bool


def _explicit_rules(policy: str) -> set[str]:
    try:
        rules = json.loads(policy) if policy else {}
    except ValueError:
        return set()
    return set(rules) if isinstance(rules, dict) else set()


@dataclass(frozen=True, slots=True)
class TokenView:
    id: int
    prefix: str
    email: str
    role: str
    organisation: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class Administration:
    def __init__(self, database: Database) -> None:
        self.database = database

    # ----- organisations ------------------------------------------------------------------------

    def approval_rules(self, principal: Principal) -> dict[str, list[RuleView]]:
        """Each visible organisation's effective approval rule per profile, and whether it was set for it."""
        only = visible_organisation(principal, Action.ORG_VIEW)
        with self.database.reader() as session:
            return {
                row.name: [
                    RuleView(profile, approval_rule(row, profile), profile in _explicit_rules(row.approval_policy))
                    for profile in SUBSCRIBER_PROFILES
                ]
                for row in OrganisationRepository(session).all(only)
            }

    # ----- people -------------------------------------------------------------------------------

    def person(self, principal: Principal, person_id: int) -> PersonView:
        with self.database.reader() as session:
            row = PersonRepository(session).by_id(person_id)
            authorise(principal, Action.PERSON_VIEW, row.organisation_id)
            return self._person_view(session, row)

    def set_person_status(self, principal: Principal, person_id: int, status: str) -> PersonView:
        """Disable (their portal sessions end at once; their tokens stop working) or enable someone."""
        if status not in PERSON_STATUSES:
            raise InvalidRequest("a person's status is active or disabled")
        with self.database.transaction() as session:
            row = PersonRepository(session).by_id(person_id)
            authorise(principal, Action.PERSON_CREATE, row.organisation_id)
            authorise_grant(principal, Role(row.role))
            if row.id == principal.person_id:
                raise InvalidRequest("you cannot change your own status: ask another administrator")
            if row.status == status:
                raise InvalidRequest(f"{row.email} is already {status}")
            row.status = status
            ended = PortalSessionRepository(session).end_all_for(row.id, utcnow()) if status == "disabled" else 0
            append(
                session,
                [
                    AuditRecord(
                        action="person.disabled" if status == "disabled" else "person.enabled",
                        actor=principal.actor,
                        details={"email": row.email, "role": row.role, "sessions_ended": ended},
                    )
                ],
            )
            return self._person_view(session, row)

    # ----- API tokens ---------------------------------------------------------------------------

    def tokens(self, principal: Principal, person_id: int | None = None) -> list[TokenView]:
        """Newest first: everyone's the principal may see, or one person's."""
        with self.database.reader() as session:
            if person_id is not None:
                owner = PersonRepository(session).by_id(person_id)
                authorise(principal, Action.PERSON_VIEW, owner.organisation_id)
                rows = AdminQueries(session).tokens(person_id=person_id)
            else:
                only = visible_organisation(principal, Action.PERSON_VIEW)
                rows = AdminQueries(session).tokens(organisation_id=only)
            names = {org.id: org.name for org in OrganisationRepository(session).all()}
            return [_token_view(row, names) for row in rows]

    def revoke_token(self, principal: Principal, token_id: int) -> TokenView:
        with self.database.transaction() as session:
            queries = AdminQueries(session)
            row = queries.token(token_id)
            authorise(principal, Action.TOKEN_CREATE, row.organisation_id)
            authorise_grant(principal, Role(row.role))
            if not queries.revoke_token(token_id, utcnow()):
                raise InvalidRequest(f"token {row.prefix}… is already revoked")
            append(
                session,
                [AuditRecord("token.revoked", principal.actor, details={"email": row.email, "prefix": row.prefix})],
            )
            names = {org.id: org.name for org in OrganisationRepository(session).all()}
            return _token_view(queries.token(token_id), names)

    # ----- the audit log ------------------------------------------------------------------------

    def audit_events(self, principal: Principal, criteria: AuditCriteria, before_seq: int | None = None) -> EventPage:
        authorise(principal, Action.AUDIT_VIEW)
        return events_page(self.database, criteria, before_seq)

    def audit_chain(self, principal: Principal) -> ChainStatus:
        authorise(principal, Action.AUDIT_VIEW)
        return chain_status(self.database)

    # ----- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _person_view(session: Session, row: Person) -> PersonView:
        organisation = OrganisationRepository(session).by_id(row.organisation_id).name if row.organisation_id else None
        return PersonView(row.id, row.email, row.role, organisation, row.status)


def _token_view(row: TokenListing, names: dict[int, str]) -> TokenView:
    return TokenView(
        id=row.id,
        prefix=row.prefix,
        email=row.email,
        role=row.role,
        organisation=names.get(row.organisation_id) if row.organisation_id is not None else None,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
