"""Bootstrap and reinitialise (seed 000, Part K): the live ceremony for an environment, and the clean
slate a test environment needs before its second run. Production refuses the clean slate."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from mpki.audit import export_jsonl, verify_chain
from mpki.ca import CertificationAuthority
from mpki.ca.custody import prove_signs_for
from mpki.ca.runtime import open_database, open_keystore
from mpki.ceremony.dev import DEV_UNWRAP_KEY
from mpki.ceremony.installation import FILE as INSTALLATION_FILE
from mpki.ceremony.installation import bound_values, unbind_installation
from mpki.ceremony.runner import CeremonyResult, StepHook, run_ceremony
from mpki.ceremony.spec import CeremonySpec
from mpki.config import Environment, load_settings
from mpki.domain import InvalidRequest, MpkiError
from mpki.keys.registry import CustodyRegistry
from mpki.store import CaRepository, wipe


@dataclass(frozen=True, slots=True)
class BootstrapReport:
    ceremony: CeremonyResult
    checks: tuple[str, ...]


def bootstrap(
    spec: CeremonySpec, env: Mapping[str, str], shares_dir: Path, record: Path, on_step: StepHook | None = None
) -> BootstrapReport:
    """Check the installation is empty, run the ceremony, then prove what it made works."""
    settings = load_settings(env)
    database = open_database(settings)
    try:
        with database.reader() as session:
            existing = [ca.name for ca in CaRepository(session).all()]
    finally:
        database.dispose()
    if existing:
        raise InvalidRequest(
            f"this installation is bootstrapped already ({', '.join(existing)}); "
            "`mpki reinitialise` first (never in production)"
        )
    result = run_ceremony(spec, env, shares_dir, record, on_step=on_step)
    checks = []
    settings = load_settings(env)
    # Proved with the ceremony's own keys: in production no secret outlives it, and no signer knows it yet.
    keys = result.keys if result.keys is not None else open_keystore(settings)
    authority = CertificationAuthority(settings, open_database(settings), keys)
    try:
        for view in result.cas:
            prove_signs_for(authority.keystore, view.key_id, x509.load_der_x509_certificate(view.certificate_der))
            checks.append(f"{view.name}: key signs under its certificate")
        verdict = verify_chain(authority.database)
        if not verdict.ok:
            raise MpkiError(f"audit chain broken after bootstrap: {verdict.reason}")
        checks.append(f"audit chain verifies ({verdict.events} events)")
    finally:
        authority.database.dispose()
    return BootstrapReport(result, tuple(checks))


def reinitialise(env: Mapping[str, str]) -> list[str]:
    """Archive the audit trail, then wipe the database, keys, activations and SoftHSM2 tokens."""
    settings = load_settings(env)
    bound = bound_values(settings.home).get("environment")
    if settings.environment is Environment.PRODUCTION or bound == Environment.PRODUCTION.value:
        raise InvalidRequest("refusing to reinitialise an environment marked production")
    done = []
    database = open_database(settings)
    try:
        archive = settings.home / "archive"
        archive.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = archive / f"audit-{stamp}.jsonl"
        with target.open("x", encoding="utf-8") as handle:  # never overwrite an earlier archive
            count = export_jsonl(database, handle)
        done.append(f"archived {count} audit events to {target}")
        wipe(database)
        done.append("dropped the database tables")
    finally:
        database.dispose()
    for label in CustodyRegistry(settings.keys_dir).tokens():
        done.append(_delete_token(settings.pkcs11_module, label))
    for path in (settings.keys_dir, settings.run_dir, settings.home / "dev-shares"):
        if path.exists():
            shutil.rmtree(path)
            done.append(f"removed {path}")
    for leftover in (settings.home / "dev-ceremony-record.json", settings.home / DEV_UNWRAP_KEY):
        if leftover.exists():
            leftover.unlink()
            done.append(f"removed {leftover}")
    if unbind_installation(settings.home):
        done.append(f"removed the ceremony's keystore and environment binding from {settings.home / INSTALLATION_FILE}")
    return done


def _delete_token(module: str, label: str) -> str:
    if "softhsm" not in module:
        return f"token {label}: re-initialise it with the HSM's own tools (not SoftHSM2)"
    completed = subprocess.run(
        ["softhsm2-util", "--delete-token", "--token", label], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        return f"token {label}: not deleted ({completed.stderr.strip() or completed.stdout.strip()})"
    return f"deleted SoftHSM2 token {label}"
