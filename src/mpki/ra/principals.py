"""Turning an authenticated credential's owner into a Principal, with the checks every credential shares."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mpki.domain import NotFound, OrgStatus, Role, Unauthenticated
from mpki.ra.authorisation import Principal
from mpki.store import OrganisationRepository, PersonRepository


def principal_of(session: Session, person_id: int, credential: str) -> Principal:
    """Refuse a disabled owner or a suspended (or vanished) organisation; `credential` names what was shown."""
    person = PersonRepository(session).by_id(person_id)
    if person.status != "active":
        raise Unauthenticated(f"the {credential}'s owner is disabled")
    if person.organisation_id is not None:
        try:
            organisation = OrganisationRepository(session).by_id(person.organisation_id)
        except NotFound:
            raise Unauthenticated(f"the {credential}'s organisation no longer exists") from None
        if organisation.status != OrgStatus.ACTIVE.value:
            raise Unauthenticated(f"organisation {organisation.name} is suspended")
    return Principal(person.id, person.email, Role(person.role), person.organisation_id)
