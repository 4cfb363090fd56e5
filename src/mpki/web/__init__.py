"""The ASGI app: REST API under /api/v1 and the public endpoints."""

from mpki.web.app import create_app

__all__ = ["create_app"]
