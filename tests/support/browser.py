"""Browser tests' world: a real `mpki serve` made by `mpki init --dev`, its demo portal accounts, Debian's
Chromium driven by Playwright, and full-page screenshots kept as test artefacts.

The browser adds nothing per database, so the server always runs on SQLite under its own MPKI_HOME.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Download, Page, ViewportSize, expect

from tests.support.serve import running_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
LAPTOP: ViewportSize = {"width": 1366, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
# Long enough for a loaded two-core machine, short enough that a missing page fails in seconds, not minutes.
STEP_TIMEOUT_MS = 15_000
DEMO_ORGANISATION = "Demo Energy Supplier"
DEMO_EUI64 = "90B3D51F30000001"

browser_marks = [
    pytest.mark.browser,
    # One xdist worker runs every browser test, so the server and the Chromium are made once.
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]
"""`pytestmark` for every browser test module."""


@dataclass(frozen=True, slots=True)
class Account:
    email: str
    role: str
    password: str


@dataclass(frozen=True, slots=True)
class ServerWorld:
    """A running server and what a test needs to reach it: its URL, its home, and the CLI bound to it."""

    base: str
    home: Path
    env: dict[str, str]
    accounts: dict[str, Account]

    def account(self, role: str) -> Account:
        """The demo account with that role (service-admin, ra-agent, auditor, authorised-subscriber)."""
        return self.accounts[role]

    def mpki(self, *args: str) -> str:
        """Run the real `mpki` command against this server's home and database; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "mpki", *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise AssertionError(f"mpki {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def requests(self) -> list[dict[str, Any]]:
        """Every certificate request the server holds, as the operator sees them."""
        listed: list[dict[str, Any]] = json.loads(self.mpki("request", "list", "--json", "--limit", "1000"))
        return listed


def read_accounts(path: Path) -> dict[str, Account]:
    """`email<TAB>role<TAB>password` lines (comments skipped), keyed by role."""
    accounts: dict[str, Account] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            email, role, password = line.split("\t")
            accounts[role] = Account(email, role, password)
    return accounts


@contextmanager
def dev_server(home: Path) -> Iterator[ServerWorld]:
    """`mpki init --dev` in a fresh home, then `mpki serve` on a free port until the block ends."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MPKI_")}
    env = base_env | {
        "MPKI_HOME": str(home),
        "MPKI_DATABASE_URL": f"sqlite:///{home / 'mpki.sqlite3'}",
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    home.mkdir(parents=True, exist_ok=True)
    init = subprocess.run([sys.executable, "-m", "mpki", "init", "--dev"], env=env, capture_output=True, timeout=120)
    assert init.returncode == 0, init.stderr.decode()
    accounts = read_accounts(home / "dev-portal-accounts.txt")
    with running_server(env, home / "serve.log") as base:
        yield ServerWorld(base, home, env, accounts)


def screenshot_name(test_name: str, step: str) -> str:
    """`<test-name>-<step>.png`, with anything but letters, digits, dot, dash and underscore made a dash."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{test_name}-{step}").strip("-") + ".png"


def sign_in(page: Page, base: str, account: Account) -> None:
    """Sign in through the login form, as a person would, and wait for the portal home."""
    page.goto(f"{base}/portal/login")
    page.locator("#email").fill(account.email)
    page.locator("#password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/portal/")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def download_text(page: Page, link_name: str) -> tuple[str, str]:
    """Click the link that downloads a file; its suggested file name and its text."""
    with page.expect_download() as info:
        page.get_by_role("link", name=link_name).click()
    download: Download = info.value
    path = download.path()
    return download.suggested_filename, Path(path).read_text()
