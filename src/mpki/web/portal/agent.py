"""Portal section: agent (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/portal", include_in_schema=False)
