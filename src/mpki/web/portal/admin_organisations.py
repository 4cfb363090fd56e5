"""Administration: organisations — the list with their approval rules, creating one, suspending or
reactivating one, and setting how each profile's requests are approved. All through `ra` (authorised and
audited there); bad input shows the page again with the message, status 400, and nothing written."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mpki.domain import Action, InvalidRequest, NotFound, OrgStatus
from mpki.ra.authorisation import authorise
from mpki.ra.intake import SUBSCRIBER_PROFILES
from mpki.ra.logins import PortalIdentity
from mpki.web.portal.admin_common import (
    REMOTE_PARTY_ROLES,
    administration,
    field,
    form_of,
    gate,
    may,
    role_label,
    services,
)
from mpki.web.portal.pages import redirect, render
from mpki.web.portal.session import Actor, Viewer

router = APIRouter(prefix="/portal/admin", include_in_schema=False)
PAGE = "/portal/admin/organisations"
RULES = ("auto", "review", "dual")


def _page(
    request: Request, who: PortalIdentity, *, error: str | None = None, form: dict[str, Any] | None = None
) -> Response:
    principal = gate(who)
    return render(
        request,
        "portal/admin_organisations.html",
        identity=who,
        active="admin",
        status_code=400 if error else 200,
        organisations=services(request).directory.organisations(principal),
        rules=administration(request).approval_rules(principal),
        role_label=role_label,
        remote_party_roles=REMOTE_PARTY_ROLES,
        profiles=SUBSCRIBER_PROFILES,
        approval_rules=RULES,
        may_create=may(principal, Action.ORG_CREATE),
        may_update=may(principal, Action.ORG_UPDATE),
        error=error,
        form=form or {"name": "", "eui64s": "", "roles": []},
    )


@router.get("/organisations")
def organisations(request: Request, who: Viewer) -> Response:
    return _page(request, who)


@router.post("/organisations")
async def create_organisation(request: Request, who: Actor) -> Response:
    principal = gate(who)
    authorise(principal, Action.ORG_CREATE)
    form = await form_of(request)
    values: dict[str, Any] = {"name": "", "eui64s": "", "roles": []}
    try:
        values = {
            "name": field(form, "name"),
            "eui64s": field(form, "eui64s"),
            "roles": [r for r in form.getlist("roles") if isinstance(r, str)],
        }
        eui64s = [e.strip() for e in values["eui64s"].split(",") if e.strip()]
        created = services(request).directory.create_organisation(principal, values["name"], eui64s, values["roles"])
    except InvalidRequest as bad:
        return _page(request, who, error=str(bad), form=values)
    return redirect(PAGE, notice=f"Organisation {created.name} created.")


@router.post("/organisations/status")
async def set_status(request: Request, who: Actor) -> Response:
    principal = gate(who)
    authorise(principal, Action.ORG_UPDATE)
    form = await form_of(request)
    try:
        name = field(form, "organisation")
        wanted = field(form, "status")
        if wanted not in {s.value for s in OrgStatus}:
            raise InvalidRequest("an organisation's status is active or suspended")
        changed = services(request).directory.set_organisation_status(principal, name, OrgStatus(wanted))
    except (InvalidRequest, NotFound) as bad:
        return _page(request, who, error=str(bad))
    verb = "reactivated" if changed.status == OrgStatus.ACTIVE.value else "suspended"
    return redirect(PAGE, notice=f"Organisation {changed.name} {verb}.")


@router.post("/organisations/approval-rule")
async def set_approval_rule(request: Request, who: Actor) -> Response:
    principal = gate(who)
    authorise(principal, Action.ORG_UPDATE)
    form = await form_of(request)
    try:
        name, profile, rule = field(form, "organisation"), field(form, "profile"), field(form, "rule")
        services(request).directory.set_approval_rule(principal, name, profile, rule)
    except (InvalidRequest, NotFound) as bad:
        return _page(request, who, error=str(bad))
    return redirect(PAGE, notice=f"{name}: {profile} requests are now approved by rule {rule}.")
