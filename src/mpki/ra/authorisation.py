"""Authorisation, decided in one place (rule 8): role x action -> never, own organisation, or any.

Every route and command asks `authorise()` before it reads or writes; the matrix test walks every
cell of this table against every route.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mpki.domain import Action, Forbidden, Role


class Scope(enum.Enum):
    OWN = "own organisation"
    ANY = "any organisation"


A = Action
POLICY: dict[Role, dict[Action, Scope]] = {
    Role.SERVICE_ADMIN: {action: Scope.ANY for action in Action},
    Role.RA_MANAGER: {
        A.ORG_CREATE: Scope.ANY,
        A.ORG_VIEW: Scope.ANY,
        A.ORG_UPDATE: Scope.ANY,
        A.PERSON_CREATE: Scope.ANY,
        A.PERSON_VIEW: Scope.ANY,
        A.TOKEN_CREATE: Scope.ANY,
        A.REQUEST_VIEW: Scope.ANY,
        A.REQUEST_DECIDE: Scope.ANY,
        A.CERT_VIEW: Scope.ANY,
        A.CERT_REVOKE: Scope.ANY,
        A.REPORT_VIEW: Scope.ANY,
    },
    Role.RA_AGENT: {
        A.ORG_VIEW: Scope.ANY,
        A.PERSON_VIEW: Scope.ANY,
        A.REQUEST_VIEW: Scope.ANY,
        A.REQUEST_DECIDE: Scope.ANY,
        A.CERT_VIEW: Scope.ANY,
        A.CERT_REVOKE: Scope.ANY,
        A.REPORT_VIEW: Scope.ANY,
    },
    Role.AUTHORISED_SUBSCRIBER: {
        A.ORG_VIEW: Scope.OWN,
        A.REQUEST_SUBMIT: Scope.OWN,
        A.REQUEST_VIEW: Scope.OWN,
        A.CERT_VIEW: Scope.OWN,
        A.CERT_REVOKE: Scope.OWN,
    },
    Role.ORG_RA_OFFICER: {
        A.ORG_VIEW: Scope.OWN,
        A.PERSON_VIEW: Scope.OWN,
        A.REQUEST_SUBMIT: Scope.OWN,
        A.REQUEST_VIEW: Scope.OWN,
        A.REQUEST_DECIDE: Scope.OWN,
        A.CERT_VIEW: Scope.OWN,
        A.CERT_REVOKE: Scope.OWN,
        A.REPORT_VIEW: Scope.OWN,
    },
    Role.AUDITOR: {
        A.ORG_VIEW: Scope.ANY,
        A.PERSON_VIEW: Scope.ANY,
        A.REQUEST_VIEW: Scope.ANY,
        A.CERT_VIEW: Scope.ANY,
        A.AUDIT_VIEW: Scope.ANY,
        A.REPORT_VIEW: Scope.ANY,
    },
}


# Which roles each role may give (by creating a person or minting a token for one): never more than it holds.
GRANTS: dict[Role, frozenset[Role]] = {
    Role.SERVICE_ADMIN: frozenset(Role),
    Role.RA_MANAGER: frozenset({Role.RA_AGENT, Role.AUTHORISED_SUBSCRIBER, Role.ORG_RA_OFFICER, Role.AUDITOR}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated actor: a person with one role, bound to an organisation for org-side roles."""

    person_id: int | None
    email: str
    role: Role
    organisation_id: int | None

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.email}"


# The local operator: whoever runs `mpki` on the CA host with its keys and database is the provider.
OPERATOR = Principal(person_id=None, email="operator@localhost", role=Role.SERVICE_ADMIN, organisation_id=None)


def scope_of(principal: Principal, action: Action) -> Scope | None:
    return POLICY[principal.role].get(action)


def authorise(principal: Principal, action: Action, organisation_id: int | None = None) -> Scope:
    """Allow or raise Forbidden. `organisation_id` is the organisation whose data the action touches
    (None for actions on no particular organisation, which only ANY-scoped roles may do)."""
    scope = scope_of(principal, action)
    if scope is None:
        raise Forbidden(f"{principal.role.value} may not {action.value}")
    if scope is Scope.OWN and (organisation_id is None or organisation_id != principal.organisation_id):
        raise Forbidden(f"{principal.role.value} may {action.value} only for its own organisation")
    return scope


def visible_organisation(principal: Principal, action: Action) -> int | None:
    """For listings: None when the principal sees every organisation, else the one it may see."""
    scope = authorise(principal, action, principal.organisation_id)
    return None if scope is Scope.ANY else principal.organisation_id


def authorise_grant(principal: Principal, role: Role) -> None:
    """Refuse to let anyone hand out a role above their own."""
    if role not in GRANTS.get(principal.role, frozenset()):
        raise Forbidden(f"{principal.role.value} may not give the role {role.value}")
