"""Portal tests in-process: a world of two organisations with a person of every role (each with a
password), and a signed-in TestClient per person that sends the page's CSRF token with every POST."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from mpki.ca import CertificationAuthority
from mpki.domain import Role
from mpki.ra import OPERATOR, Directory
from mpki.ra.intake import Registration
from mpki.web import create_app

PASSWORD = "correct horse battery staple"
EUI_A = "90B3D51F30010000"
EUI_B = "90B3D51F30020000"
ORG = {"A": "Acme Energy", "B": "Beta Networks"}
# label -> (role, organisation key or None)
PEOPLE: dict[str, tuple[Role, str | None]] = {
    "admin": (Role.SERVICE_ADMIN, None),
    "manager": (Role.RA_MANAGER, None),
    "agent": (Role.RA_AGENT, None),
    "auditor": (Role.AUDITOR, None),
    "subscriber-A": (Role.AUTHORISED_SUBSCRIBER, "A"),
    "officer-A": (Role.ORG_RA_OFFICER, "A"),
    "subscriber-B": (Role.AUTHORISED_SUBSCRIBER, "B"),
}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def email_of(label: str) -> str:
    return f"{label.lower()}@example.org"


class PortalClient:
    """One browser-like session: cookies kept, the CSRF token read from the last page with a form."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf: str | None = None

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.get(path, **kwargs)
        self._remember(response)
        return response

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """A form POST carrying the session's token (unless `csrf=False`, to show it is refused)."""
        form = dict(data or {})
        if csrf:
            if self.csrf is None:
                self.get("/portal/")
            form.setdefault("csrf_token", self.csrf)
        response = self.client.post(path, data=form, **kwargs)
        self._remember(response)
        return response

    def _remember(self, response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith("text/html"):
            found = _CSRF.search(response.text)
            if found:
                self.csrf = found.group(1)


@dataclass
class PortalWorld:
    app: Any
    authority: CertificationAuthority
    directory: Directory
    registration: Registration
    org_ids: dict[str, int]
    _clients: list[TestClient] = field(default_factory=list)

    def anonymous(self) -> PortalClient:
        client = TestClient(self.app, follow_redirects=False)
        client.__enter__()
        self._clients.append(client)
        return PortalClient(client)

    def sign_in(self, label: str, password: str = PASSWORD) -> PortalClient:
        browser = self.anonymous()
        response = login(browser, email_of(label), password)
        assert response.status_code == 303, response.text
        browser.csrf = None  # the sign-in form's token is not the session's: the next POST fetches a page first
        return browser


def login(browser: PortalClient, email: str, password: str, next_path: str = "/portal/") -> httpx.Response:
    page = browser.get(f"/portal/login?next={next_path}")
    token = _CSRF.search(page.text)
    assert token, page.text
    return browser.client.post(
        "/portal/login", data={"email": email, "password": password, "csrf_token": token.group(1), "next": next_path}
    )


@pytest.fixture
def portal(authority: CertificationAuthority) -> Iterator[PortalWorld]:
    directory = Directory(authority.database)
    directory.create_organisation(OPERATOR, ORG["A"], [EUI_A], ["supplier"])
    directory.create_organisation(OPERATOR, ORG["B"], [EUI_B], ["network-operator"])
    org_ids = {key: directory.organisation(OPERATOR, name).id for key, name in ORG.items()}
    for label, (role, org) in PEOPLE.items():
        directory.create_person(OPERATOR, email_of(label), role, ORG[org] if org else None, PASSWORD)
    app = create_app(authority, start_worker=False)
    world = PortalWorld(app, authority, directory, Registration(authority.database, authority), org_ids)
    try:
        yield world
    finally:
        for client in world._clients:
            client.__exit__(None, None, None)
