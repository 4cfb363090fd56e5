"""Portal section: reports_pages (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/portal", include_in_schema=False)
