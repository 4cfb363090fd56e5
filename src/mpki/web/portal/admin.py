"""Portal section: administration — an overview, the CAs and the profile catalogue here; organisations,
people and tokens, and the audit log in their own modules, gathered into this section's router."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mpki.domain import Action
from mpki.profiles import PROFILES, Profile
from mpki.profiles.model import ValidityRule
from mpki.ra.administration import CA_LIST_ACTIONS, authorise_one_of
from mpki.web.portal import admin_audit, admin_organisations, admin_people
from mpki.web.portal.admin_common import administration, gate, may, services
from mpki.web.portal.pages import render
from mpki.web.portal.session import Viewer

_pages = APIRouter(prefix="/portal/admin", include_in_schema=False)


@_pages.get("/")
def overview(request: Request, who: Viewer) -> Response:
    principal = gate(who)
    counts: list[tuple[str, int, str]] = []
    if may(principal, Action.ORG_VIEW):
        organisations = services(request).directory.organisations(principal)
        counts.append(("Organisations", len(organisations), "/portal/admin/organisations"))
        suspended = sum(1 for org in organisations if org.status != "active")
        counts.append(("Suspended organisations", suspended, "/portal/admin/organisations"))
    if may(principal, Action.PERSON_VIEW):
        counts.append(("People", len(services(request).directory.people(principal)), "/portal/admin/people"))
        live = sum(1 for token in administration(request).tokens(principal) if not token.revoked)
        counts.append(("Live API tokens", live, "/portal/admin/tokens"))
    may_see_cas = any(may(principal, action) for action in CA_LIST_ACTIONS)
    if may_see_cas:
        counts.append(("CAs", len(services(request).authority.list_cas()), "/portal/admin/cas"))
    counts.append(("Profiles", len(PROFILES), "/portal/admin/profiles"))
    return render(
        request,
        "portal/admin_overview.html",
        identity=who,
        active="admin",
        counts=counts,
        may_see_cas=may_see_cas,
        may_audit=may(principal, Action.AUDIT_VIEW),
        may_view_people=may(principal, Action.PERSON_VIEW),
    )


@_pages.get("/cas")
def cas(request: Request, who: Viewer) -> Response:
    """Each CA's name, profile, subject, validity, status and key reference (never key material)."""
    gate(who)
    authorise_one_of(who.principal, CA_LIST_ACTIONS, "the list of CAs and their key references")
    return render(
        request, "portal/admin_cas.html", identity=who, active="admin", cas=services(request).authority.list_cas()
    )


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    name: str
    description: str
    kind: str
    validity: str
    key_usage: str
    extensions: tuple[str, ...]
    extended_key_usage: tuple[str, ...]


def _validity(profile: Profile) -> str:
    if profile.validity_rule is ValidityRule.NO_EXPIRY:
        return "no expiry (notAfter 9999-12-31)"
    if profile.validity_rule is ValidityRule.DAYS:
        return "days, from configuration, never past the issuer"
    return "years less one second, from configuration" + (", never past the issuer" if profile.clamp_to_issuer else "")


def _key_usage(profile: Profile) -> str:
    if profile.is_ca:
        return "keyCertSign, cRLSign"
    if profile.single_key_usage:
        return "one of digitalSignature or keyAgreement, as the request asks"
    return "digitalSignature (and keyEncipherment for RSA)"


def summarise(profile: Profile) -> ProfileSummary:
    extensions = tuple(f"{spec.name}{' (critical)' if spec.critical else ''}" for spec in profile.extensions)
    if profile.path_length is not None:
        extensions = tuple(
            f"{e} pathLen {profile.path_length}" if e.startswith("basicConstraints") else e for e in extensions
        )
    return ProfileSummary(
        profile.name,
        profile.description,
        profile.kind.value,
        _validity(profile),
        _key_usage(profile),
        extensions,
        profile.extended_key_usage,
    )


@_pages.get("/profiles")
def profiles(request: Request, who: Viewer) -> Response:
    gate(who)
    return render(
        request,
        "portal/admin_profiles.html",
        identity=who,
        active="admin",
        profiles=[summarise(profile) for profile in PROFILES.values()],
    )


# The section's one router, as `routes.portal_routers()` expects.
router = APIRouter(include_in_schema=False)
for _part in (_pages, admin_organisations.router, admin_people.router, admin_audit.router):
    router.include_router(_part)
