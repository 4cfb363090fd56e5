"""In a real browser, the portal refuses what it must: a form posted without its CSRF token changes
nothing, a subscriber cannot open an RA page (nor sees one in the menu), and repeated wrong passwords
lock the account against even the right one."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import NewPage, Shot
from tests.csr_factory import device_csr, random_eui64
from tests.support.browser import PHONE, ServerWorld, browser_marks, sign_in

pytestmark = browser_marks


def _drop_csrf_inputs(page: Page) -> int:
    """Remove every hidden csrf_token input on the page, as a forged cross-site form would lack it."""
    removed: int = page.evaluate(
        """() => {
            const inputs = document.querySelectorAll('input[name="csrf_token"]');
            inputs.forEach((input) => input.remove());
            return inputs.length;
        }"""
    )
    return removed


def test_sign_out_without_its_token_is_refused_and_the_session_lives_on(
    page: Page, world: ServerWorld, shot: Shot
) -> None:
    sign_in(page, world.base, world.account("authorised-subscriber"))
    shot(page, "signed-in")
    assert _drop_csrf_inputs(page) >= 1
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign out").click()
    assert answer.value.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    shot(page, "refused")
    page.goto("/portal/")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()  # still signed in: nothing happened
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/portal/login"))
    expect(page.get_by_role("status")).to_contain_text("signed out")
    shot(page, "signed-out")


def test_request_form_without_its_token_is_refused_and_creates_nothing(
    page: Page, world: ServerWorld, shot: Shot
) -> None:
    eui = random_eui64()
    sign_in(page, world.base, world.account("authorised-subscriber"))
    page.goto("/portal/requests/new")
    page.locator("#profile").select_option("smki-device")
    page.locator("#csr").fill(device_csr(eui, pem=True).decode())
    shot(page, "filled")
    assert _drop_csrf_inputs(page) >= 1
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Submit request").click()
    assert answer.value.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    shot(page, "refused")
    assert not [r for r in world.requests() if str(r["eui64"] or "").lower() == eui.hex()]
    page.goto("/portal/requests/new")  # the same form with its token is taken: the refusal was the token's
    page.locator("#profile").select_option("smki-device")
    page.locator("#csr").fill(device_csr(eui, pem=True).decode())
    page.get_by_role("button", name="Submit request").click()
    expect(page.locator("#request-status")).to_have_text("issued")
    assert [r for r in world.requests() if str(r["eui64"] or "").lower() == eui.hex()]


def test_a_subscriber_cannot_open_an_ra_page_nor_see_one_in_the_menu(
    new_page: NewPage, world: ServerWorld, shot: Shot
) -> None:
    for device, page in (("laptop", new_page()), ("phone", new_page(PHONE, mobile=True))):
        sign_in(page, world.base, world.account("authorised-subscriber"))
        menu = page.get_by_role("navigation", name="Main")
        expect(menu.get_by_role("link", name="Requests")).to_have_count(1)  # the menu is there...
        expect(menu.get_by_role("link", name="RA queue")).to_have_count(0)  # ...without the RA's items
        expect(page.locator('a[href^="/portal/ra"]')).to_have_count(0)
        shot(page, f"{device}-home")
        answer = page.goto("/portal/ra/queue")
        assert answer is not None and answer.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
        shot(page, f"{device}-ra-queue-refused")


def _sign_in_answer(page: Page, email: str, password: str) -> int:
    """Fill and send the sign-in form; the HTTP status of the page it leads to, once that page has loaded."""
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Sign in").click()
    answer = navigation.value
    assert answer is not None
    return answer.status


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(
    page: Page, world: ServerWorld, shot: Shot
) -> None:
    auditor = world.account("auditor")  # nobody else in this module signs in as the auditor
    page.goto("/portal/login")
    for attempt in range(1, 6):
        assert _sign_in_answer(page, auditor.email, f"not the password, try {attempt}") == 401
        refusal = "locked" if attempt == 5 else "the email or password is wrong"
        expect(page.get_by_role("alert")).to_contain_text(refusal)
        if attempt == 1:
            shot(page, "first-failure")
    shot(page, "locked")
    assert _sign_in_answer(page, auditor.email, auditor.password) == 401
    expect(page.get_by_role("alert")).to_contain_text("locked")
    expect(page).to_have_url(re.compile(r"/portal/login"))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    page.goto("/portal/")
    expect(page).to_have_url(re.compile(r"/portal/login\?next="))  # no session was made
    shot(page, "right-password-refused")
