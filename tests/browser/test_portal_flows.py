"""The portal's main journeys in a real browser, each checked down to the certificate it yields: a batch
uploaded and picked up, a held request approved by an RA agent, and a key generated in the page whose
certificate matches it."""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from playwright.sync_api import Page, Request, expect

from mpki.asn1 import HARDWARE_MODULE_NAME_OID, decode_hardware_module_name
from tests.browser.conftest import NewPage, Shot
from tests.csr_factory import device_csr, org_csr, random_eui64
from tests.support.browser import (
    DEMO_EUI64,
    DEMO_ORGANISATION,
    PHONE,
    ServerWorld,
    browser_marks,
    download_text,
    sign_in,
)

pytestmark = browser_marks

# The batch worker and htmx's one-second polling: a three-item batch completes well inside this.
BATCH_TIMEOUT_MS = 30_000


def _hardware_serials(certificate: x509.Certificate) -> list[bytes]:
    """The EUI-64s in a device certificate's hardwareModuleName SAN entries."""
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [
        decode_hardware_module_name(name.value).hw_serial_num
        for name in names.get_values_for_type(x509.OtherName)
        if name.type_id.dotted_string == HARDWARE_MODULE_NAME_OID
    ]


def _id_from(page: Page, pattern: str) -> int:
    match = re.search(pattern, page.url)
    assert match, f"{page.url} does not match {pattern}"
    return int(match.group(1))


def test_a_subscriber_uploads_a_batch_sees_it_complete_and_downloads_the_certificates(
    page: Page, world: ServerWorld, shot: Shot
) -> None:
    euis = [random_eui64() for _ in range(3)]
    batch_file = b"".join(device_csr(eui, pem=True) for eui in euis)
    sign_in(page, world.base, world.account("authorised-subscriber"))
    page.goto("/portal/batches/new")
    page.get_by_label("CSR file").set_input_files(
        {"name": "devices.pem", "mimeType": "application/x-pem-file", "buffer": batch_file}
    )
    page.locator("#profile").select_option("smki-device")
    shot(page, "form")
    page.get_by_role("button", name="Submit batch").click()
    expect(page).to_have_url(re.compile(r"/portal/batches/\d+$"))
    shot(page, "submitted")
    expect(page.locator("#batch-status")).to_have_text("completed", timeout=BATCH_TIMEOUT_MS)
    shot(page, "completed")

    name, bundle = download_text(page, "Download certificates (PEM)")
    assert name.endswith(".pem")
    certificates = x509.load_pem_x509_certificates(bundle.encode())
    assert bundle.count("-----BEGIN CERTIFICATE-----") == len(certificates) == 3
    assert sorted(serial for c in certificates for serial in _hardware_serials(c)) == sorted(euis)


def test_an_ra_agent_approves_a_held_request_and_the_subscriber_downloads_its_certificate(
    new_page: NewPage, world: ServerWorld, shot: Shot
) -> None:
    subscriber = new_page()
    sign_in(subscriber, world.base, world.account("authorised-subscriber"))
    subscriber.goto("/portal/requests/new")
    subscriber.locator("#profile").select_option("smki-org")
    subscriber.get_by_label("CSR (PEM)").fill(org_csr(bytes.fromhex(DEMO_EUI64), role="02", pem=True).decode())
    shot(subscriber, "subscriber-form")
    subscriber.get_by_role("button", name="Submit request").click()
    expect(subscriber).to_have_url(re.compile(r"/portal/requests/\d+$"))
    request_id = _id_from(subscriber, r"/portal/requests/(\d+)$")
    expect(subscriber.locator("#request-status")).to_have_text("pending")
    expect(subscriber.get_by_role("link", name="Download certificate")).to_have_count(0)
    shot(subscriber, "subscriber-held")

    agent = new_page()
    sign_in(agent, world.base, world.account("ra-agent"))
    agent.get_by_role("navigation", name="Main").get_by_role("link", name="RA queue").click()
    expect(agent).to_have_url(re.compile(r"/portal/ra/queue"))
    review = agent.locator(f'a[href="/portal/ra/requests/{request_id}"]', has_text="Review")
    shot(agent, "agent-queue")
    review.click()
    expect(agent).to_have_url(re.compile(rf"/portal/ra/requests/{request_id}$"))
    agent.locator("#reason").fill("Organisation certificate checked against the supplier's registration")
    shot(agent, "agent-review")
    agent.get_by_role("button", name="Approve").click()
    expect(agent).to_have_url(re.compile(r"/portal/ra/queue"))
    expect(agent.get_by_role("status").filter(has_text=f"Request {request_id} approved")).to_have_count(1)
    expect(agent.locator(f'a[href="/portal/ra/requests/{request_id}"]')).to_have_count(0)  # left the queue
    shot(agent, "agent-approved")

    subscriber.reload()
    expect(subscriber.locator("#request-status")).to_have_text("issued")
    shot(subscriber, "subscriber-issued")
    name, pem = download_text(subscriber, "Download certificate")
    assert name.endswith(".pem")
    certificate = x509.load_pem_x509_certificate(pem.encode())
    unique_id = certificate.subject.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER)[0].value
    assert isinstance(unique_id, bytes) and unique_id[-8:] == bytes.fromhex(DEMO_EUI64)
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "02"


def test_a_key_generated_in_the_browser_gets_a_certificate_on_a_phone(
    new_page: NewPage, world: ServerWorld, shot: Shot
) -> None:
    world.mpki("org", "policy", DEMO_ORGANISATION, "--profile", "tls-client", "--rule", "auto")
    page = new_page(PHONE, mobile=True)
    sent: list[str] = []

    def remember(request: Request) -> None:
        if request.method == "POST":
            sent.append(request.post_data or "")

    page.on("request", remember)
    sign_in(page, world.base, world.account("authorised-subscriber"))
    page.goto("/portal/keygen")
    page.get_by_label("Your name").fill("Ada Lovelace")
    shot(page, "form")
    page.get_by_role("button", name="Generate key and request certificate").click()
    expect(page.locator("#keygen-status")).to_have_text("issued")
    shot(page, "issued")

    key_name, key_pem = download_text(page, "Download private key")
    cert_name, cert_pem = download_text(page, "Download certificate")
    assert (key_name, cert_name) == ("private-key.pem", "certificate.pem")
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    certificate = x509.load_pem_x509_certificate(cert_pem.encode())
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*spki) == certificate.public_key().public_bytes(*spki)
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Ada Lovelace"
    # The key was made in the page: the server was sent a CSR, never the private key.
    assert sent and not any("PRIVATE KEY" in body for body in sent)
