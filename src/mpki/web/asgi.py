"""ASGI entry point for uvicorn and other servers: `mpki.web.asgi:application` (a factory)."""

from __future__ import annotations

from fastapi import FastAPI

from mpki.ca.runtime import open_authority
from mpki.config import load_settings
from mpki.web.app import create_app


def application() -> FastAPI:
    """Build the app from the environment's settings (MPKI_HOME, MPKI_DATABASE_URL, …)."""
    return create_app(open_authority(load_settings()))
