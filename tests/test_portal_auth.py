"""Portal sign-in: sessions, CSRF on every POST, lockout, sign-out, and that each is audited."""

from __future__ import annotations

from sqlalchemy import Connection, text

from tests.support.portal import PASSWORD, PortalWorld, email_of, login, portal

__all__ = ["portal"]


def _events(sql: Connection, action: str) -> int:
    return sql.execute(text("SELECT COUNT(*) FROM audit_events WHERE action = :a"), {"a": action}).scalar_one()


def test_pages_need_a_session(portal: PortalWorld) -> None:
    browser = portal.anonymous()
    response = browser.get("/portal/?tab=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/portal/login?next=/portal/%3Ftab%3D1"


def test_sign_in_sets_a_strict_http_only_cookie_and_lands_home(portal: PortalWorld, sql: Connection) -> None:
    browser = portal.anonymous()
    response = login(browser, email_of("subscriber-A"), PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/portal/"
    cookie = response.headers["set-cookie"]
    assert "mpki_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    home = browser.get("/portal/")
    assert home.status_code == 200 and email_of("subscriber-A") in home.text
    assert "default-src 'self'" in home.headers["content-security-policy"]
    assert _events(sql, "portal.login") == 1


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(portal: PortalWorld, sql: Connection) -> None:
    browser = portal.anonymous()
    wrong = login(browser, email_of("agent"), "not the password at all")
    unknown = login(browser, "nobody@example.org", "not the password at all")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "the email or password is wrong" in response.text
        assert "mpki_session=" not in response.headers.get("set-cookie", "")
    assert _events(sql, "portal.login_failed") == 2


def test_repeated_failures_lock_the_account_even_for_the_right_password(portal: PortalWorld, sql: Connection) -> None:
    browser = portal.anonymous()
    for _ in range(5):
        assert login(browser, email_of("agent"), "wrong password, again").status_code == 401
    locked = login(browser, email_of("agent"), PASSWORD)
    assert locked.status_code == 401 and "locked" in locked.text
    assert _events(sql, "portal.locked") == 1
    assert _events(sql, "portal.login_refused_locked") == 1
    assert _events(sql, "portal.login") == 0


def test_login_form_without_its_token_is_refused(portal: PortalWorld, sql: Connection) -> None:
    browser = portal.anonymous()
    response = browser.client.post(
        "/portal/login", data={"email": email_of("agent"), "password": PASSWORD, "csrf_token": "forged"}
    )
    assert response.status_code == 403
    assert _events(sql, "portal.login") == 0


def test_post_without_csrf_token_is_refused_and_sign_out_ends_the_session(portal: PortalWorld, sql: Connection) -> None:
    browser = portal.sign_in("subscriber-A")
    refused = browser.post("/portal/logout", csrf=False)
    assert refused.status_code == 403 and "security token" in refused.text
    assert browser.get("/portal/").status_code == 200  # still signed in: nothing happened
    wrong = browser.post("/portal/logout", {"csrf_token": "x" * 43})
    assert wrong.status_code == 403
    out = browser.post("/portal/logout")
    assert out.status_code == 303
    assert _events(sql, "portal.logout") == 1
    assert browser.get("/portal/").status_code == 303  # the old cookie no longer works


def test_next_is_only_followed_inside_the_portal(portal: PortalWorld) -> None:
    browser = portal.anonymous()
    response = login(browser, email_of("agent"), PASSWORD, next_path="//evil.example/portal")
    assert response.headers["location"] == "/portal/"


def test_a_disabled_person_is_refused_with_a_reason_and_audited(portal: PortalWorld, sql: Connection) -> None:
    sql.execute(text("UPDATE people SET status = 'disabled' WHERE email = :e"), {"e": email_of("agent")})
    sql.commit()
    browser = portal.anonymous()
    response = login(browser, email_of("agent"), PASSWORD)
    assert response.status_code == 401 and "disabled" in response.text
    assert "mpki_session=" not in response.headers.get("set-cookie", "")
    assert _events(sql, "portal.login_refused_disabled") == 1
    assert _events(sql, "portal.login") == 0


def test_a_nul_character_in_a_form_or_url_is_refused_and_changes_nothing(portal: PortalWorld, sql: Connection) -> None:
    browser = portal.sign_in("subscriber-A")
    refused = browser.post("/portal/logout", {"note": "a\x00b"})
    assert refused.status_code == 400 and "NUL" in refused.text
    assert _events(sql, "portal.logout") == 0
    assert browser.get("/portal/").status_code == 200  # still signed in
    url = browser.get("/portal/?q=%00")
    assert url.status_code == 400 and "NUL" in url.text
