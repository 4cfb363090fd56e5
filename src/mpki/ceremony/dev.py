"""The development hierarchy: an SMKI root with Organisation and Device issuing CAs, and a TLS pair.

INSECURE by design: software keys under a known passphrase, no quorum, no witnesses. It exists so a
newcomer has a working PKI in seconds; real hierarchies are made in recorded ceremonies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mpki.ca import CaView, CertificationAuthority
from mpki.domain import InvalidRequest


@dataclass(frozen=True, slots=True)
class CaPlan:
    name: str
    profile: str
    common_name: str
    parent: str | None = None
    issues: tuple[str, ...] = ()


DEV_HIERARCHY: tuple[CaPlan, ...] = (
    CaPlan("smki-root", "smki-root", "mpki Dev SMKI Root"),
    CaPlan("smki-org-ca", "smki-issuing", "mpki Dev Org CA", parent="smki-root", issues=("smki-org",)),
    CaPlan("smki-device-ca", "smki-issuing", "mpki Dev Device CA", parent="smki-root", issues=("smki-device",)),
    CaPlan("tls-root", "tls-root", "mpki Dev TLS Root"),
    CaPlan(
        "tls-issuing",
        "tls-issuing",
        "mpki Dev TLS Issuing CA",
        parent="tls-root",
        issues=("tls-server", "tls-client"),
    ),
)

ACTOR = "mpki-init-dev"


def create_dev_hierarchy(
    authority: CertificationAuthority, on_created: Callable[[CaView], None] | None = None
) -> list[CaView]:
    """Create every CA of the plan; refuses if any already exists so nothing is half-made twice."""
    existing = {view.name for view in authority.list_cas()}
    clash = [plan.name for plan in DEV_HIERARCHY if plan.name in existing]
    if clash:
        raise InvalidRequest(f"the development hierarchy already exists ({', '.join(clash)})")
    made = []
    for plan in DEV_HIERARCHY:
        view = authority.create_ca(
            name=plan.name,
            profile_name=plan.profile,
            common_name=plan.common_name,
            parent=plan.parent,
            issues=plan.issues,
            actor=ACTOR,
        )
        made.append(view)
        if on_created:
            on_created(view)
    return made
