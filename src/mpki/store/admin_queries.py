"""SQL for the administration pages: API tokens with their owners, and revoking one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from mpki.domain import NotFound
from mpki.store.schema import ApiToken, Person


@dataclass(frozen=True, slots=True)
class TokenListing:
    """A token as an administrator sees it: never its hash, only the prefix shown when it was made."""

    id: int
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    person_id: int
    email: str
    role: str
    organisation_id: int | None


def _with_owner() -> Select[ApiToken, Person]:
    return select(ApiToken, Person).join(Person, Person.id == ApiToken.person_id)


class AdminQueries:
    def __init__(self, session: Session) -> None:
        self.session = session

    def tokens(
        self, organisation_id: int | None = None, person_id: int | None = None, limit: int = 500
    ) -> list[TokenListing]:
        """Newest first; narrowed to one organisation's people and/or one person when given."""
        query = _with_owner()
        if organisation_id is not None:
            query = query.where(Person.organisation_id == organisation_id)
        if person_id is not None:
            query = query.where(ApiToken.person_id == person_id)
        return self._listings(query.order_by(ApiToken.id.desc()).limit(limit))

    def token(self, token_id: int) -> TokenListing:
        found = self._listings(_with_owner().where(ApiToken.id == token_id))
        if not found:
            raise NotFound(f"no API token with id {token_id}")
        return found[0]

    def revoke_token(self, token_id: int, now: dt.datetime) -> bool:
        """Mark the token revoked; False when it already was (the guard makes a double revoke harmless)."""
        result = self.session.execute(
            update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None)).values(revoked_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    def live_token_count(self, organisation_id: int | None = None) -> int:
        query = select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_(None))
        if organisation_id is not None:
            query = query.join(Person, Person.id == ApiToken.person_id).where(Person.organisation_id == organisation_id)
        return int(self.session.scalar(query) or 0)

    def _listings(self, query: Select[ApiToken, Person]) -> list[TokenListing]:
        return [
            TokenListing(t.id, t.prefix, t.created_at, t.revoked_at, p.id, p.email, p.role, p.organisation_id)
            for t, p in self.session.execute(query)
        ]
