"""The administration portal: organisations, people, tokens, CAs, profiles and the audit log, through the
forms a browser sends; every change lands with its audit event, every bad input or refusal writes nothing."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import Connection, text

from mpki.domain import Role
from mpki.ra import OPERATOR
from tests.support.portal import PASSWORD, PortalClient, PortalWorld, email_of, login, portal

__all__ = ["portal"]

TABLES = ("organisations", "people", "api_tokens", "audit_events", "portal_sessions")
_TOKEN = re.compile(r'id="token-value"[^>]*value="([^"]+)"')
_ROW_SEQ = re.compile(r'<th scope="row" class="mono">(\d+)</th>')


def signed_in(portal: PortalWorld, label: str) -> PortalClient:
    """Signed in with the session's CSRF token in hand (after sign-in the client holds the login form's)."""
    browser = portal.sign_in(label)
    assert browser.get("/portal/").status_code == 200
    return browser


def counts(sql: Connection) -> dict[str, int]:
    return {table: sql.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() for table in TABLES}


def events(sql: Connection, action: str) -> list[str]:
    """The details of every event with this action, oldest first."""
    rows = sql.execute(text("SELECT details FROM audit_events WHERE action = :a ORDER BY seq"), {"a": action})
    return [row[0] for row in rows]


def person_id(sql: Connection, email: str) -> int:
    return int(sql.execute(text("SELECT id FROM people WHERE email = :e"), {"e": email}).scalar_one())


NEW_ORG = {"name": "Gamma Supply", "eui64s": "90B3D51F30030000, 90b3d51f30040000", "roles": ["supplier", "other"]}


# ----- organisations --------------------------------------------------------------------------------


def test_admin_creates_an_organisation_through_the_form(portal: PortalWorld, sql: Connection) -> None:
    admin = signed_in(portal, "admin")
    page = admin.get("/portal/admin/organisations")
    assert page.status_code == 200 and 'name="eui64s"' in page.text and 'value="network-operator"' in page.text
    created = admin.post("/portal/admin/organisations", NEW_ORG)
    assert created.status_code == 303 and created.headers["location"] == "/portal/admin/organisations"
    row = sql.execute(text("SELECT eui64s, roles, status FROM organisations WHERE name = 'Gamma Supply'")).one()
    assert tuple(row) == ("90B3D51F30030000,90B3D51F30040000", "02,7F", "active")
    assert len(events(sql, "organisation.created")) == 3  # A and B from the fixture, then this one
    listed = admin.get("/portal/admin/organisations")
    assert "Organisation Gamma Supply created." in listed.text  # the one-time notice
    assert "90B3D51F30040000" in listed.text and "supplier" in listed.text and "other" in listed.text
    assert "Organisation Gamma Supply created." not in admin.get("/portal/admin/organisations").text


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({**NEW_ORG, "name": "Acme Energy"}, "already exists"),
        ({**NEW_ORG, "eui64s": "90B3D51F30010000"}, "belongs to organisation Acme Energy"),
        ({**NEW_ORG, "eui64s": "90B3D51F3003"}, "must be 16 hex digits"),
        ({**NEW_ORG, "eui64s": " , "}, "at least one EUI-64"),
        ({**NEW_ORG, "eui64s": "90B3D51F30030000,90B3D51F30030000"}, "listed twice"),
        ({**NEW_ORG, "roles": []}, "at least one remote-party role"),
        ({**NEW_ORG, "roles": ["landlord"]}, "unknown remote-party role"),
        ({**NEW_ORG, "name": "<script>"}, "an organisation name is"),
        ({**NEW_ORG, "name": ""}, "an organisation name is"),
        ({**NEW_ORG, "name": "x" * 3000}, "too long"),
    ],
)
def test_bad_organisation_input_shows_the_form_again_and_writes_nothing(
    portal: PortalWorld, sql: Connection, form: dict[str, object], message: str
) -> None:
    admin = signed_in(portal, "admin")
    before = counts(sql)
    answer = admin.post("/portal/admin/organisations", form)
    assert answer.status_code == 400
    assert message in html.unescape(answer.text)
    assert 'role="alert"' in answer.text and 'name="eui64s"' in answer.text  # the form, again
    assert counts(sql) == before
    if form["name"] == "<script>":
        assert "<script>" not in answer.text  # escaped back into the field


def test_suspend_and_reactivate_an_organisation(portal: PortalWorld, sql: Connection) -> None:
    subscriber = signed_in(portal, "subscriber-B")
    manager = signed_in(portal, "manager")
    suspended = manager.post(
        "/portal/admin/organisations/status", {"organisation": "Beta Networks", "status": "suspended"}
    )
    assert suspended.status_code == 303
    assert (
        sql.execute(text("SELECT status FROM organisations WHERE name = 'Beta Networks'")).scalar_one() == "suspended"
    )
    assert subscriber.get("/portal/").status_code == 303  # its people's sessions no longer work
    assert (
        manager.post(
            "/portal/admin/organisations/status", {"organisation": "Beta Networks", "status": "active"}
        ).status_code
        == 303
    )
    assert [d for d in events(sql, "organisation.status_changed")] == [
        '{"organisation":"Beta Networks","status":"suspended"}',
        '{"organisation":"Beta Networks","status":"active"}',
    ]
    before = counts(sql)
    for bad in ({"organisation": "Beta Networks", "status": "deleted"}, {"organisation": "Nobody", "status": "active"}):
        answer = manager.post("/portal/admin/organisations/status", bad)
        assert answer.status_code == 400 and 'role="alert"' in answer.text
    assert counts(sql) == before


def test_approval_rules_are_listed_and_set_per_profile(portal: PortalWorld, sql: Connection) -> None:
    admin = signed_in(portal, "admin")
    answer = admin.post(
        "/portal/admin/organisations/approval-rule",
        {"organisation": "Acme Energy", "profile": "smki-org", "rule": "dual"},
    )
    assert answer.status_code == 303
    policy = sql.execute(text("SELECT approval_policy FROM organisations WHERE name = 'Acme Energy'")).scalar_one()
    assert policy == '{"smki-org": "dual"}'
    page = admin.get("/portal/admin/organisations").text
    assert '<span class="mono">smki-org</span>: dual</li>' in page
    assert '<span class="mono">smki-device</span>: auto <span class="muted">(default)</span>' in page
    before = counts(sql)
    for bad in (
        {"organisation": "Acme Energy", "profile": "smki-org", "rule": "never"},
        {"organisation": "Acme Energy", "profile": "smki-root", "rule": "auto"},
        {"organisation": "Nobody", "profile": "smki-org", "rule": "auto"},
    ):
        assert admin.post("/portal/admin/organisations/approval-rule", bad).status_code == 400
    assert counts(sql) == before


# ----- people -------------------------------------------------------------------------------------


def test_admin_creates_a_person_who_can_then_sign_in(portal: PortalWorld, sql: Connection) -> None:
    admin = signed_in(portal, "admin")
    form = {"email": "New.Officer@Example.org", "role": "org-ra-officer", "organisation": "Beta Networks"}
    created = admin.post("/portal/admin/people", form | {"password": "a long enough password"})
    assert created.status_code == 303
    new_id = person_id(sql, "new.officer@example.org")
    assert created.headers["location"] == f"/portal/admin/people/{new_id}"
    assert events(sql, "person.created")[-1] == (
        '{"email":"new.officer@example.org","organisation":"Beta Networks","role":"org-ra-officer"}'
    )
    listed = admin.get("/portal/admin/people?organisation=Beta+Networks").text
    assert "new.officer@example.org" in listed and email_of("subscriber-B") in listed
    assert email_of("subscriber-A") not in listed  # the filter by organisation
    browser = portal.anonymous()
    assert login(browser, "new.officer@example.org", "a long enough password").status_code == 303


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"email": email_of("agent"), "role": "ra-agent", "organisation": ""}, "already exists"),
        ({"email": "not-an-email", "role": "ra-agent", "organisation": ""}, "is not an email address"),
        ({"email": "x@example.org", "role": "emperor", "organisation": ""}, "choose a role"),
        ({"email": "x@example.org", "role": "authorised-subscriber", "organisation": ""}, "name the organisation"),
        ({"email": "x@example.org", "role": "auditor", "organisation": "Acme Energy"}, "works for the provider"),
        ({"email": "x@example.org", "role": "org-ra-officer", "organisation": "Nobody Ltd"}, "no organisation named"),
        ({"email": "x@example.org", "role": "ra-agent", "organisation": "", "password": "short"}, "at least 12"),
    ],
)
def test_bad_person_input_shows_the_form_again_and_writes_nothing(
    portal: PortalWorld, sql: Connection, form: dict[str, str], message: str
) -> None:
    admin = signed_in(portal, "admin")
    before = counts(sql)
    answer = admin.post("/portal/admin/people", {"password": "a long enough password"} | form)
    assert answer.status_code == 400
    assert message in html.unescape(answer.text)
    assert 'name="email"' in answer.text and f'value="{form["email"]}"' in answer.text  # kept in the form
    assert counts(sql) == before


def test_ra_manager_cannot_create_a_service_admin(portal: PortalWorld, sql: Connection) -> None:
    manager = signed_in(portal, "manager")
    page = manager.get("/portal/admin/people").text
    assert 'value="service-admin"' not in page and 'value="ra-agent"' in page  # not even offered
    before = counts(sql)
    answer = manager.post(
        "/portal/admin/people",
        {
            "email": "boss@example.org",
            "role": "service-admin",
            "organisation": "",
            "password": "a long enough password",
        },
    )
    assert answer.status_code == 403 and "<h1>Not allowed</h1>" in answer.text
    assert counts(sql) == before
    # ...nor take one over: no password, token, revocation or disabling for people above the manager's grant
    portal.directory.create_token(OPERATOR, email_of("admin"))
    admins_token = int(sql.execute(text("SELECT id FROM api_tokens")).scalar_one())
    before = counts(sql)
    assert manager.post(f"/portal/admin/tokens/{admins_token}/revoke").status_code == 403
    admin_id = person_id(sql, email_of("admin"))
    assert (
        manager.post(
            f"/portal/admin/people/{admin_id}/password", {"password": "x" * 20, "confirm": "x" * 20}
        ).status_code
        == 403
    )
    assert manager.post(f"/portal/admin/people/{admin_id}/tokens").status_code == 403
    assert manager.post(f"/portal/admin/people/{admin_id}/status", {"status": "disabled"}).status_code == 403
    assert counts(sql) == before
    # what the manager may give, it gives
    made = manager.post(
        "/portal/admin/people",
        {"email": "agent2@example.org", "role": "ra-agent", "organisation": "", "password": "a long enough password"},
    )
    assert made.status_code == 303


def test_setting_a_password_ends_the_sessions_and_the_new_one_works(portal: PortalWorld, sql: Connection) -> None:
    agent = signed_in(portal, "agent")
    admin = signed_in(portal, "admin")
    target = person_id(sql, email_of("agent"))
    page = f"/portal/admin/people/{target}"
    before = counts(sql)
    for bad, message in (
        ({"password": "short", "confirm": "short"}, "at least 12 characters"),
        ({"password": "a long enough password", "confirm": "another long password"}, "the two passwords differ"),
    ):
        answer = admin.post(f"{page}/password", bad)
        assert answer.status_code == 400 and message in answer.text
    assert counts(sql) == before
    assert (
        admin.post(
            f"{page}/password", {"password": "a brand new password", "confirm": "a brand new password"}
        ).status_code
        == 303
    )
    assert agent.get("/portal/").status_code == 303  # signed out everywhere
    assert login(portal.anonymous(), email_of("agent"), PASSWORD).status_code == 401
    assert login(portal.anonymous(), email_of("agent"), "a brand new password").status_code == 303
    assert len(events(sql, "person.password_set")) == 1


def test_disabling_a_person_ends_their_sessions_and_tokens_until_enabled(portal: PortalWorld, sql: Connection) -> None:
    token = portal.directory.create_token(OPERATOR, email_of("subscriber-A"))
    subscriber = signed_in(portal, "subscriber-A")
    admin = signed_in(portal, "admin")
    target = person_id(sql, email_of("subscriber-A"))
    api = portal.anonymous().client
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/organisations", headers=bearer).status_code == 200
    assert admin.post(f"/portal/admin/people/{target}/status", {"status": "disabled"}).status_code == 303
    assert subscriber.get("/portal/").status_code == 303
    assert api.get("/api/v1/organisations", headers=bearer).status_code == 401
    refused = login(portal.anonymous(), email_of("subscriber-A"), PASSWORD)
    assert "mpki_session=" not in refused.headers.get("set-cookie", "")  # no session for a disabled person
    assert '"sessions_ended":1' in events(sql, "person.disabled")[0]
    before = counts(sql)
    again = admin.post(f"/portal/admin/people/{target}/status", {"status": "disabled"})
    assert again.status_code == 400 and "already disabled" in again.text
    assert admin.post(f"/portal/admin/people/{target}/status", {"status": "gone"}).status_code == 400
    me = person_id(sql, email_of("admin"))
    assert admin.post(f"/portal/admin/people/{me}/status", {"status": "disabled"}).status_code == 400
    assert counts(sql) == before
    assert admin.post(f"/portal/admin/people/{target}/status", {"status": "active"}).status_code == 303
    assert api.get("/api/v1/organisations", headers=bearer).status_code == 200
    assert len(events(sql, "person.enabled")) == 1


# ----- API tokens ---------------------------------------------------------------------------------


def test_a_minted_token_is_shown_once_and_works_against_the_api(portal: PortalWorld, sql: Connection) -> None:
    admin = signed_in(portal, "admin")
    target = person_id(sql, email_of("officer-A"))
    minted = admin.post(f"/portal/admin/people/{target}/tokens")
    assert minted.status_code == 200 and "shown only this once" in minted.text
    assert minted.headers["cache-control"] == "no-store"
    token = _TOKEN.search(minted.text)
    assert token is not None
    value = token.group(1)
    api = portal.anonymous().client
    listed = api.get("/api/v1/organisations", headers={"Authorization": f"Bearer {value}"})
    assert listed.status_code == 200 and [o["name"] for o in listed.json()["items"]] == ["Acme Energy"]
    assert len(events(sql, "token.created")) == 1
    # Only the prefix is ever shown again.
    for path in (f"/portal/admin/people/{target}", "/portal/admin/tokens"):
        page = admin.get(path).text
        assert value[:12] in page and value not in page
    assert admin.get("/portal/admin/audit").text.count(value) == 0


def test_revoking_a_token_stops_it(portal: PortalWorld, sql: Connection) -> None:
    token = portal.directory.create_token(OPERATOR, email_of("subscriber-B"))
    token_id = int(sql.execute(text("SELECT id FROM api_tokens")).scalar_one())
    auditor = signed_in(portal, "auditor")
    listing = auditor.get("/portal/admin/tokens")
    assert listing.status_code == 200 and token[:12] in listing.text
    assert 'action="/portal/admin/tokens/' not in listing.text  # no revoke button for an auditor
    assert auditor.post(f"/portal/admin/tokens/{token_id}/revoke").status_code == 403
    manager = signed_in(portal, "manager")
    revoked = manager.post(f"/portal/admin/tokens/{token_id}/revoke")
    assert revoked.status_code == 303 and revoked.headers["location"] == "/portal/admin/tokens"
    api = portal.anonymous().client
    assert api.get("/api/v1/organisations", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert events(sql, "token.revoked") == [f'{{"email":"{email_of("subscriber-B")}","prefix":"{token[:12]}"}}']
    before = counts(sql)
    twice = manager.post(f"/portal/admin/tokens/{token_id}/revoke")
    assert twice.status_code == 400 and "already revoked" in twice.text
    assert manager.post("/portal/admin/tokens/999999/revoke").status_code == 404
    assert counts(sql) == before


# ----- who may open what ---------------------------------------------------------------------------

ADMIN_PAGES = (
    "/portal/admin/",
    "/portal/admin/organisations",
    "/portal/admin/people",
    "/portal/admin/tokens",
    "/portal/admin/cas",
    "/portal/admin/profiles",
    "/portal/admin/audit",
    "/portal/admin/audit/verification",
)
CREATE_POSTS = (
    ("/portal/admin/organisations", NEW_ORG),
    ("/portal/admin/people", {"email": "z@example.org", "role": "auditor", "organisation": "", "password": "p" * 14}),
    ("/portal/admin/organisations/status", {"organisation": "Acme Energy", "status": "suspended"}),
    (
        "/portal/admin/organisations/approval-rule",
        {"organisation": "Acme Energy", "profile": "smki-org", "rule": "auto"},
    ),
)


@pytest.mark.parametrize("label", ["subscriber-A", "officer-A", "agent"])
def test_people_outside_administration_get_403_on_every_admin_page(
    portal: PortalWorld, sql: Connection, label: str
) -> None:
    browser = signed_in(portal, label)
    assert "/portal/admin" not in browser.get("/portal/").text  # not in their menu
    for path in ADMIN_PAGES:
        answer = browser.get(path)
        assert answer.status_code == 403, path
        assert "<h1>Not allowed</h1>" in answer.text
    before = counts(sql)
    for path, form in CREATE_POSTS:
        assert browser.post(path, form).status_code == 403, path
    target = person_id(sql, email_of("subscriber-B"))
    assert browser.post(f"/portal/admin/people/{target}/tokens").status_code == 403
    assert browser.get("/portal/admin/audit?from=not-a-date").status_code == 403  # refused before the filter is read
    assert counts(sql) == before


def test_auditor_reads_everything_and_changes_nothing(portal: PortalWorld, sql: Connection) -> None:
    auditor = signed_in(portal, "auditor")
    home = auditor.get("/portal/").text
    assert 'href="/portal/admin/audit"' in home
    for path in ADMIN_PAGES:
        assert auditor.get(path).status_code == 200, path
    lists = auditor.get("/portal/admin/organisations").text
    assert "Acme Energy" in lists and 'action="/portal/admin/organisations"' not in lists  # no create form
    people = auditor.get("/portal/admin/people").text
    assert email_of("officer-A") in people and 'name="password"' not in people
    before = counts(sql)
    for path, form in CREATE_POSTS:
        answer = auditor.post(path, form)
        assert answer.status_code == 403 and "<h1>Not allowed</h1>" in answer.text, path
    target = person_id(sql, email_of("subscriber-B"))
    for path in (f"/portal/admin/people/{target}/tokens", f"/portal/admin/people/{target}/status"):
        assert auditor.post(path, {"status": "disabled"}).status_code == 403
    assert (
        auditor.post(f"/portal/admin/people/{target}/password", {"password": "x" * 20, "confirm": "x" * 20}).status_code
        == 403
    )
    assert counts(sql) == before


def test_ra_manager_sees_the_directory_but_not_the_audit_log_or_cas(portal: PortalWorld) -> None:
    manager = signed_in(portal, "manager")
    overview = manager.get("/portal/admin/")
    assert overview.status_code == 200 and "/portal/admin/audit" not in overview.text
    assert manager.get("/portal/admin/audit").status_code == 403
    assert manager.get("/portal/admin/audit/verification").status_code == 403
    assert manager.get("/portal/admin/cas").status_code == 403
    assert manager.get("/portal/admin/profiles").status_code == 200


def test_post_without_the_csrf_token_is_refused(portal: PortalWorld, sql: Connection) -> None:
    admin = signed_in(portal, "admin")
    before = counts(sql)
    for path, form in CREATE_POSTS:
        refused = admin.post(path, form, csrf=False)
        assert refused.status_code == 403 and "security token" in refused.text, path
        assert admin.post(path, form | {"csrf_token": "forged" * 7}).status_code == 403
    target = person_id(sql, email_of("agent"))
    assert admin.post(f"/portal/admin/people/{target}/tokens", csrf=False).status_code == 403
    assert counts(sql) == before


# ----- CAs and profiles ---------------------------------------------------------------------------


def test_cas_and_profiles_are_listed_without_key_material(portal: PortalWorld) -> None:
    admin = signed_in(portal, "admin")
    page = admin.get("/portal/admin/cas").text
    for ca in portal.authority.list_cas():
        assert ca.name in page and html.escape(ca.subject) in page and ca.key_id in page
    assert "PRIVATE KEY" not in page
    profiles = admin.get("/portal/admin/profiles").text
    assert "smki-device" in profiles and "no expiry" in profiles and "subjectAltName (critical)" in profiles
    assert "basicConstraints (critical) pathLen 0" in profiles and "serverAuth" in profiles


def test_unknown_people_and_organisations_are_not_found(portal: PortalWorld) -> None:
    admin = signed_in(portal, "admin")
    assert admin.get("/portal/admin/people/999999").status_code == 404
    assert admin.get("/portal/admin/people?organisation=Nobody").status_code == 404
    assert admin.post("/portal/admin/people/999999/status", {"status": "disabled"}).status_code == 404
    assert admin.get("/portal/admin/people/0").status_code == 422  # not even an id


def test_overview_counts(portal: PortalWorld) -> None:
    portal.directory.create_token(OPERATOR, email_of("agent"))
    page = signed_in(portal, "admin").get("/portal/admin/").text
    compact = re.sub(r"\s+", " ", page)
    assert '<span class="figure">2</span> <span class="label">Organisations</span>' in compact
    assert (
        f'<span class="figure">{len(portal.directory.people(OPERATOR))}</span> <span class="label">People</span>'
        in compact
    )
    assert '<span class="figure">1</span> <span class="label">Live API tokens</span>' in compact


# ----- the audit log ------------------------------------------------------------------------------


def _seqs(page: str) -> list[int]:
    return [int(s) for s in _ROW_SEQ.findall(page)]


def _expected(sql: Connection, where: str, params: dict[str, object]) -> list[int]:
    query = f"SELECT seq FROM audit_events WHERE {where} ORDER BY seq DESC"
    return [int(row[0]) for row in sql.execute(text(query), params)]


def test_audit_log_is_newest_first_and_filters_return_exactly_the_matching_events(
    portal: PortalWorld, sql: Connection
) -> None:
    signed_in(portal, "subscriber-A")
    signed_in(portal, "agent")
    login(portal.anonymous(), email_of("agent"), "wrong password here")
    auditor = signed_in(portal, "auditor")
    everything = _seqs(auditor.get("/portal/admin/audit").text)
    assert everything == _expected(sql, "1 = 1", {})[:50]
    portal_events = _seqs(auditor.get("/portal/admin/audit?action=portal.").text)
    assert portal_events == _expected(sql, "action LIKE 'portal.%'", {}) and len(portal_events) == 4
    failed = _seqs(auditor.get("/portal/admin/audit?action=PORTAL.login_f").text)
    assert failed == _expected(sql, "action = 'portal.login_failed'", {}) and len(failed) == 1
    by_actor = _seqs(auditor.get("/portal/admin/audit", params={"actor": "AGENT@example"}).text)
    assert by_actor == _expected(sql, "actor LIKE '%agent@example.org%'", {}) and len(by_actor) == 2
    assert _seqs(auditor.get("/portal/admin/audit?action=portal.&actor=subscriber-a").text) == _expected(
        sql, "action = 'portal.login' AND actor LIKE '%subscriber-a@%'", {}
    )
    # LIKE's wildcards are plain characters in a filter
    assert _seqs(auditor.get("/portal/admin/audit?action=%25").text) == []
    assert _seqs(auditor.get("/portal/admin/audit?actor=_").text) == []


def test_audit_filters_by_serial_and_by_date(portal: PortalWorld, sql: Connection) -> None:
    serial = (
        sql.execute(text("SELECT serial FROM audit_events WHERE serial IS NOT NULL ORDER BY seq")).scalars().first()
    )
    assert serial is not None
    auditor = signed_in(portal, "auditor")
    shown = serial.upper() if len(serial) % 2 else ":".join(re.findall("..", serial.upper()))
    by_serial = _seqs(auditor.get("/portal/admin/audit", params={"serial": shown}).text)
    assert by_serial == _expected(sql, "serial = :s", {"s": serial}) and by_serial
    today = sql.execute(text("SELECT MAX(at) FROM audit_events")).scalar_one()
    day = str(today)[:10]
    all_today = _seqs(auditor.get("/portal/admin/audit", params={"from": day, "to": day, "action": "person."}).text)
    assert all_today == _expected(sql, "action LIKE 'person.%'", {}) and all_today
    assert _seqs(auditor.get("/portal/admin/audit", params={"to": "2000-01-01"}).text) == []
    assert _seqs(auditor.get("/portal/admin/audit", params={"from": "2999-01-01"}).text) == []
    for bad, message in (
        ({"from": "28/11/2026"}, "is not a date"),
        ({"from": "2026-11-28", "to": "2026-11-01"}, "before the from date"),
        ({"serial": "xyz"}, "is not hexadecimal"),
    ):
        answer = auditor.get("/portal/admin/audit", params=bad)
        assert answer.status_code == 400 and message in html.unescape(answer.text)


def test_audit_log_pages_by_keyset(portal: PortalWorld, sql: Connection) -> None:
    for n in range(60):
        portal.directory.create_person(OPERATOR, f"filler{n}@example.org", Role.AUDITOR, None)
    auditor = signed_in(portal, "auditor")
    first = auditor.get("/portal/admin/audit?action=person.created")
    newest = _expected(sql, "action = 'person.created'", {})
    assert _seqs(first.text) == newest[:50]
    older = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert older is not None
    second = auditor.get(html.unescape(older.group(1)))
    assert _seqs(second.text) == newest[50:]
    assert 'rel="next"' not in second.text


def test_verification_reports_the_verified_head_or_the_first_broken_link(portal: PortalWorld, sql: Connection) -> None:
    auditor = signed_in(portal, "auditor")
    page = auditor.get("/portal/admin/audit").text
    assert 'hx-get="/portal/admin/audit/verification"' in page and "Chain verified" not in page  # on request only
    count, head = sql.execute(text("SELECT seq, hash FROM audit_head")).one()
    fragment = auditor.get("/portal/admin/audit/verification", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Chain verified:" in fragment.text and f"{count} events" in fragment.text and head in fragment.text
    whole = auditor.get("/portal/admin/audit/verification")  # without JavaScript: a whole page
    assert "<html" in whole.text and "Chain verified:" in whole.text
    sql.execute(text('UPDATE audit_events SET details = \'{"organisation":"Forged"}\' WHERE seq = 3'))
    broken = auditor.get("/portal/admin/audit/verification", headers={"HX-Request": "true"})
    assert 'role="alert"' in broken.text and "Chain verified" not in broken.text
    assert "Chain broken at event 3:" in broken.text and "event 3 was modified" in broken.text
