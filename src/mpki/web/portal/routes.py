"""Every portal section's router, in menu order. Each section lives in its own module."""

from __future__ import annotations

from fastapi import APIRouter


def portal_routers() -> list[APIRouter]:
    return []
