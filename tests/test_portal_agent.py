"""The RA agent portal: the queue, reviewing and deciding a held request (duplicate holds show the
conflicting certificate, dual control needs two people), counts per organisation and batch timelines;
who may open it, and that a refused decision writes nothing."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import Connection, text

from mpki.domain import Forbidden, RevocationReason
from mpki.ra import OPERATOR
from mpki.ra.review import ReviewDesk
from mpki.ra.views import RequestView
from tests.csr_factory import device_csr, org_csr, random_eui64
from tests.support.portal import (
    EUI_A,
    EUI_B,
    ORG,
    PEOPLE,
    PortalClient,
    PortalWorld,
    email_of,
    portal,
)

__all__ = ["portal"]

RA_PAGES = ("/portal/ra/queue", "/portal/ra/organisations", "/portal/ra/batches")


# ----- helpers -------------------------------------------------------------------------------------


def _batch(world: PortalWorld, org: str, profile: str, csrs: list[bytes]) -> list[RequestView]:
    view = world.registration.submit_batch(OPERATOR, profile, csrs, ORG[org])
    world.registration.process_batch(view.id)
    return world.registration.batch(OPERATOR, view.id)[1]


def _held_org_request(world: PortalWorld, org: str) -> RequestView:
    """Organisation certificates wait for an RA agent."""
    eui = bytes.fromhex(EUI_A if org == "A" else EUI_B)
    [item] = _batch(world, org, "smki-org", [org_csr(eui, "02" if org == "A" else "03")])
    assert item.status == "pending", item
    return item


def _issued_device(world: PortalWorld, org: str, eui: bytes, usage: str = "digitalSignature") -> RequestView:
    [item] = _batch(world, org, "smki-device", [device_csr(eui, usage)])
    assert item.status == "issued" and item.serial, item
    return item


def _signed_in(world: PortalWorld, label: str) -> PortalClient:
    """Signed in, with the session's CSRF token read from a page (the sign-in form's token is another)."""
    browser = world.sign_in(label)
    assert browser.get("/portal/").status_code == 200
    return browser


def _count(sql: Connection, query: str, **params: object) -> int:
    return int(sql.execute(text(query), params).scalar_one())


def _events(sql: Connection, action: str) -> int:
    return _count(sql, "SELECT COUNT(*) FROM audit_events WHERE action = :a", a=action)


def _status(world: PortalWorld, request_id: int) -> str:
    return world.registration.request(OPERATOR, request_id).status


def _queue_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'href="/portal/ra/requests/(\d+)"[^>]*>Review</a>', html)]


def _row(html: str, header: str) -> list[str]:
    """The cells (text only) of the table row whose row header is `header`."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        cells = [
            unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        if cells and cells[0] == header:
            return cells
    raise AssertionError(f"no row {header!r}")


# ----- the queue -----------------------------------------------------------------------------------


def test_a_held_organisation_request_is_in_the_queue_with_a_review_link(portal: PortalWorld) -> None:
    held = _held_org_request(portal, "A")
    agent = _signed_in(portal, "agent")
    page = agent.get("/portal/ra/queue")
    assert page.status_code == 200
    assert _queue_ids(page.text) == [held.id]
    row = _row(page.text, str(held.id))
    assert row[1] == ORG["A"] and row[2] == "smki-org" and row[3].startswith(EUI_A)
    assert "awaiting RA agent approval" in row[6]
    assert '<select id="organisation" name="organisation">' in page.text
    assert re.search(r'<a href="/portal/ra/queue" aria-current="page">', page.text)


def test_queue_filters_by_organisation_oldest_first(portal: PortalWorld) -> None:
    first_a = _held_org_request(portal, "A")
    only_b = _held_org_request(portal, "B")
    second_a = _held_org_request(portal, "A")
    agent = _signed_in(portal, "agent")
    assert _queue_ids(agent.get("/portal/ra/queue").text) == [first_a.id, only_b.id, second_a.id]
    filtered = agent.get("/portal/ra/queue", params={"organisation": portal.org_ids["A"]})
    assert _queue_ids(filtered.text) == [first_a.id, second_a.id]
    assert f'<option value="{portal.org_ids["A"]}" selected>' in filtered.text
    everything = agent.get("/portal/ra/queue", params={"organisation": ""})
    assert _queue_ids(everything.text) == [first_a.id, only_b.id, second_a.id]
    cards = re.findall(r'<div class="figure">([^<]+)</div>', everything.text)
    assert cards[0] == "3" and cards[1] == "0"


def test_htmx_refresh_gets_only_the_results(portal: PortalWorld) -> None:
    held = _held_org_request(portal, "B")
    agent = _signed_in(portal, "agent")
    response = agent.get(
        "/portal/ra/queue",
        params={"organisation": portal.org_ids["B"]},
        headers={"HX-Request": "true", "HX-Target": "queue-results"},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="queue-results">') and "<html" not in response.text
    assert _queue_ids(response.text) == [held.id]


def test_queue_pages_by_keyset_oldest_first(portal: PortalWorld) -> None:
    held = [_held_org_request(portal, org).id for org in ("A", "B", "A", "B", "A")]
    desk = ReviewDesk(portal.authority.database)
    agent = portal.directory.authenticate(portal.directory.create_token(OPERATOR, email_of("agent")))
    seen: list[int] = []
    after = 0
    while True:
        page = desk.queue(agent, after_id=after, limit=2)
        seen += [line.id for line in page.lines]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == held
    assert desk.queue(agent, portal.org_ids["B"], limit=2).held == 2


def test_bad_queue_filters_are_refused_with_a_page(portal: PortalWorld) -> None:
    agent = _signed_in(portal, "agent")
    bad = agent.get("/portal/ra/queue", params={"organisation": "Acme"})
    assert bad.status_code == 400 and "choose an organisation from the list" in bad.text
    unknown = agent.get("/portal/ra/queue", params={"organisation": "999999"})
    assert unknown.status_code == 404
    cursor = agent.get("/portal/ra/queue", params={"after": "-1"})
    assert cursor.status_code == 422
    assert agent.get("/portal/ra/requests/999999").status_code == 404
    assert agent.get("/portal/ra/batches", params={"organisation": "1;2"}).status_code == 400
    with pytest.raises(Exception, match="a page holds"):
        ReviewDesk(portal.authority.database).queue(OPERATOR, limit=0)


# ----- deciding ------------------------------------------------------------------------------------


def test_agent_approves_a_held_request_it_is_issued_audited_and_flashed(portal: PortalWorld, sql: Connection) -> None:
    held = _held_org_request(portal, "A")
    agent = _signed_in(portal, "agent")
    review = agent.get(f"/portal/ra/requests/{held.id}")
    assert review.status_code == 200
    assert '<textarea id="reason" name="reason"' in review.text and '<label for="reason">Reason</label>' in review.text
    assert ">Approve</button>" in review.text and ">Reject</button>" in review.text
    assert f'formaction="/portal/ra/requests/{held.id}/reject"' in review.text
    assert "OU=02" in review.text  # the subject, read from the CSR
    response = agent.post(f"/portal/ra/requests/{held.id}/approve", {"reason": "identity checked by phone"})
    assert response.status_code == 303 and response.headers["location"] == "/portal/ra/queue"
    view = portal.registration.request(OPERATOR, held.id)
    assert view.status == "issued" and view.decided_by == f"ra-agent:{email_of('agent')}"
    event = sql.execute(
        text("SELECT actor, details FROM audit_events WHERE action = 'request.approved' AND request_id = :r"),
        {"r": held.id},
    ).one()
    assert event.actor == f"ra-agent:{email_of('agent')}" and "identity checked by phone" in event.details
    queue = agent.get("/portal/ra/queue")
    assert f"Request {held.id} approved" in queue.text and view.serial in queue.text
    assert _queue_ids(queue.text) == []
    assert f"Request {held.id} approved" not in agent.get("/portal/ra/queue").text  # shown once


def test_reject_needs_a_reason_and_a_refusal_writes_nothing(portal: PortalWorld, sql: Connection) -> None:
    held = _held_org_request(portal, "B")
    agent = _signed_in(portal, "agent")
    before = _count(sql, "SELECT COUNT(*) FROM audit_events")
    for reason in ("", "   "):
        refused = agent.post(f"/portal/ra/requests/{held.id}/reject", {"reason": reason})
        assert refused.status_code == 400
        assert "a rejection needs a reason" in refused.text and 'role="alert"' in refused.text
        assert '<textarea id="reason" name="reason"' in refused.text  # the review page again
    too_long = agent.post(f"/portal/ra/requests/{held.id}/reject", {"reason": "x" * 1001})
    assert too_long.status_code == 400 and "at most 1000 characters" in too_long.text
    assert _count(sql, "SELECT COUNT(*) FROM audit_events") == before
    assert _status(portal, held.id) == "pending"
    done = agent.post(f"/portal/ra/requests/{held.id}/reject", {"reason": "wrong remote-party role"})
    assert done.status_code == 303
    assert f"Request {held.id} rejected" in agent.get("/portal/ra/queue").text
    view = portal.registration.request(OPERATOR, held.id)
    assert view.status == "rejected" and view.reason == "wrong remote-party role"
    assert _events(sql, "request.rejected") == 1
    again = agent.post(f"/portal/ra/requests/{held.id}/approve", {"reason": ""})
    assert again.status_code == 400 and "not pending review" in again.text
    assert "Approve</button>" not in again.text  # a decided request shows no form
    assert _status(portal, held.id) == "rejected" and _events(sql, "request.approved") == 0


def test_duplicate_device_hold_shows_the_conflicting_certificate(portal: PortalWorld) -> None:
    eui = random_eui64()
    first = _issued_device(portal, "A", eui, "keyAgreement")
    other_usage = _issued_device(portal, "A", eui, "digitalSignature")
    [held] = _batch(portal, "A", "smki-device", [device_csr(eui, "keyAgreement")])
    assert held.status == "pending" and "duplicate" in (held.reason or "")
    agent = _signed_in(portal, "agent")
    assert _queue_ids(agent.get("/portal/ra/queue").text) == [held.id]
    page = agent.get(f"/portal/ra/requests/{held.id}").text
    assert '<h2 id="conflict-heading">Conflicting certificate</h2>' in page
    assert f'<a href="/repository?serial={first.serial}">{first.serial}</a>' in page
    assert other_usage.serial is not None and other_usage.serial not in page  # another key usage is no conflict
    assert eui.hex().upper() in page


def test_a_request_without_a_duplicate_shows_no_conflict_section(portal: PortalWorld) -> None:
    held = _held_org_request(portal, "A")
    page = _signed_in(portal, "manager").get(f"/portal/ra/requests/{held.id}").text
    assert "Conflicting certificate" not in page


def test_dual_control_needs_a_second_different_approver(portal: PortalWorld, sql: Connection) -> None:
    portal.directory.set_approval_rule(OPERATOR, ORG["A"], "smki-org", "dual")
    held = _held_org_request(portal, "A")
    agent, manager = _signed_in(portal, "agent"), _signed_in(portal, "manager")
    first = agent.post(f"/portal/ra/requests/{held.id}/approve")
    assert first.status_code == 303
    queue = agent.get("/portal/ra/queue").text
    assert f"Request {held.id}: first approval recorded; a second agent must approve" in queue
    assert _status(portal, held.id) == "pending" and _events(sql, "request.first_approval") == 1
    cards = re.findall(r'<div class="figure">([^<]+)</div>', queue)
    assert cards[:2] == ["1", "1"]
    twice = agent.post(f"/portal/ra/requests/{held.id}/approve")
    assert twice.status_code == 403 and "second, different approver" in twice.text
    assert "You gave the first approval" in twice.text
    assert _status(portal, held.id) == "pending" and _events(sql, "request.approved") == 0
    review = manager.get(f"/portal/ra/requests/{held.id}").text
    assert "First approval" in review and f"ra-agent:{email_of('agent')}" in review
    second = manager.post(f"/portal/ra/requests/{held.id}/approve")
    assert second.status_code == 303
    assert _status(portal, held.id) == "issued" and _events(sql, "request.approved") == 1


# ----- who may open it -----------------------------------------------------------------------------


def test_officer_sees_only_its_own_organisation(portal: PortalWorld, sql: Connection) -> None:
    mine, theirs = _held_org_request(portal, "A"), _held_org_request(portal, "B")
    officer = _signed_in(portal, "officer-A")
    queue = officer.get("/portal/ra/queue")
    assert queue.status_code == 200 and _queue_ids(queue.text) == [mine.id]
    assert ORG["B"] not in queue.text
    assert officer.get(f"/portal/ra/requests/{mine.id}").status_code == 200
    refused = officer.get(f"/portal/ra/requests/{theirs.id}")
    assert refused.status_code == 403 and "<h1>Not allowed</h1>" in refused.text
    assert officer.get("/portal/ra/queue", params={"organisation": portal.org_ids["B"]}).status_code == 403
    assert officer.get("/portal/ra/batches", params={"organisation": portal.org_ids["B"]}).status_code == 403
    before = _count(sql, "SELECT COUNT(*) FROM audit_events")
    for verb in ("approve", "reject"):
        response = officer.post(f"/portal/ra/requests/{theirs.id}/{verb}", {"reason": "not mine"})
        assert response.status_code == 403 and "<h1>Not allowed</h1>" in response.text
    assert _status(portal, theirs.id) == "pending"
    assert _count(sql, "SELECT COUNT(*) FROM audit_events") == before
    tallies = officer.get("/portal/ra/organisations").text
    assert ORG["A"] in tallies and ORG["B"] not in tallies
    assert ORG["B"] not in officer.get("/portal/ra/batches").text
    assert officer.post(f"/portal/ra/requests/{mine.id}/approve").status_code == 303
    assert _status(portal, mine.id) == "issued"


@pytest.mark.parametrize("label", ["subscriber-A", "subscriber-B", "auditor"])
def test_people_who_do_not_decide_get_not_allowed_on_every_ra_page(
    portal: PortalWorld, sql: Connection, label: str
) -> None:
    held = _held_org_request(portal, "A")
    browser = _signed_in(portal, label)
    home = browser.get("/portal/").text
    assert "/portal/ra/" not in home  # not in the menu either
    for path in (*RA_PAGES, f"/portal/ra/requests/{held.id}"):
        response = browser.get(path)
        assert response.status_code == 403, path
        assert "<h1>Not allowed</h1>" in response.text
    for verb in ("approve", "reject"):
        response = browser.post(f"/portal/ra/requests/{held.id}/{verb}", {"reason": "let me"})
        assert response.status_code == 403 and "<h1>Not allowed</h1>" in response.text
    assert _status(portal, held.id) == "pending" and _events(sql, "request.rejected") == 0


def test_people_who_decide_may_open_every_ra_page(portal: PortalWorld) -> None:
    deciders = [
        label for label, (role, _) in PEOPLE.items() if role.value in ("service-admin", "ra-manager", "ra-agent")
    ]
    for label in [*deciders, "officer-A"]:
        browser = _signed_in(portal, label)
        for path in RA_PAGES:
            assert browser.get(path).status_code == 200, (label, path)


def test_a_decision_without_the_csrf_token_is_refused(portal: PortalWorld, sql: Connection) -> None:
    held = _held_org_request(portal, "A")
    agent = _signed_in(portal, "agent")
    for token in (None, "forged-token"):
        data = {"reason": "ok"} | ({"csrf_token": token} if token else {})
        response = agent.post(f"/portal/ra/requests/{held.id}/approve", data, csrf=False)
        assert response.status_code == 403 and "security token" in response.text
    assert _status(portal, held.id) == "pending" and _events(sql, "request.approved") == 0


def test_signed_out_visitors_are_sent_to_sign_in(portal: PortalWorld) -> None:
    response = portal.anonymous().get("/portal/ra/queue")
    assert response.status_code == 303 and response.headers["location"].startswith(
        "/portal/login?next=/portal/ra/queue"
    )


def test_the_desk_refuses_roles_without_request_decide(portal: PortalWorld) -> None:
    subscriber = portal.directory.authenticate(portal.directory.create_token(OPERATOR, email_of("subscriber-A")))
    desk = ReviewDesk(portal.authority.database)
    for read in (desk.queue, desk.tallies, desk.batch_timelines, desk.organisations):
        with pytest.raises(Forbidden):
            read(subscriber)


# ----- counts and timelines ------------------------------------------------------------------------


def test_counts_per_organisation_are_exact(portal: PortalWorld) -> None:
    issued = [_issued_device(portal, "A", random_eui64()) for _ in range(3)]
    _batch(portal, "A", "smki-device", [device_csr(random_eui64(), ("digitalSignature", "keyAgreement"))])  # rejected
    _held_org_request(portal, "A")
    _held_org_request(portal, "B")
    _issued_device(portal, "B", random_eui64())
    assert issued[0].serial is not None
    portal.app.state.services.revocation.revoke(OPERATOR, issued[0].serial, RevocationReason.KEY_COMPROMISE)
    page = _signed_in(portal, "agent").get("/portal/ra/organisations")
    assert page.status_code == 200
    # Organisation, pending, in progress, issued, rejected, failed, revoked
    assert _row(page.text, ORG["A"])[:7] == [ORG["A"], "1", "0", "3", "1", "0", "1"]
    assert _row(page.text, ORG["B"])[:7] == [ORG["B"], "1", "0", "1", "0", "0", "0"]
    assert _row(page.text, "All")[:7] == ["All", "2", "0", "4", "1", "0", "1"]
    assert f'href="/portal/ra/queue?organisation={portal.org_ids["A"]}"' in page.text


def test_batch_timeline_shows_submitted_approved_and_actioned(portal: PortalWorld) -> None:
    held = _held_org_request(portal, "A")
    agent = _signed_in(portal, "agent")
    before = agent.get("/portal/ra/batches").text
    assert held.batch_id is not None
    assert re.search(rf'<tr id="batch-{held.batch_id}">.*?not yet.*?</tr>', before, re.S)
    assert agent.post(f"/portal/ra/requests/{held.id}/approve").status_code == 303
    view = portal.registration.request(OPERATOR, held.id)
    batch = portal.registration.batch_status(OPERATOR, held.batch_id)
    assert view.decided_at and view.issued_at and batch.started_at
    page = agent.get("/portal/ra/batches").text
    block = re.search(rf'<tr id="batch-{held.batch_id}">(.*?)</tr>', page, re.S)
    assert block is not None
    times = dict(re.findall(r'<time data-step="(\w+)" datetime="([^"]+)"', block.group(1)))
    assert times == {
        "submitted": batch.submitted_at.isoformat(),
        "started": batch.started_at.isoformat(),
        "approved": view.decided_at.isoformat(),
        "actioned": view.issued_at.isoformat(),
    }
    assert view.decided_at > batch.completed_at  # approved by the agent, after processing


def test_batch_timelines_page_newest_first_and_filter(portal: PortalWorld) -> None:
    ids = [_held_org_request(portal, org).batch_id for org in ("A", "B", "A")]
    desk = ReviewDesk(portal.authority.database)
    first = desk.batch_timelines(OPERATOR, limit=2)
    assert [line.id for line in first.lines] == [ids[2], ids[1]] and first.next_before == ids[1]
    rest = desk.batch_timelines(OPERATOR, before_id=first.next_before, limit=2)
    assert [line.id for line in rest.lines] == [ids[0]] and rest.next_before is None
    agent = _signed_in(portal, "agent")
    only_b = agent.get("/portal/ra/batches", params={"organisation": portal.org_ids["B"]}).text
    assert re.findall(r'<tr id="batch-(\d+)">', only_b) == [str(ids[1])]
    older = agent.get("/portal/ra/batches", params={"before": ids[2]}).text
    assert re.findall(r'<tr id="batch-(\d+)">', older) == [str(ids[1]), str(ids[0])]
