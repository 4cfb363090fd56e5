"""What every administration page shares: the area's gate, the services it calls, and reading its forms."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import FormData

from mpki.domain import Action, InvalidRequest, RemotePartyRole
from mpki.ra.administration import AREA_ACTIONS, Administration, authorise_one_of
from mpki.ra.authorisation import Principal, scope_of
from mpki.ra.logins import PortalIdentity
from mpki.web.api import Services

# Field lengths past which a form value is refused outright (the ra checks the real rules).
MAX_FIELD = 2000


def gate(identity: PortalIdentity) -> Principal:
    """Only provider staff who run or audit the service open these pages (403 for everyone else)."""
    authorise_one_of(identity.principal, AREA_ACTIONS)
    return identity.principal


def may(principal: Principal, action: Action) -> bool:
    return scope_of(principal, action) is not None


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def administration(request: Request) -> Administration:
    return Administration(services(request).directory.database)


async def form_of(request: Request) -> FormData:
    return await request.form()


def field(form: FormData, name: str) -> str:
    """A text field, trimmed; a missing field reads as empty, an oversized one is refused."""
    value = form.get(name)
    text = value if isinstance(value, str) else ""
    if len(text) > MAX_FIELD:
        raise InvalidRequest(f"the field {name} is too long")
    return text.strip()


def role_label(code: str) -> str:
    """A remote-party role code ("02") as people say it ("supplier")."""
    try:
        return RemotePartyRole.from_code(code).name.lower().replace("_", "-")
    except InvalidRequest:
        return code


_ACRONYMS = {"WAN": "WAN", "COS": "CoS"}


def _spoken(member: RemotePartyRole) -> str:
    words = [_ACRONYMS.get(word, word.lower()) for word in member.name.split("_")]
    return " ".join(words)[:1].upper() + " ".join(words)[1:]


# (form value, label) for each remote-party role, e.g. ("wan-provider", "WAN provider (06)").
REMOTE_PARTY_ROLES = [
    (member.name.lower().replace("_", "-"), f"{_spoken(member)} ({member.code})") for member in RemotePartyRole
]
