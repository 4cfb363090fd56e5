"""The subscriber portal in-process: single requests, batches, certificates and revocation, and the
in-browser key page's endpoint. Bad input gets a clear 4xx and writes nothing; another organisation's
certificates stay out of reach."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Connection, text

from mpki.ra import OPERATOR, Principal
from mpki.ra.principals import principal_of
from mpki.ra.subscriber_views import SubscriberViews
from mpki.store import PersonRepository
from tests.csr_factory import corrupt_signature, device_csr, ec_key, load, random_eui64, tls_client_csr, to_der
from tests.support.portal import ORG, PortalClient, PortalWorld, email_of, portal

__all__ = ["portal"]

TABLES = ("requests", "batches", "certificates", "audit_events")


def _counts(sql: Connection) -> dict[str, int]:
    return {table: sql.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() for table in TABLES}


def _events(sql: Connection, action: str) -> int:
    return sql.execute(text("SELECT COUNT(*) FROM audit_events WHERE action = :a"), {"a": action}).scalar_one()


def _signed_in(portal: PortalWorld, label: str) -> PortalClient:
    """Signed in, with the session's CSRF token read from a portal page (not the sign-in form's)."""
    browser = portal.sign_in(label)
    assert browser.get("/portal/").status_code == 200
    return browser


def _device_pem() -> str:
    return device_csr(random_eui64(), pem=True).decode()


def _request_id(response: httpx.Response) -> int:
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/portal/requests/(\d+)", response.headers["location"])
    assert found, response.headers["location"]
    return int(found.group(1))


def _status_word(page: str, element: str) -> str:
    found = re.search(rf'id="{element}"[^>]*>([^<]+)<', page)
    assert found, page
    return found.group(1).strip()


def _submit(browser: PortalClient, profile: str, csr: str, **extra: str) -> httpx.Response:
    return browser.post("/portal/requests/new", {"profile": profile, "csr": csr, **extra})


def _issue_device(browser: PortalClient) -> str:
    """A device certificate for the browser's organisation (device requests approve themselves); its serial."""
    page = browser.get(f"/portal/requests/{_request_id(_submit(browser, 'smki-device', _device_pem()))}")
    found = re.search(r'href="/portal/certificates/([0-9a-f]+)\.pem"', page.text)
    assert found, page.text
    return found.group(1)


# ----- single requests ---------------------------------------------------------------------------


def test_the_request_form_has_its_labelled_fields(portal: PortalWorld) -> None:
    page = _signed_in(portal, "subscriber-A").get("/portal/requests/new")
    assert page.status_code == 200
    for piece in (
        '<select id="profile" name="profile"',
        '<label for="csr">CSR (PEM)</label>',
        '<textarea id="csr" name="csr"',
        '<label for="csr-file">or upload a CSR file</label>',
        'id="csr-file" name="csr_file"',
        ">Submit request</button>",
        'name="csrf_token"',
    ):
        assert piece in page.text
    for profile in ("smki-device", "smki-org", "tls-server", "tls-client"):
        assert f'<option value="{profile}"' in page.text
    assert 'id="organisation"' not in page.text  # the subscriber's organisation is its own


def test_a_pasted_device_csr_is_issued_and_its_certificate_downloads(portal: PortalWorld, sql: Connection) -> None:
    browser = _signed_in(portal, "subscriber-A")
    csr = device_csr(random_eui64(), pem=True)
    request_id = _request_id(_submit(browser, "smki-device", "pasted from a terminal:\n" + csr.decode()))
    page = browser.get(f"/portal/requests/{request_id}")
    assert page.status_code == 200
    assert _status_word(page.text, "request-status") == "issued"
    assert "Your certificate is issued." in page.text  # the one-time notice after the redirect
    assert "Submitted" in page.text and "Decided" in page.text and "Issued" in page.text
    link = re.search(r'<a [^>]*href="(/portal/certificates/([0-9a-f]+)\.pem)"[^>]*>Download certificate</a>', page.text)
    assert link, page.text
    download = browser.get(link.group(1))
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment")
    certificate = x509.load_pem_x509_certificate(download.content)
    assert format(certificate.serial_number, "x") == link.group(2)
    spki = load(csr).public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == spki
    owner = sql.execute(text("SELECT organisation_id FROM requests WHERE id = :i"), {"i": request_id}).scalar_one()
    assert owner == portal.org_ids["A"]
    listing = browser.get("/portal/requests")
    assert f'href="/portal/requests/{request_id}"' in listing.text


def test_an_uploaded_der_file_is_accepted_and_a_held_request_shows_why(portal: PortalWorld) -> None:
    browser = _signed_in(portal, "subscriber-A")
    der = tls_client_csr("Alice Example")
    response = browser.post(
        "/portal/requests/new", {"profile": "tls-client"}, files={"csr_file": ("alice.der", der, "application/pkcs10")}
    )
    page = browser.get(f"/portal/requests/{_request_id(response)}")
    assert _status_word(page.text, "request-status") == "pending"
    assert "awaiting RA agent approval" in page.text  # tls-client waits for review by default
    assert "Download certificate" not in page.text


def test_a_rejected_request_is_shown_with_its_reason(portal: PortalWorld) -> None:
    browser = _signed_in(portal, "subscriber-A")
    key = ec_key()
    _request_id(_submit(browser, "smki-device", device_csr(random_eui64(), key=key, pem=True).decode()))
    again = _request_id(_submit(browser, "smki-device", device_csr(random_eui64(), key=key, pem=True).decode()))
    page = browser.get(f"/portal/requests/{again}")
    assert _status_word(page.text, "request-status") == "rejected"
    assert "this public key is already certified" in page.text
    assert 'role="alert"' in page.text


@pytest.mark.parametrize(
    ("profile", "csr", "files", "message"),
    [
        ("smki-device", "", None, "paste a CSR or choose a CSR file"),
        ("smki-device", "hello, I am not a CSR", None, "neither PEM nor DER"),
        (
            "smki-device",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
            None,
            "PEM CSR",
        ),
        ("smki-device", "CORRUPT", None, "signature does not verify"),
        ("tls-server", "DEVICE", None, "at least one DNS name"),
        ("smki-root", "DEVICE", None, "not requested through the RA"),
        ("no-such-profile", "DEVICE", None, "unknown profile"),
        ("smki-device", "DEVICE", "DEVICE", "not both"),
        ("tls-client", "", "NOCN", "must have a CN"),
    ],
)
def test_a_bad_csr_shows_the_form_again_with_the_reason_and_writes_nothing(
    portal: PortalWorld, sql: Connection, profile: str, csr: str, files: str | None, message: str
) -> None:
    samples = {
        "DEVICE": _device_pem(),
        "CORRUPT": corrupt_signature(device_csr(random_eui64(), pem=True)).decode(),
        "NOCN": tls_client_csr(None, pem=True).decode(),
    }
    browser = _signed_in(portal, "subscriber-A")
    before = _counts(sql)
    upload = {"csr_file": ("file.pem", samples[files].encode(), "application/x-pem-file")} if files else None
    response = browser.post(
        "/portal/requests/new", {"profile": profile, "csr": samples.get(csr, csr)}, files=upload or {}
    )
    assert response.status_code == 400
    assert message in response.text
    assert 'role="alert"' in response.text and ">Submit request</button>" in response.text
    assert _counts(sql) == before


def test_provider_staff_name_the_organisation(portal: PortalWorld, sql: Connection) -> None:
    browser = _signed_in(portal, "admin")
    form = browser.get("/portal/requests/new")
    assert '<select id="organisation" name="organisation"' in form.text and ORG["B"] in form.text
    before = _counts(sql)
    unnamed = _submit(browser, "smki-device", _device_pem())
    assert unnamed.status_code == 400 and "choose the organisation" in unnamed.text
    assert _counts(sql) == before
    request_id = _request_id(_submit(browser, "smki-device", _device_pem(), organisation=ORG["B"]))
    owner = sql.execute(text("SELECT organisation_id FROM requests WHERE id = :i"), {"i": request_id}).scalar_one()
    assert owner == portal.org_ids["B"]


@pytest.mark.parametrize("label", ["agent", "auditor"])
def test_people_who_may_not_request_certificates_get_no_forms(portal: PortalWorld, sql: Connection, label: str) -> None:
    browser = _signed_in(portal, label)
    for path in ("/portal/requests/new", "/portal/batches/new", "/portal/keygen"):
        refused = browser.get(path)
        assert refused.status_code == 403 and "Not allowed" in refused.text, path
    assert "New request" not in browser.get("/portal/requests").text
    before = _counts(sql)
    posted = _submit(browser, "smki-device", _device_pem(), organisation=ORG["A"])
    assert posted.status_code == 403
    assert _counts(sql) == before


def test_requests_are_listed_newest_first_per_organisation_with_a_cursor(portal: PortalWorld) -> None:
    a = _signed_in(portal, "subscriber-A")
    ids = [_request_id(_submit(a, "smki-device", _device_pem())) for _ in range(3)]
    b_id = _request_id(_submit(_signed_in(portal, "subscriber-B"), "smki-device", _device_pem()))
    listing = a.get("/portal/requests").text
    shown = [int(i) for i in re.findall(r'<a href="/portal/requests/(\d+)">Request', listing)]
    assert shown == sorted(ids, reverse=True)
    assert b_id not in shown
    paged = SubscriberViews(portal.authority.database, page=2)
    who = _principal(portal, "subscriber-A")
    first = paged.requests(who, status=None, after=None)
    second = paged.requests(who, status=None, after=first[-1].id)
    assert [v.id for v in first + second] == sorted(ids, reverse=True)
    assert f'href="/portal/requests/{ids[0]}"' in a.get("/portal/requests?status=issued").text
    assert f'href="/portal/requests/{ids[0]}"' not in a.get("/portal/requests?status=pending").text
    bad = a.get("/portal/requests?status=everything")
    assert bad.status_code == 400 and "unknown request status" in bad.text


def _principal(portal: PortalWorld, label: str) -> Principal:
    with portal.authority.database.reader() as session:
        return principal_of(session, PersonRepository(session).by_email(email_of(label)).id, "test")


def test_another_organisation_s_request_is_not_shown(portal: PortalWorld) -> None:
    request_id = _request_id(_submit(_signed_in(portal, "subscriber-A"), "smki-device", _device_pem()))
    refused = _signed_in(portal, "subscriber-B").get(f"/portal/requests/{request_id}")
    assert refused.status_code == 403 and "Not allowed" in refused.text


# ----- batches -----------------------------------------------------------------------------------


def test_the_batch_form_has_its_labelled_fields(portal: PortalWorld) -> None:
    page = _signed_in(portal, "subscriber-A").get("/portal/batches/new")
    assert page.status_code == 200
    assert '<label for="batch-file">CSR file</label>' in page.text
    assert 'type="file" id="batch-file" name="file"' in page.text
    assert '<select id="profile" name="profile"' in page.text and ">Submit batch</button>" in page.text


def _upload_batch(browser: PortalClient, content: bytes, profile: str = "smki-device") -> httpx.Response:
    return browser.post(
        "/portal/batches/new", {"profile": profile}, files={"file": ("csrs.pem", content, "text/plain")}
    )


def _batch_id(response: httpx.Response) -> int:
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/portal/batches/(\d+)", response.headers["location"])
    assert found, response.headers["location"]
    return int(found.group(1))


def test_a_batch_upload_is_processed_by_the_worker_and_its_certificates_download(
    portal: PortalWorld, sql: Connection
) -> None:
    browser = _signed_in(portal, "subscriber-A")
    good = [device_csr(random_eui64(), pem=True) for _ in range(3)]
    bad = corrupt_signature(device_csr(random_eui64(), pem=True))
    batch_id = _batch_id(_upload_batch(browser, b"".join(good[:2]) + bad + good[2]))
    waiting = browser.get(f"/portal/batches/{batch_id}")
    assert waiting.status_code == 200
    assert _status_word(waiting.text, "batch-status") == "submitted"  # not processed inline
    assert f'hx-get="/portal/batches/{batch_id}/progress"' in waiting.text
    assert 'hx-trigger="every 1s"' in waiting.text and 'hx-swap="outerHTML"' in waiting.text
    assert "Refresh" in waiting.text and "<progress" in waiting.text
    assert "Download certificates (PEM)" not in waiting.text
    polled = browser.get(f"/portal/batches/{batch_id}/progress", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 1s"' in polled.text and "<html" not in polled.text

    done = portal.registration.process_next()
    assert done is not None and done.id == batch_id

    fragment = browser.get(f"/portal/batches/{batch_id}/progress", headers={"HX-Request": "true"})
    assert _status_word(fragment.text, "batch-status") == "completed"
    assert "hx-trigger" not in fragment.text  # polling stops
    assert 'hx-swap-oob="true"' in fragment.text and "signature does not verify" in fragment.text
    page = browser.get(f"/portal/batches/{batch_id}")
    assert _status_word(page.text, "batch-status") == "completed"
    assert "hx-trigger" not in page.text
    assert 'max="4" value="4"' in page.text
    assert "signature does not verify" in page.text  # the bad item, with its reason
    link = re.search(r'<a [^>]*href="([^"]+)"[^>]*>Download certificates \(PEM\)</a>', page.text)
    assert link and link.group(1) == f"/portal/batches/{batch_id}/certificates.pem"
    bundle = browser.get(link.group(1))
    assert bundle.status_code == 200 and bundle.headers["content-disposition"].startswith("attachment")
    certificates = x509.load_pem_x509_certificates(bundle.content)
    assert len(certificates) == 3
    issued = sql.execute(text("SELECT COUNT(*) FROM certificates WHERE request_id IS NOT NULL")).scalar_one()
    assert issued == 3
    listing = browser.get("/portal/batches")
    assert f'href="/portal/batches/{batch_id}"' in listing.text


def test_a_batch_of_base64_der_lines_is_accepted(portal: PortalWorld) -> None:
    browser = _signed_in(portal, "subscriber-A")
    lines = [base64.b64encode(device_csr(random_eui64())).decode() for _ in range(2)]
    batch_id = _batch_id(_upload_batch(browser, ("# two devices\n" + "\n".join(lines) + "\n").encode()))
    portal.registration.process_next()
    page = browser.get(f"/portal/batches/{batch_id}")
    assert _status_word(page.text, "batch-status") == "completed"
    bundle = browser.get(f"/portal/batches/{batch_id}/certificates.pem")
    assert len(x509.load_pem_x509_certificates(bundle.content)) == 2


@pytest.mark.parametrize(
    ("content", "profile", "message"),
    [
        (b"", "smki-device", "the file is empty"),
        (b"   \n\n", "smki-device", "the file is empty"),
        (b"these are not csrs!\nnor is this?\n", "smki-device", "holds no CSRs"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n", "smki-device", "without its matching END"),
        (b"GOOD", "no-such-profile", "unknown profile"),
    ],
)
def test_a_bad_batch_file_shows_the_form_again_and_writes_nothing(
    portal: PortalWorld, sql: Connection, content: bytes, profile: str, message: str
) -> None:
    browser = _signed_in(portal, "subscriber-A")
    before = _counts(sql)
    body = device_csr(random_eui64(), pem=True) if content == b"GOOD" else content
    response = _upload_batch(browser, body, profile)
    assert response.status_code == 400
    assert message in response.text and ">Submit batch</button>" in response.text
    assert _counts(sql) == before


def test_another_organisation_s_batch_is_not_shown(portal: PortalWorld) -> None:
    batch_id = _batch_id(_upload_batch(_signed_in(portal, "subscriber-A"), device_csr(random_eui64(), pem=True)))
    other = _signed_in(portal, "subscriber-B")
    for path in ("", "/progress", "/certificates.pem"):
        assert other.get(f"/portal/batches/{batch_id}{path}").status_code == 403


# ----- certificates and revocation ---------------------------------------------------------------


def test_certificates_are_listed_with_details_for_the_organisation(portal: PortalWorld) -> None:
    browser = _signed_in(portal, "subscriber-A")
    serial = _issue_device(browser)
    listing = browser.get("/portal/certificates")
    assert f'href="/portal/certificates/{serial}"' in listing.text
    assert serial not in _signed_in(portal, "subscriber-B").get("/portal/certificates").text
    details = browser.get(f"/portal/certificates/{serial}")
    assert details.status_code == 200
    for piece in ("Subject", "EUI-64", "smki-device", "Valid from", "Valid until", "issued"):
        assert piece in details.text
    assert browser.get("/portal/certificates/not-a-serial").status_code == 404
    assert browser.get("/portal/certificates/abcdef0123").status_code == 404


def test_revoking_an_own_certificate_needs_the_confirmation_and_is_audited(
    portal: PortalWorld, sql: Connection
) -> None:
    browser = _signed_in(portal, "subscriber-A")
    serial = _issue_device(browser)
    page = browser.get(f"/portal/certificates/{serial}")
    assert '<select id="reason" name="reason"' in page.text and ">Revoke certificate</button>" in page.text
    assert "I understand this cannot be undone" in page.text
    for reason in ("keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation", "unspecified"):
        assert f'<option value="{reason}"' in page.text
    assert 'value="certificateHold"' not in page.text  # SMKI certificates are never put on hold
    path = f"/portal/certificates/{serial}/revoke"
    before = _counts(sql)
    for form, message in (
        ({"reason": "keyCompromise"}, "cannot be undone"),
        ({"reason": "certificateHold", "confirm": "yes"}, "not a reason you can give here"),
        ({"reason": "cACompromise", "confirm": "yes"}, "not a reason you can give here"),
        ({"reason": "whatever", "confirm": "yes"}, "unknown revocation reason"),
        ({"confirm": "yes"}, "choose a reason"),
    ):
        refused = browser.post(path, form)
        assert refused.status_code == 400 and message in refused.text, form
    assert _counts(sql) == before
    done = browser.post(path, {"reason": "keyCompromise", "confirm": "yes"})
    assert done.status_code == 303 and done.headers["location"] == f"/portal/certificates/{serial}"
    row = sql.execute(text("SELECT status, revocation_reason FROM certificates WHERE serial = :s"), {"s": serial}).one()
    assert tuple(row) == ("revoked", 1)
    assert _events(sql, "certificate.revoked") == 1
    after = browser.get(f"/portal/certificates/{serial}")
    assert _status_word(after.text, "certificate-status") == "revoked"
    assert "Revoke certificate" not in after.text
    again = browser.post(path, {"reason": "keyCompromise", "confirm": "yes"})
    assert again.status_code == 400 and "already revoked" in again.text
    assert _events(sql, "certificate.revoked") == 1


def test_a_tls_client_certificate_may_be_put_on_hold(portal: PortalWorld, sql: Connection) -> None:
    portal.directory.set_approval_rule(OPERATOR, ORG["A"], "tls-client", "auto")
    browser = _signed_in(portal, "subscriber-A")
    request_id = _request_id(_submit(browser, "tls-client", tls_client_csr("Alice", pem=True).decode()))
    serial = sql.execute(text("SELECT certificate_serial FROM requests WHERE id = :i"), {"i": request_id}).scalar_one()
    page = browser.get(f"/portal/certificates/{serial}")
    assert '<option value="certificateHold"' in page.text
    held = browser.post(f"/portal/certificates/{serial}/revoke", {"reason": "certificateHold", "confirm": "yes"})
    assert held.status_code == 303
    assert "on hold" in browser.get(f"/portal/certificates/{serial}").text


def test_another_organisation_cannot_see_download_or_revoke_a_certificate(portal: PortalWorld, sql: Connection) -> None:
    serial = _issue_device(_signed_in(portal, "subscriber-A"))
    other = _signed_in(portal, "subscriber-B")
    for path in (f"/portal/certificates/{serial}", f"/portal/certificates/{serial}.pem"):
        refused = other.get(path)
        assert refused.status_code == 403 and "Not allowed" in refused.text
    refused = other.post(f"/portal/certificates/{serial}/revoke", {"reason": "keyCompromise", "confirm": "yes"})
    assert refused.status_code == 403 and "Not allowed" in refused.text
    assert (
        sql.execute(text("SELECT status FROM certificates WHERE serial = :s"), {"s": serial}).scalar_one() == "issued"
    )
    assert _events(sql, "certificate.revoked") == 0


def test_an_auditor_sees_certificates_but_may_not_revoke(portal: PortalWorld, sql: Connection) -> None:
    serial = _issue_device(_signed_in(portal, "subscriber-A"))
    auditor = _signed_in(portal, "auditor")
    page = auditor.get(f"/portal/certificates/{serial}")
    assert page.status_code == 200 and "Revoke certificate" not in page.text
    refused = auditor.post(f"/portal/certificates/{serial}/revoke", {"reason": "keyCompromise", "confirm": "yes"})
    assert refused.status_code == 403
    assert _events(sql, "certificate.revoked") == 0


# ----- CSRF --------------------------------------------------------------------------------------


def test_posts_without_the_csrf_token_are_refused_and_write_nothing(portal: PortalWorld, sql: Connection) -> None:
    browser = _signed_in(portal, "subscriber-A")
    serial = _issue_device(browser)
    before = _counts(sql)
    attempts = [
        browser.post("/portal/requests/new", {"profile": "smki-device", "csr": _device_pem()}, csrf=False),
        browser.post(
            "/portal/batches/new",
            {"profile": "smki-device"},
            files={"file": ("b.pem", device_csr(random_eui64(), pem=True), "text/plain")},
            csrf=False,
        ),
        browser.post(
            f"/portal/certificates/{serial}/revoke", {"reason": "keyCompromise", "confirm": "yes"}, csrf=False
        ),
        browser.post("/portal/requests/new", {"profile": "smki-device", "csr": _device_pem(), "csrf_token": "x" * 43}),
        browser.client.post("/portal/keygen", json={"csr": tls_client_csr("Bob", pem=True).decode()}),
    ]
    for response in attempts:
        assert response.status_code == 403, response.text
        assert "security token" in response.text
    assert _counts(sql) == before


# ----- keygen ------------------------------------------------------------------------------------


def _keygen(browser: PortalClient, body: object) -> httpx.Response:
    browser.get("/portal/keygen")
    assert browser.csrf
    return browser.client.post("/portal/keygen", json=body, headers={"X-CSRF-Token": browser.csrf})


def test_the_keygen_page_has_its_controls_and_script(portal: PortalWorld) -> None:
    page = _signed_in(portal, "subscriber-A").get("/portal/keygen")
    assert page.status_code == 200
    for piece in (
        '<script src="/static/keygen.js" defer></script>',
        '<label for="cn">Your name</label>',
        'id="cn" name="cn"',
        ">Generate key and request certificate</button>",
        'id="keygen-status"',
        'download="private-key.pem"',
        "Download private key",
        'download="certificate.pem"',
        "Download certificate",
        'name="csrf_token"',
    ):
        assert piece in page.text
    assert "<script>" not in page.text and "style=" not in page.text
    script = portal.anonymous().get("/static/keygen.js")
    assert script.status_code == 200 and "generateKey" in script.text and "X-CSRF-Token" in script.text


def test_keygen_accepts_a_tls_client_csr_and_answers_json(portal: PortalWorld, sql: Connection) -> None:
    browser = _signed_in(portal, "subscriber-A")
    held = _keygen(browser, {"csr": tls_client_csr("Alice Example", pem=True).decode()})
    assert held.status_code == 201 and held.headers["content-type"].startswith("application/json")
    answer = held.json()
    assert answer["status"] == "pending" and "awaiting RA agent approval" in answer["reason"]
    assert answer["request_url"] == f"/portal/requests/{answer['request']}" and answer["certificate"] is None

    portal.directory.set_approval_rule(OPERATOR, ORG["A"], "tls-client", "auto")
    csr = tls_client_csr("Alice Example", pem=True)
    issued = _keygen(browser, {"csr": csr.decode()}).json()
    assert issued["status"] == "issued"
    certificate = x509.load_pem_x509_certificate(issued["certificate"].encode())
    assert certificate.subject.rfc4514_string() == "CN=Alice Example"
    spki = load(csr).public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == spki
    profile = sql.execute(text("SELECT profile FROM requests WHERE id = :i"), {"i": issued["request"]}).scalar_one()
    assert profile == "tls-client"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"csr": "garbage"}, "neither PEM nor DER"),
        ({"csr": ""}, "paste a CSR"),
        ({"csr": "NOCN"}, "must have a CN"),
        ({"csr": "DEVICE"}, "must have a CN"),
        ({"csr": "GOOD", "key": "-----BEGIN PRIVATE KEY-----"}, "only the CSR"),
        ({"csr": 42}, "send {"),
        (["not", "an", "object"], "send {"),
    ],
)
def test_keygen_refuses_anything_but_a_good_csr_and_writes_nothing(
    portal: PortalWorld, sql: Connection, body: object, message: str
) -> None:
    samples = {
        "NOCN": tls_client_csr(None, pem=True).decode(),
        "DEVICE": _device_pem(),
        "GOOD": tls_client_csr("Carol", pem=True).decode(),
    }
    if isinstance(body, dict) and isinstance(body.get("csr"), str):
        body = body | {"csr": samples.get(body["csr"], body["csr"])}
    browser = _signed_in(portal, "subscriber-A")
    before = _counts(sql)
    response = _keygen(browser, body)
    assert response.status_code == 400
    assert response.json()["status"] == "refused" and message in response.json()["reason"]
    assert _counts(sql) == before


def test_keygen_without_javascript_explains_itself(portal: PortalWorld, sql: Connection) -> None:
    browser = _signed_in(portal, "subscriber-A")
    before = _counts(sql)
    response = browser.post("/portal/keygen", {"cn": "Dave"})
    assert response.status_code == 400 and "needs JavaScript" in response.text
    assert _counts(sql) == before


def test_a_pasted_base64_der_csr_is_accepted(portal: PortalWorld) -> None:
    browser = _signed_in(portal, "subscriber-A")
    der = to_der(device_csr(random_eui64(), pem=True))
    page = browser.get(
        f"/portal/requests/{_request_id(_submit(browser, 'smki-device', base64.b64encode(der).decode()))}"
    )
    assert _status_word(page.text, "request-status") == "issued"
