"""Fixtures for the browser tests: one Chromium per session, one `mpki serve` per test module, a fresh
browser context per test (laptop-sized unless a test asks for a phone), and `shot(page, name)` for the
screenshots kept in test-artifacts/screenshots/. Run only these with `pytest tests/browser`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, ViewportSize, sync_playwright

from tests.support.browser import (
    CHROMIUM,
    LAPTOP,
    SCREENSHOTS,
    STEP_TIMEOUT_MS,
    ServerWorld,
    dev_server,
    screenshot_name,
)

Shot = Callable[[Page, str], Path]
NewPage = Callable[..., Page]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test body failed, so its pages are photographed for the failure."""
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def chromium(playwright_driver: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless (Playwright's own browser download is not used). The last run's
    screenshots are cleared first, so the artefacts are this run's alone."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    browser = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerWorld]:
    """A development server for the module: `mpki init --dev` (demo organisation and accounts), then serve."""
    with dev_server(tmp_path_factory.mktemp("browser") / "home") as running:
        yield running


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shot:
    """`shot(page, "step")` saves a full-page PNG as test-artifacts/screenshots/<test-name>-<step>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / screenshot_name(request.node.name, name)
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def new_page(chromium: Browser, world: ServerWorld, request: pytest.FixtureRequest, shot: Shot) -> Iterator[NewPage]:
    """`new_page()` opens a page in a new context (its own cookies: one person each); `new_page(PHONE, mobile=True)`
    for a phone. Every context is closed after the test, and photographed first if the test failed."""
    opened: list[tuple[BrowserContext, Page]] = []

    def make(viewport: ViewportSize = LAPTOP, mobile: bool = False) -> Page:
        context = chromium.new_context(
            base_url=world.base, viewport=viewport, is_mobile=mobile, has_touch=mobile, accept_downloads=True
        )
        context.set_default_timeout(STEP_TIMEOUT_MS)
        page = context.new_page()
        opened.append((context, page))
        return page

    yield make
    failed = request.node.stash.get(_FAILED, False)
    for index, (context, page) in enumerate(opened):
        if failed and not page.is_closed():
            with contextlib.suppress(Exception):  # a failed photo must not hide the test's own failure
                shot(page, f"failure-{index}")
        context.close()


@pytest.fixture
def page(new_page: NewPage) -> Page:
    """A laptop-sized page, alone in its context."""
    return new_page()
