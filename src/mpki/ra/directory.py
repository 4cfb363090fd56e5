"""Organisations, people and their credentials: every change authorised, validated and audited."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from mpki.audit import AuditRecord, append
from mpki.domain import (
    Action,
    Eui64,
    InvalidRequest,
    OrgStatus,
    RemotePartyRole,
    Role,
    Unauthenticated,
    utcnow,
)
from mpki.ra.authorisation import Principal, authorise, authorise_grant, visible_organisation
from mpki.ra.client_certificates import ClientCertificates
from mpki.ra.credentials import hash_password, new_token, token_digest
from mpki.ra.principals import principal_of
from mpki.store import (
    ApiToken,
    Database,
    Organisation,
    OrganisationRepository,
    Person,
    PersonRepository,
    TokenRepository,
)

_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")
_NAME = re.compile(r"[\w .&'()-]{1,128}")


@dataclass(frozen=True, slots=True)
class OrganisationView:
    id: int
    name: str
    eui64s: tuple[str, ...]
    roles: tuple[str, ...]
    status: str

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "eui64s": list(self.eui64s),
            "roles": list(self.roles),
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class PersonView:
    id: int
    email: str
    role: str
    organisation: str | None
    status: str

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "organisation": self.organisation,
            "status": self.status,
        }


def _org_view(row: Organisation) -> OrganisationView:
    return OrganisationView(
        id=row.id,
        name=row.name,
        eui64s=tuple(e for e in row.eui64s.split(",") if e),
        roles=tuple(r for r in row.roles.split(",") if r),
        status=row.status,
    )


class Directory(ClientCertificates):
    """The RA's record of who is who (client-certificate credentials: `ClientCertificates`)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # ----- organisations ------------------------------------------------------------------------

    def create_organisation(
        self, principal: Principal, name: str, eui64s: Sequence[str], roles: Sequence[str]
    ) -> OrganisationView:
        authorise(principal, Action.ORG_CREATE)
        name = name.strip()
        if not _NAME.fullmatch(name):
            raise InvalidRequest("an organisation name is 1 to 128 letters, digits, spaces or .&'()-")
        identifiers = [Eui64.parse(e).hex for e in eui64s]
        if not identifiers:
            raise InvalidRequest("an organisation needs at least one EUI-64 entity identifier")
        if len(set(identifiers)) != len(identifiers):
            raise InvalidRequest("an EUI-64 is listed twice")
        role_codes = sorted({RemotePartyRole.from_name(r).code for r in roles})
        if not role_codes:
            raise InvalidRequest("an organisation needs at least one remote-party role (e.g. supplier)")
        with self.database.transaction() as session:
            repository = OrganisationRepository(session)
            if repository.exists(name):
                raise InvalidRequest(f"an organisation named {name!r} already exists")
            for other in repository.all():
                taken = set(identifiers) & set(other.eui64s.split(","))
                if taken:
                    raise InvalidRequest(f"EUI-64 {sorted(taken)[0]} belongs to organisation {other.name}")
            row = repository.add(
                Organisation(
                    name=name,
                    eui64s=",".join(identifiers),
                    roles=",".join(role_codes),
                    status=OrgStatus.ACTIVE.value,
                    created_at=utcnow(),
                )
            )
            append(
                session,
                [
                    AuditRecord(
                        action="organisation.created",
                        actor=principal.actor,
                        details={"organisation": name, "eui64s": identifiers, "roles": role_codes},
                    )
                ],
            )
            return _org_view(row)

    def set_organisation_status(self, principal: Principal, name: str, status: OrgStatus) -> OrganisationView:
        with self.database.transaction() as session:
            row = OrganisationRepository(session).by_name(name)
            authorise(principal, Action.ORG_UPDATE, row.id)
            row.status = status.value
            append(
                session,
                [
                    AuditRecord(
                        action="organisation.status_changed",
                        actor=principal.actor,
                        details={"organisation": name, "status": status.value},
                    )
                ],
            )
            return _org_view(row)

    def set_approval_rule(self, principal: Principal, name: str, profile: str, rule: str) -> dict[str, str]:
        """How requests of `profile` from this organisation are approved: auto, review or dual (two agents)."""
        if rule not in ("auto", "review", "dual"):
            raise InvalidRequest("an approval rule is auto, review or dual")
        if profile not in ("smki-device", "smki-org", "tls-server", "tls-client"):
            raise InvalidRequest(f"profile {profile!r} is not requested through the RA")
        with self.database.transaction() as session:
            row = OrganisationRepository(session).by_name(name)
            authorise(principal, Action.ORG_UPDATE, row.id)
            rules = json.loads(row.approval_policy) if row.approval_policy else {}
            rules[profile] = rule
            row.approval_policy = json.dumps(rules, sort_keys=True)
            append(
                session,
                [
                    AuditRecord(
                        action="organisation.approval_rule_changed",
                        actor=principal.actor,
                        details={"organisation": name, "profile": profile, "rule": rule},
                    )
                ],
            )
            return dict(rules)

    def organisations(self, principal: Principal) -> list[OrganisationView]:
        only = visible_organisation(principal, Action.ORG_VIEW)
        with self.database.reader() as session:
            return [_org_view(row) for row in OrganisationRepository(session).all(only)]

    def organisation(self, principal: Principal, name: str) -> OrganisationView:
        with self.database.reader() as session:
            row = OrganisationRepository(session).by_name(name)
            authorise(principal, Action.ORG_VIEW, row.id)
            return _org_view(row)

    # ----- people -------------------------------------------------------------------------------

    def create_person(
        self, principal: Principal, email: str, role: Role, organisation: str | None, password: str | None = None
    ) -> PersonView:
        email = email.strip().lower()
        if not _EMAIL.fullmatch(email) or len(email) > 254:
            raise InvalidRequest(f"{email!r} is not an email address")
        if role.needs_organisation and organisation is None:
            raise InvalidRequest(f"the role {role.value} acts for an organisation: name the organisation")
        if not role.needs_organisation and organisation is not None:
            raise InvalidRequest(f"the role {role.value} works for the provider, not for an organisation")
        if password is not None and len(password) < 12:
            raise InvalidRequest("a password has at least 12 characters")
        with self.database.transaction() as session:
            org_row = OrganisationRepository(session).by_name(organisation) if organisation else None
            authorise(principal, Action.PERSON_CREATE, org_row.id if org_row else None)
            authorise_grant(principal, role)
            people = PersonRepository(session)
            if people.exists(email):
                raise InvalidRequest(f"a person with email {email!r} already exists")
            row = people.add(
                Person(
                    email=email,
                    role=role.value,
                    organisation_id=org_row.id if org_row else None,
                    status="active",
                    password_hash=hash_password(password) if password else None,
                    created_at=utcnow(),
                )
            )
            append(
                session,
                [
                    AuditRecord(
                        action="person.created",
                        actor=principal.actor,
                        details={"email": email, "role": role.value, "organisation": organisation},
                    )
                ],
            )
            return PersonView(row.id, email, role.value, organisation, row.status)

    def people(self, principal: Principal, organisation: str | None = None) -> list[PersonView]:
        with self.database.reader() as session:
            orgs = OrganisationRepository(session)
            if organisation is not None:
                org_id: int | None = orgs.by_name(organisation).id
                authorise(principal, Action.PERSON_VIEW, org_id)
            else:
                org_id = visible_organisation(principal, Action.PERSON_VIEW)
            names = {row.id: row.name for row in orgs.all()}
            return [
                PersonView(p.id, p.email, p.role, names.get(p.organisation_id or -1), p.status)
                for p in PersonRepository(session).all(org_id)
            ]

    # ----- credentials --------------------------------------------------------------------------

    def create_token(self, principal: Principal, email: str) -> str:
        """A new API token for the person; the plaintext is returned once and never stored."""
        token = new_token()
        with self.database.transaction() as session:
            person = PersonRepository(session).by_email(email.strip().lower())
            authorise(principal, Action.TOKEN_CREATE, person.organisation_id)
            authorise_grant(principal, Role(person.role))
            TokenRepository(session).add(
                ApiToken(person_id=person.id, token_sha256=token_digest(token), prefix=token[:12], created_at=utcnow())
            )
            append(
                session,
                [
                    AuditRecord(
                        action="token.created",
                        actor=principal.actor,
                        details={"email": person.email, "prefix": token[:12]},
                    )
                ],
            )
        return token

    def authenticate(self, token: str) -> Principal:
        """The principal a bearer token stands for; unknown, revoked or suspended ones are refused."""
        with self.database.reader() as session:
            row = TokenRepository(session).live_by_hash(token_digest(token))
            if row is None:
                raise Unauthenticated("the API token is not valid")
            return principal_of(session, row.person_id, "API token")
