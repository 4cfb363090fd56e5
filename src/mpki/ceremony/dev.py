"""The development ceremony behind `mpki init --dev`: an SMKI root with Organisation and Device issuing
CAs, and a TLS root with an issuing CA.

INSECURE by design: software keys, a 2-of-3 quorum whose three shares are written side by side into
`MPKI_HOME/dev-shares`, and the keystore left activated. The backup group and the token-admin group
(2 of 3 each, their own dev custodians) are made too, their shares in `dev-shares` beside the others
(`*-backup-share-*`, `*-token-admin-share-*`): software keys have no SO PIN, but a dev installation
has the same groups as a real one. The apex (the SMKI root) carries a contingency
key made behind its own 3-of-5 quorum (shares in `dev-shares` too) with its unwrap key in
`MPKI_HOME/dev-contingency-unwrap-key.json`. It runs the same ceremony code as a real one,
so a newcomer has a working PKI in seconds and sees what a ceremony records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mpki.ca import CaView, CertificationAuthority
from mpki.ceremony.runner import CeremonyResult, StepHook, run_ceremony
from mpki.ceremony.spec import BACKUP_GROUP, TOKEN_ADMIN_GROUP, CaStep, CeremonySpec, ContingencyStep, GroupStep, People
from mpki.domain import InvalidRequest
from mpki.keys import KeyAlgorithm
from mpki.keys.contingency import GROUP as CONTINGENCY_GROUP
from mpki.keys.quorum import QuorumPolicy
from mpki.keys.registry import GroupRole


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
        "tls-issuing", "tls-issuing", "mpki Dev TLS Issuing CA", parent="tls-root", issues=("tls-server", "tls-client")
    ),
)

ACTOR = "mpki-init-dev"
# Development only: the contingency unwrap key sits in MPKI_HOME; a real one goes to offline storage.
DEV_UNWRAP_KEY = "dev-contingency-unwrap-key.json"
DEV_CEREMONY = "development-insecure"


def dev_spec() -> CeremonySpec:
    return CeremonySpec(
        ceremony=DEV_CEREMONY,
        environment="development",
        backend="software",
        people=People(
            key_manager="dev-key-manager",
            custodians=("dev-custodian-1", "dev-custodian-2", "dev-custodian-3"),
            witnesses=("dev-witness",),
            auditor="dev-auditor",
        ),
        quorum=QuorumPolicy(group="ca-keys", threshold=2, shares=3),
        tokens=(),
        backup=GroupStep(
            role=GroupRole.BACKUP,
            custodians=tuple(f"dev-backup-custodian-{n}" for n in range(1, 4)),
            quorum=QuorumPolicy(group=BACKUP_GROUP, threshold=2, shares=3),
        ),
        token_admin=GroupStep(
            role=GroupRole.TOKEN_ADMIN,
            custodians=tuple(f"dev-token-admin-{n}" for n in range(1, 4)),
            quorum=QuorumPolicy(group=TOKEN_ADMIN_GROUP, threshold=2, shares=3),
        ),
        cas=tuple(
            CaStep(p.name, p.profile, p.common_name, KeyAlgorithm.EC_P256, p.parent, None, p.issues)
            for p in DEV_HIERARCHY
        ),
        record_signer="smki-root",
        source=b"mpki built-in development ceremony (insecure)\n",
        contingency=ContingencyStep(
            apex="smki-root",
            custodians=tuple(f"dev-contingency-custodian-{n}" for n in range(1, 6)),
            quorum=QuorumPolicy(group=CONTINGENCY_GROUP, threshold=3, shares=5),
        ),
    )


def run_dev_ceremony(env: Mapping[str, str], home: Path, on_step: StepHook | None = None) -> CeremonyResult:
    """The development hierarchy through the real ceremony path (shares in MPKI_HOME/dev-shares)."""
    return run_ceremony(
        dev_spec(),
        env,
        home / "dev-shares",
        home / "dev-ceremony-record.json",
        unwrap_key_path=home / DEV_UNWRAP_KEY,
        on_step=on_step,
    )


def create_dev_hierarchy(
    authority: CertificationAuthority, on_created: Callable[[CaView], None] | None = None
) -> list[CaView]:
    """The same CAs straight through the CA, for tests and benchmarks that bring their own keystore."""
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
