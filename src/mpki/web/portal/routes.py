"""Every portal section's router, in menu order. Each section lives in its own module."""

from __future__ import annotations

from fastapi import APIRouter

from mpki.web.portal import admin, agent, reports_pages, subscriber


def portal_routers() -> list[APIRouter]:
    return [subscriber.router, agent.router, reports_pages.router, admin.router]
