"""The RA directory: organisations, people, API tokens; authorised, validated, audited, in-process and via `mpki`."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Connection, text

from mpki.audit import verify_chain
from mpki.ca.runtime import open_database
from mpki.config import Settings
from mpki.domain import Forbidden, InvalidRequest, MpkiError, NotFound, OrgStatus, Role, Unauthenticated
from mpki.ra import OPERATOR, Directory, Principal
from mpki.ra.credentials import password_matches

EUI_A = "90B3D51F30010000"
EUI_B = "90B3D51F30020000"
EUI_C = "90B3D51F30030000"
PASSWORD = "correct horse battery"
TABLES = ("organisations", "people", "api_tokens", "audit_events")


@pytest.fixture
def directory(settings: Settings) -> Iterator[Directory]:
    database = open_database(settings)
    yield Directory(database)
    database.dispose()


def counts(sql: Connection) -> dict[str, int]:
    return {table: sql.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() for table in TABLES}


def audit_actions(sql: Connection) -> list[str]:
    return list(sql.execute(text("SELECT action FROM audit_events ORDER BY seq")).scalars())


def audit_details(sql: Connection, action: str) -> list[dict[str, object]]:
    rows = sql.execute(text("SELECT details FROM audit_events WHERE action = :a ORDER BY seq"), {"a": action})
    return [json.loads(details) for details in rows.scalars()]


@dataclass
class World:
    """Two organisations with an authorised subscriber and an org RA officer each, and provider staff."""

    directory: Directory
    tokens: dict[str, str]

    def principal(self, email: str) -> Principal:
        return self.directory.authenticate(self.tokens[email])


PEOPLE = [
    ("sub@a.example", Role.AUTHORISED_SUBSCRIBER, "Acme Energy"),
    ("officer@a.example", Role.ORG_RA_OFFICER, "Acme Energy"),
    ("sub@b.example", Role.AUTHORISED_SUBSCRIBER, "Beta Networks"),
    ("officer@b.example", Role.ORG_RA_OFFICER, "Beta Networks"),
    ("agent@provider.example", Role.RA_AGENT, None),
    ("manager@provider.example", Role.RA_MANAGER, None),
    ("auditor@provider.example", Role.AUDITOR, None),
]


@pytest.fixture
def world(directory: Directory) -> World:
    directory.create_organisation(OPERATOR, "Acme Energy", [EUI_A], ["supplier"])
    directory.create_organisation(OPERATOR, "Beta Networks", [EUI_B], ["network-operator"])
    tokens = {}
    for email, role, organisation in PEOPLE:
        directory.create_person(OPERATOR, email, role, organisation)
        tokens[email] = directory.create_token(OPERATOR, email)
    return World(directory, tokens)


# ----- organisations ----------------------------------------------------------------------------------------


def test_create_organisation(directory: Directory, sql: Connection) -> None:
    view = directory.create_organisation(
        OPERATOR, "  Acme Energy (North) Ltd.  ", ["90-b3-d5-1f-30-01-00-00", EUI_B], ["supplier", "network-operator"]
    )
    assert view.name == "Acme Energy (North) Ltd."
    assert view.eui64s == (EUI_A, EUI_B)
    assert view.roles == ("02", "03")
    assert view.status == "active"
    row = sql.execute(text("SELECT name, eui64s, roles, status FROM organisations")).one()
    assert tuple(row) == ("Acme Energy (North) Ltd.", f"{EUI_A},{EUI_B}", "02,03", "active")
    assert directory.organisations(OPERATOR) == [view]
    assert directory.organisation(OPERATOR, "Acme Energy (North) Ltd.") == view
    assert audit_details(sql, "organisation.created") == [
        {"organisation": "Acme Energy (North) Ltd.", "eui64s": [EUI_A, EUI_B], "roles": ["02", "03"]}
    ]


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("supplier", "02"),
        ("network-operator", "03"),
        ("Network_Operator", "03"),
        ("access-control-broker", "04"),
        ("wan-provider", "06"),
        ("02", "02"),
        ("7F", "7F"),
        ("7f", "7F"),
    ],
)
def test_role_names_parse_to_codes(directory: Directory, given: str, code: str) -> None:
    view = directory.create_organisation(OPERATOR, "Org", [EUI_A], [given])
    assert view.roles == (code,)


def test_roles_are_deduplicated_and_sorted(directory: Directory) -> None:
    view = directory.create_organisation(OPERATOR, "Org", [EUI_A], ["7F", "supplier", "02", "network-operator"])
    assert view.roles == ("02", "03", "7F")


BAD_ORGANISATIONS = [
    # id, name, eui64s, roles, fragment of the message
    ("eui64-not-hex", "Org", ["90B3D51F3001000G"], ["supplier"], "not hexadecimal"),
    ("eui64-short", "Org", ["90B3D51F300100"], ["supplier"], "16 hex digits"),
    ("eui64-long", "Org", ["90B3D51F3001000000"], ["supplier"], "16 hex digits"),
    ("eui64-empty-string", "Org", [""], ["supplier"], "16 hex digits"),
    ("eui64-none", "Org", [], ["supplier"], "at least one EUI-64"),
    ("eui64-twice", "Org", [EUI_A, "90:b3:d5:1f:30:01:00:00"], ["supplier"], "listed twice"),
    ("roles-none", "Org", [EUI_A], [], "at least one remote-party role"),
    ("role-unknown-name", "Org", [EUI_A], ["plumber"], "unknown remote-party role"),
    ("role-unknown-code", "Org", [EUI_A], ["7E"], "not a known RemotePartyRole"),
    ("role-one-bad-of-two", "Org", [EUI_A], ["supplier", "plumber"], "plumber"),
    ("name-empty", "", [EUI_A], ["supplier"], "organisation name"),
    ("name-blank", "   ", [EUI_A], ["supplier"], "organisation name"),
    ("name-too-long", "x" * 129, [EUI_A], ["supplier"], "organisation name"),
    ("name-semicolon", "Acme; DROP TABLE people", [EUI_A], ["supplier"], "organisation name"),
    ("name-slash", "Acme/Energy", [EUI_A], ["supplier"], "organisation name"),
    ("name-newline", "Acme\nEnergy", [EUI_A], ["supplier"], "organisation name"),
    ("name-markup", "<b>Acme</b>", [EUI_A], ["supplier"], "organisation name"),
]


@pytest.mark.parametrize(
    ("name", "eui64s", "roles", "fragment"), [c[1:] for c in BAD_ORGANISATIONS], ids=[c[0] for c in BAD_ORGANISATIONS]
)
def test_bad_organisation_is_refused_and_nothing_written(
    directory: Directory, sql: Connection, name: str, eui64s: list[str], roles: list[str], fragment: str
) -> None:
    directory.create_organisation(OPERATOR, "Existing", [EUI_C], ["supplier"])
    before = counts(sql)
    with pytest.raises(InvalidRequest, match=re.escape(fragment)):
        directory.create_organisation(OPERATOR, name, eui64s, roles)
    assert counts(sql) == before


def test_organisation_name_limit_is_128(directory: Directory) -> None:
    assert directory.create_organisation(OPERATOR, "x" * 128, [EUI_A], ["supplier"]).name == "x" * 128


def test_duplicate_organisation_is_refused(directory: Directory, sql: Connection) -> None:
    directory.create_organisation(OPERATOR, "Acme Energy", [EUI_A], ["supplier"])
    before = counts(sql)
    for name in ("Acme Energy", "  Acme Energy "):
        with pytest.raises(InvalidRequest, match="already exists"):
            directory.create_organisation(OPERATOR, name, [EUI_B], ["network-operator"])
    assert counts(sql) == before
    assert [v.name for v in directory.organisations(OPERATOR)] == ["Acme Energy"]


def test_eui64_of_another_organisation_is_refused(directory: Directory, sql: Connection) -> None:
    directory.create_organisation(OPERATOR, "Acme Energy", [EUI_A], ["supplier"])
    before = counts(sql)
    with pytest.raises(InvalidRequest, match=EUI_A):
        directory.create_organisation(OPERATOR, "Impostor", [EUI_A], ["supplier"])
    assert counts(sql) == before


def test_suspend_and_activate_organisation(directory: Directory, sql: Connection) -> None:
    directory.create_organisation(OPERATOR, "Acme Energy", [EUI_A], ["supplier"])
    assert directory.set_organisation_status(OPERATOR, "Acme Energy", OrgStatus.SUSPENDED).status == "suspended"
    assert sql.execute(text("SELECT status FROM organisations")).scalar_one() == "suspended"
    assert directory.set_organisation_status(OPERATOR, "Acme Energy", OrgStatus.ACTIVE).status == "active"
    assert audit_details(sql, "organisation.status_changed") == [
        {"organisation": "Acme Energy", "status": "suspended"},
        {"organisation": "Acme Energy", "status": "active"},
    ]
    before = counts(sql)
    with pytest.raises(NotFound):
        directory.set_organisation_status(OPERATOR, "No Such Org", OrgStatus.SUSPENDED)
    assert counts(sql) == before


# ----- who may change the directory ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "who", ["sub@a.example", "officer@a.example", "agent@provider.example", "auditor@provider.example"]
)
def test_only_managers_change_the_directory(world: World, sql: Connection, who: str) -> None:
    principal = world.principal(who)
    before = counts(sql)
    with pytest.raises(Forbidden, match=principal.role.value):
        world.directory.create_organisation(principal, "Gamma", [EUI_C], ["supplier"])
    with pytest.raises(Forbidden, match=principal.role.value):
        world.directory.set_organisation_status(principal, "Acme Energy", OrgStatus.SUSPENDED)
    with pytest.raises(Forbidden, match=principal.role.value):
        world.directory.create_person(principal, "new@a.example", Role.AUTHORISED_SUBSCRIBER, "Acme Energy")
    with pytest.raises(Forbidden, match=principal.role.value):
        world.directory.create_token(principal, "sub@a.example")
    assert counts(sql) == before
    assert world.directory.organisation(OPERATOR, "Acme Energy").status == "active"


def test_ra_manager_runs_the_directory(world: World, sql: Connection) -> None:
    manager = world.principal("manager@provider.example")
    world.directory.create_organisation(manager, "Gamma", [EUI_C], ["supplier"])
    world.directory.create_person(manager, "sub@c.example", Role.AUTHORISED_SUBSCRIBER, "Gamma")
    token = world.directory.create_token(manager, "sub@c.example")
    world.directory.set_organisation_status(manager, "Gamma", OrgStatus.SUSPENDED)
    with pytest.raises(Unauthenticated):
        world.directory.authenticate(token)
    actors = sql.execute(text("SELECT actor FROM audit_events ORDER BY seq DESC LIMIT 4")).scalars().all()
    assert actors == ["ra-manager:manager@provider.example"] * 4


def test_ra_manager_cannot_create_a_service_admin(world: World, sql: Connection) -> None:
    manager = world.principal("manager@provider.example")
    before = counts(sql)
    with pytest.raises(Forbidden):
        world.directory.create_person(manager, "root@provider.example", Role.SERVICE_ADMIN, None)
    assert counts(sql) == before


def test_ra_manager_cannot_mint_a_service_admin_token(world: World, sql: Connection) -> None:
    world.directory.create_person(OPERATOR, "admin@provider.example", Role.SERVICE_ADMIN, None)
    manager = world.principal("manager@provider.example")
    before = counts(sql)
    with pytest.raises(Forbidden):
        world.directory.create_token(manager, "admin@provider.example")
    assert counts(sql) == before


# ----- people -------------------------------------------------------------------------------------------------


def test_create_person(directory: Directory, sql: Connection) -> None:
    directory.create_organisation(OPERATOR, "Acme Energy", [EUI_A], ["supplier"])
    view = directory.create_person(OPERATOR, "  Alice@Acme.Example ", Role.ORG_RA_OFFICER, "Acme Energy")
    assert (view.email, view.role, view.organisation, view.status) == (
        "alice@acme.example",
        "org-ra-officer",
        "Acme Energy",
        "active",
    )
    row = sql.execute(text("SELECT email, role, organisation_id, password_hash FROM people")).one()
    org_id = sql.execute(text("SELECT id FROM organisations")).scalar_one()
    assert tuple(row) == ("alice@acme.example", "org-ra-officer", org_id, None)
    assert directory.people(OPERATOR) == [view]
    assert audit_details(sql, "person.created") == [
        {"email": "alice@acme.example", "role": "org-ra-officer", "organisation": "Acme Energy"}
    ]


# Written out rather than taken from Role.needs_organisation, so that property is tested too.
ORG_SIDE = [Role.AUTHORISED_SUBSCRIBER, Role.ORG_RA_OFFICER]
PROVIDER_SIDE = [Role.SERVICE_ADMIN, Role.RA_MANAGER, Role.RA_AGENT, Role.AUDITOR]


def test_role_lists_cover_every_role() -> None:
    assert set(ORG_SIDE) | set(PROVIDER_SIDE) == set(Role)
    assert [r for r in Role if r.needs_organisation] == ORG_SIDE


@pytest.mark.parametrize("role", ORG_SIDE)
def test_org_side_role_needs_an_organisation(directory: Directory, sql: Connection, role: Role) -> None:
    directory.create_organisation(OPERATOR, "Acme Energy", [EUI_A], ["supplier"])
    before = counts(sql)
    with pytest.raises(InvalidRequest, match="name the organisation"):
        directory.create_person(OPERATOR, "x@acme.example", role, None)
    assert counts(sql) == before
    assert directory.create_person(OPERATOR, "x@acme.example", role, "Acme Energy").organisation == "Acme Energy"


@pytest.mark.parametrize("role", PROVIDER_SIDE)
def test_provider_role_has_no_organisation(directory: Directory, sql: Connection, role: Role) -> None:
    directory.create_organisation(OPERATOR, "Acme Energy", [EUI_A], ["supplier"])
    before = counts(sql)
    with pytest.raises(InvalidRequest, match="works for the provider"):
        directory.create_person(OPERATOR, "x@provider.example", role, "Acme Energy")
    assert counts(sql) == before
    assert directory.create_person(OPERATOR, "x@provider.example", role, None).organisation is None


@pytest.mark.parametrize(
    "email",
    ["not-an-email", "", "   ", "a@b@c.example", "two words@x.example", "@x.example", "x@", "a" * 250 + "@x.eu"],
)
def test_bad_email_is_refused(directory: Directory, sql: Connection, email: str) -> None:
    before = counts(sql)
    with pytest.raises(InvalidRequest, match="not an email address"):
        directory.create_person(OPERATOR, email, Role.RA_AGENT, None)
    assert counts(sql) == before


def test_duplicate_email_is_refused_whatever_its_case(directory: Directory, sql: Connection) -> None:
    directory.create_person(OPERATOR, "agent@provider.example", Role.RA_AGENT, None)
    before = counts(sql)
    for email in ("agent@provider.example", "AGENT@Provider.Example"):
        with pytest.raises(InvalidRequest, match="already exists"):
            directory.create_person(OPERATOR, email, Role.AUDITOR, None)
    assert counts(sql) == before


def test_person_of_unknown_organisation_is_refused(directory: Directory, sql: Connection) -> None:
    before = counts(sql)
    with pytest.raises(NotFound, match="No Such Org"):
        directory.create_person(OPERATOR, "x@acme.example", Role.AUTHORISED_SUBSCRIBER, "No Such Org")
    assert counts(sql) == before


def test_short_password_is_refused(directory: Directory, sql: Connection) -> None:
    before = counts(sql)
    for password in ("", "x" * 11):
        with pytest.raises(InvalidRequest, match="at least 12"):
            directory.create_person(OPERATOR, "agent@provider.example", Role.RA_AGENT, None, password)
    assert counts(sql) == before
    directory.create_person(OPERATOR, "agent@provider.example", Role.RA_AGENT, None, "x" * 12)


def test_password_is_stored_as_an_argon2_hash(directory: Directory, sql: Connection) -> None:
    directory.create_person(OPERATOR, "agent@provider.example", Role.RA_AGENT, None, PASSWORD)
    directory.create_person(OPERATOR, "other@provider.example", Role.RA_AGENT, None, PASSWORD)
    hashes = sql.execute(text("SELECT password_hash FROM people ORDER BY id")).scalars().all()
    for stored in hashes:
        assert stored.startswith("$argon2id$"), stored
        assert PASSWORD not in stored
        assert password_matches(stored, PASSWORD)
        assert not password_matches(stored, PASSWORD + "!")
    assert hashes[0] != hashes[1]  # salted
    events = " ".join(sql.execute(text("SELECT details FROM audit_events")).scalars())
    assert PASSWORD not in events
    assert hashes[0] not in events


# ----- what organisation-side principals see ------------------------------------------------------------------


def emails(views: list) -> set[str]:  # type: ignore[type-arg]
    return {v.email for v in views}


def test_subscriber_may_not_list_people(world: World) -> None:
    subscriber = world.principal("sub@a.example")
    with pytest.raises(Forbidden, match=r"authorised-subscriber may not person\.view"):
        world.directory.people(subscriber)
    with pytest.raises(Forbidden):
        world.directory.people(subscriber, "Acme Energy")
    with pytest.raises(Forbidden):
        world.directory.people(subscriber, "Beta Networks")


def test_org_ra_officer_sees_only_its_own_people(world: World) -> None:
    officer = world.principal("officer@a.example")
    assert emails(world.directory.people(officer)) == {"sub@a.example", "officer@a.example"}
    assert emails(world.directory.people(officer, "Acme Energy")) == {"sub@a.example", "officer@a.example"}
    with pytest.raises(Forbidden, match="own organisation"):
        world.directory.people(officer, "Beta Networks")
    other = world.principal("officer@b.example")
    assert emails(world.directory.people(other)) == {"sub@b.example", "officer@b.example"}


@pytest.mark.parametrize("who", ["sub@a.example", "officer@a.example"])
def test_org_side_principal_sees_only_its_own_organisation(world: World, who: str) -> None:
    principal = world.principal(who)
    assert [v.name for v in world.directory.organisations(principal)] == ["Acme Energy"]
    assert world.directory.organisation(principal, "Acme Energy").name == "Acme Energy"
    with pytest.raises(Forbidden, match="own organisation"):
        world.directory.organisation(principal, "Beta Networks")


@pytest.mark.parametrize("who", ["agent@provider.example", "auditor@provider.example", "manager@provider.example"])
def test_provider_staff_see_everyone(world: World, who: str) -> None:
    principal = world.principal(who)
    assert [v.name for v in world.directory.organisations(principal)] == ["Acme Energy", "Beta Networks"]
    assert emails(world.directory.people(principal)) == {email for email, _, _ in PEOPLE}
    assert emails(world.directory.people(principal, "Beta Networks")) == {"sub@b.example", "officer@b.example"}


# ----- tokens -------------------------------------------------------------------------------------------------


def test_token_is_stored_only_as_its_sha256(directory: Directory, sql: Connection) -> None:
    directory.create_person(OPERATOR, "agent@provider.example", Role.RA_AGENT, None)
    first = directory.create_token(OPERATOR, "agent@provider.example")
    second = directory.create_token(OPERATOR, "Agent@Provider.Example")
    assert first != second
    for token in (first, second):
        assert token.startswith("mpki_")
        assert len(token) >= 40
    rows = sql.execute(text("SELECT * FROM api_tokens ORDER BY id")).mappings().all()
    assert [row["token_sha256"] for row in rows] == [hashlib.sha256(t.encode()).hexdigest() for t in (first, second)]
    assert [row["prefix"] for row in rows] == [first[:12], second[:12]]
    stored = " ".join(str(value) for row in rows for value in row.values())
    stored += " ".join(sql.execute(text("SELECT details FROM audit_events")).scalars())
    for token in (first, second):
        assert token not in stored
        assert token[12:] not in stored  # no more than the display prefix is kept anywhere
    assert audit_details(sql, "token.created") == [
        {"email": "agent@provider.example", "prefix": first[:12]},
        {"email": "agent@provider.example", "prefix": second[:12]},
    ]


def test_authenticate_returns_the_tokens_principal(world: World, sql: Connection) -> None:
    ids = {email: id_ for email, id_ in sql.execute(text("SELECT email, id FROM people"))}
    org_ids = {name: id_ for name, id_ in sql.execute(text("SELECT name, id FROM organisations"))}
    for email, role, organisation in PEOPLE:
        principal = world.directory.authenticate(world.tokens[email])
        assert principal == Principal(ids[email], email, role, org_ids[organisation] if organisation else None)


def test_wrong_token_is_unauthenticated(world: World) -> None:
    good = world.tokens["sub@a.example"]
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    sha = hashlib.sha256(good.encode()).hexdigest()  # the stored digest is not itself a token
    for token in ("", "mpki_", flipped, good + "x", good.upper(), sha):
        with pytest.raises(Unauthenticated):
            world.directory.authenticate(token)


def test_token_of_suspended_organisation_is_unauthenticated(world: World) -> None:
    world.directory.set_organisation_status(OPERATOR, "Acme Energy", OrgStatus.SUSPENDED)
    for email in ("sub@a.example", "officer@a.example"):
        with pytest.raises(Unauthenticated, match="suspended"):
            world.directory.authenticate(world.tokens[email])
    assert world.principal("sub@b.example").email == "sub@b.example"  # the other organisation is unaffected
    assert world.principal("agent@provider.example").email == "agent@provider.example"
    world.directory.set_organisation_status(OPERATOR, "Acme Energy", OrgStatus.ACTIVE)
    assert world.principal("sub@a.example").email == "sub@a.example"


def test_token_for_unknown_person_writes_nothing(directory: Directory, sql: Connection) -> None:
    before = counts(sql)
    with pytest.raises(NotFound):
        directory.create_token(OPERATOR, "nobody@provider.example")
    assert counts(sql) == before


def test_org_ra_officer_may_not_mint_tokens_even_for_its_own_people(world: World, sql: Connection) -> None:
    before = counts(sql)
    with pytest.raises(Forbidden, match=r"org-ra-officer may not token\.create"):
        world.directory.create_token(world.principal("officer@a.example"), "sub@a.example")
    assert counts(sql) == before


# ----- audit --------------------------------------------------------------------------------------------------


def test_every_change_is_audited_and_refusals_are_not(directory: Directory, sql: Connection) -> None:
    directory.create_organisation(OPERATOR, "Acme Energy", [EUI_A], ["supplier"])
    directory.create_person(OPERATOR, "sub@a.example", Role.AUTHORISED_SUBSCRIBER, "Acme Energy", PASSWORD)
    directory.create_token(OPERATOR, "sub@a.example")
    directory.set_organisation_status(OPERATOR, "Acme Energy", OrgStatus.SUSPENDED)
    refusals = [
        lambda: directory.create_organisation(OPERATOR, "Acme Energy", [EUI_B], ["supplier"]),
        lambda: directory.create_organisation(OPERATOR, "Beta", ["nonsense"], ["supplier"]),
        lambda: directory.create_person(OPERATOR, "sub@a.example", Role.AUTHORISED_SUBSCRIBER, "Acme Energy"),
        lambda: directory.create_person(OPERATOR, "bad", Role.RA_AGENT, None),
        lambda: directory.create_token(OPERATOR, "nobody@a.example"),
        lambda: directory.set_organisation_status(OPERATOR, "Beta", OrgStatus.ACTIVE),
    ]
    for refused in refusals:
        with pytest.raises(MpkiError):
            refused()
    assert audit_actions(sql) == [
        "organisation.created",
        "person.created",
        "token.created",
        "organisation.status_changed",
    ]
    actors = set(sql.execute(text("SELECT actor FROM audit_events")).scalars())
    assert actors == {"service-admin:operator@localhost"}
    result = verify_chain(directory.database)
    assert result.ok
    assert result.events == 4


# ----- the command line ---------------------------------------------------------------------------------------


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def test_cli_directory_happy_path(mpki, settings: Settings, sql: Connection) -> None:  # type: ignore[no-untyped-def]
    run = mpki(
        "org", "create", "Acme Energy", "--eui64", EUI_A, "--eui64", f"{EUI_B},{EUI_C}", "--roles", "supplier,7F"
    )
    assert run.returncode == 0, run.stderr
    assert "Acme Energy" in run.stdout
    run = mpki("org", "list", "--json", check=True)
    [organisation] = json.loads(run.stdout)
    assert organisation["name"] == "Acme Energy"
    assert organisation["eui64s"] == [EUI_A, EUI_B, EUI_C]
    assert organisation["roles"] == ["02", "7F"]
    assert organisation["status"] == "active"

    run = mpki(
        "user",
        "create",
        "sub@a.example",
        "--org",
        "Acme Energy",
        "--role",
        "authorised-subscriber",
        "--password-stdin",
        input=f"{PASSWORD}\n".encode(),
    )
    assert run.returncode == 0, run.stderr
    assert "sub@a.example" in run.stdout
    run = mpki("user", "list", "--org", "Acme Energy", "--json", check=True)
    [person] = json.loads(run.stdout)
    assert {k: person[k] for k in ("email", "role", "organisation", "status")} == {
        "email": "sub@a.example",
        "role": "authorised-subscriber",
        "organisation": "Acme Energy",
        "status": "active",
    }
    assert "argon2" not in run.stdout
    stored = sql.execute(text("SELECT password_hash FROM people")).scalar_one()
    assert password_matches(stored, PASSWORD)

    run = mpki("token", "create", "sub@a.example")
    assert run.returncode == 0, run.stderr
    token = run.stdout.splitlines()[0].strip()
    assert token.startswith("mpki_")
    database = open_database(settings)
    try:
        principal = Directory(database).authenticate(token)
    finally:
        database.dispose()
    assert (principal.email, principal.role) == ("sub@a.example", Role.AUTHORISED_SUBSCRIBER)
    assert (
        sql.execute(text("SELECT token_sha256 FROM api_tokens")).scalar_one()
        == hashlib.sha256(token.encode()).hexdigest()
    )

    assert mpki("org", "suspend", "Acme Energy").returncode == 0
    run = mpki("audit", "export", check=True)
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [e["action"] for e in events] == [
        "organisation.created",
        "person.created",
        "token.created",
        "organisation.status_changed",
    ]
    assert token not in run.stdout
    assert PASSWORD not in run.stdout
    run = mpki("audit", "verify")
    assert run.returncode == 0, run.stderr
    assert "4 events" in run.stdout


def test_cli_bad_input_exits_1_with_one_line_and_writes_nothing(mpki, directory: Directory, sql: Connection) -> None:  # type: ignore[no-untyped-def]
    directory.create_organisation(OPERATOR, "Acme Energy", [EUI_A], ["supplier"])
    before = counts(sql)
    cases = [
        (("org", "create", "Beta", "--eui64", "90B3D51F3002000", "--roles", "supplier"), b"", "16 hex digits"),
        (("user", "create", "sub@a.example", "--role", "authorised-subscriber"), b"", "name the organisation"),
        (("user", "create", "x@provider.example", "--role", "ra-agent", "--password-stdin"), b"short\n", "at least 12"),
        (("token", "create", "nobody@a.example"), b"", "no person with email 'nobody@a.example'"),
    ]
    for args, stdin, fragment in cases:
        run = mpki(*args, input=stdin)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert fragment in one_error_line(run.stderr), args
        assert "mpki_" not in run.stdout
    assert counts(sql) == before
