"""Administration: people and their API tokens — list (by organisation), create, set a password, disable
or enable, mint a token (shown once) and revoke one. All through `ra`, authorised and audited there."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mpki.domain import Action, InvalidRequest, NotFound, Role
from mpki.ra.authorisation import GRANTS, authorise
from mpki.ra.directory import PersonView
from mpki.ra.logins import MIN_PASSWORD, PortalIdentity
from mpki.web.portal.admin_common import administration, field, form_of, gate, may, services
from mpki.web.portal.pages import redirect, render
from mpki.web.portal.params import RowId
from mpki.web.portal.session import Actor, Viewer, logins

router = APIRouter(prefix="/portal/admin", include_in_schema=False)
EMPTY_PERSON = {"email": "", "role": "", "organisation": ""}


def _people_page(
    request: Request,
    who: PortalIdentity,
    organisation: str | None,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    principal = gate(who)
    directory = services(request).directory
    return render(
        request,
        "portal/admin_people.html",
        identity=who,
        active="admin",
        status_code=400 if error else 200,
        people=directory.people(principal, organisation),
        organisations=directory.organisations(principal),
        chosen=organisation or "",
        grantable=[r.value for r in Role if r in GRANTS.get(principal.role, frozenset())],
        may_create=may(principal, Action.PERSON_CREATE),
        min_password=MIN_PASSWORD,
        error=error,
        form=form or EMPTY_PERSON,
    )


@router.get("/people")
def people(
    request: Request, who: Viewer, organisation: Annotated[str | None, Query(max_length=128)] = None
) -> Response:
    return _people_page(request, who, organisation or None)


@router.post("/people")
async def create_person(request: Request, who: Actor) -> Response:
    principal = gate(who)
    authorise(principal, Action.PERSON_CREATE)
    form = await form_of(request)
    values = dict(EMPTY_PERSON)
    try:
        values = {
            "email": field(form, "email"),
            "role": field(form, "role"),
            "organisation": field(form, "organisation"),
        }
        password = field(form, "password")
        if values["role"] not in {r.value for r in Role}:
            raise InvalidRequest("choose a role")
        if len(password) < MIN_PASSWORD:
            raise InvalidRequest(f"an initial password has at least {MIN_PASSWORD} characters")
        created = services(request).directory.create_person(
            principal, values["email"], Role(values["role"]), values["organisation"] or None, password
        )
    except (InvalidRequest, NotFound) as bad:
        return _people_page(request, who, None, error=str(bad), form=values)
    return redirect(f"/portal/admin/people/{created.id}", notice=f"{created.email} can now sign in.")


def _person_page(
    request: Request, who: PortalIdentity, person_id: int, *, error: str | None = None, status_code: int = 200
) -> Response:
    principal = gate(who)
    admin = administration(request)
    person = admin.person(principal, person_id)
    return render(
        request,
        "portal/admin_person.html",
        identity=who,
        active="admin",
        status_code=status_code,
        person=person,
        tokens=admin.tokens(principal, person_id),
        may_manage=_may_manage(principal.role, person),
        is_me=person.id == principal.person_id,
        min_password=MIN_PASSWORD,
        error=error,
    )


def _may_manage(role: Role, person: PersonView) -> bool:
    """Whether to offer the forms at all; `ra` decides again on every POST."""
    return Role(person.role) in GRANTS.get(role, frozenset())


@router.get("/people/{person_id}")
def person(request: Request, who: Viewer, person_id: RowId) -> Response:
    return _person_page(request, who, person_id)


@router.post("/people/{person_id}/password")
async def set_password(request: Request, who: Actor, person_id: RowId) -> Response:
    principal = gate(who)
    authorise(principal, Action.TOKEN_CREATE)
    form = await form_of(request)
    target = administration(request).person(principal, person_id)
    try:
        password, again = field(form, "password"), field(form, "confirm")
        if password != again:
            raise InvalidRequest("the two passwords differ")
        logins(request).set_password(principal, target.email, password)
    except InvalidRequest as bad:
        return _person_page(request, who, person_id, error=str(bad), status_code=400)
    return redirect(f"/portal/admin/people/{person_id}", notice=f"New password set for {target.email}.")


@router.post("/people/{person_id}/status")
async def set_status(request: Request, who: Actor, person_id: RowId) -> Response:
    principal = gate(who)
    authorise(principal, Action.PERSON_CREATE)
    form = await form_of(request)
    try:
        changed = administration(request).set_person_status(principal, person_id, field(form, "status"))
    except InvalidRequest as bad:
        return _person_page(request, who, person_id, error=str(bad), status_code=400)
    return redirect(f"/portal/admin/people/{person_id}", notice=f"{changed.email} is now {changed.status}.")


@router.post("/people/{person_id}/tokens")
def mint_token(request: Request, who: Actor, person_id: RowId) -> Response:
    """The token appears on this answer only (no redirect: it never sits in a cookie, URL or log)."""
    principal = gate(who)
    authorise(principal, Action.TOKEN_CREATE)
    target = administration(request).person(principal, person_id)
    token = services(request).directory.create_token(principal, target.email)
    return render(request, "portal/admin_token.html", identity=who, active="admin", person=target, token=token)


@router.get("/tokens")
def tokens(request: Request, who: Viewer) -> Response:
    return _tokens_page(request, who)


def _tokens_page(request: Request, who: PortalIdentity, *, error: str | None = None) -> Response:
    principal = gate(who)
    listing = administration(request).tokens(principal)
    return render(
        request,
        "portal/admin_tokens.html",
        identity=who,
        active="admin",
        status_code=400 if error else 200,
        tokens=listing,
        grantable={r.value for r in GRANTS.get(principal.role, frozenset())},
        may_revoke=may(principal, Action.TOKEN_CREATE),
        error=error,
    )


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(request: Request, who: Actor, token_id: RowId) -> Response:
    principal = gate(who)
    authorise(principal, Action.TOKEN_CREATE)
    form = await form_of(request)
    back = field(form, "person")  # revoked from a person's page: go back there
    try:
        revoked = administration(request).revoke_token(principal, token_id)
    except InvalidRequest as bad:
        return _tokens_page(request, who, error=str(bad))
    target = f"/portal/admin/people/{int(back)}" if back.isdecimal() and len(back) < 19 else "/portal/admin/tokens"
    return redirect(target, notice=f"Token {revoked.prefix}… of {revoked.email} revoked.")
