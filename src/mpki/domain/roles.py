"""Who may do what: the roles people hold and the actions the service authorises."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """Provider-side roles run the service; organisation-side roles act for one organisation."""

    SERVICE_ADMIN = "service-admin"
    RA_MANAGER = "ra-manager"
    RA_AGENT = "ra-agent"
    AUTHORISED_SUBSCRIBER = "authorised-subscriber"
    ORG_RA_OFFICER = "org-ra-officer"
    AUDITOR = "auditor"

    @property
    def needs_organisation(self) -> bool:
        return self in (Role.AUTHORISED_SUBSCRIBER, Role.ORG_RA_OFFICER)


class Action(enum.StrEnum):
    """Every action a route or command performs, authorised in one place (`ra.authorisation`)."""

    ORG_CREATE = "org.create"
    ORG_VIEW = "org.view"
    ORG_UPDATE = "org.update"
    PERSON_CREATE = "person.create"
    PERSON_VIEW = "person.view"
    TOKEN_CREATE = "token.create"
    REQUEST_SUBMIT = "request.submit"
    REQUEST_VIEW = "request.view"
    REQUEST_DECIDE = "request.decide"
    CERT_VIEW = "certificate.view"
    CERT_REVOKE = "certificate.revoke"
    CA_ADMIN = "ca.admin"
    AUDIT_VIEW = "audit.view"
    REPORT_VIEW = "report.view"


class OrgStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
