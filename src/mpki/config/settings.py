"""One frozen Settings object, read once per process from env vars and an optional TOML file.

Environment variables win over the file so that operators and tests can override a single value.
"""

from __future__ import annotations

import enum
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from mpki.domain import ConfigError

# DCC test-PKI values seen in the reference certificates; production uses its own OIDs (SMKI.md).
DCC_TEST_POLICY_OID = "1.2.826.0.1.8641679.1.2.1.4"
DCC_TEST_HW_TYPE_OID = "1.2.826.0.1.8641679.1.2.2.1"


class Environment(enum.StrEnum):
    """Where this installation runs; production refuses destructive development shortcuts."""

    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


@dataclass(frozen=True)
class SmkiSettings:
    """Per-environment SMKI values that differ between the DCC test and production PKIs."""

    org_policy_oids: tuple[str, ...] = (DCC_TEST_POLICY_OID,)
    device_policy_oids: tuple[str, ...] = (DCC_TEST_POLICY_OID,)
    ca_policy_oids: tuple[str, ...] = (DCC_TEST_POLICY_OID,)
    hw_type_oid: str = DCC_TEST_HW_TYPE_OID
    org_validity_years: int = 10
    ca_validity_years: int = 25
    root_validity_years: int = 30
    # Roles an organisation certificate may carry; 00 (root) and 07 (issuing authority) belong to CAs.
    org_roles: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 127)


@dataclass(frozen=True)
class StatusSettings:
    """How often status is re-published and for how long what is published stays valid."""

    # Full CRLs and ARLs: nextUpdate after thisUpdate, and how often a fresh one is issued on schedule.
    crl_next_update_hours: int = 168
    crl_refresh_hours: int = 24
    # Delta CRLs, relative to the newest full CRL.
    delta_next_update_hours: int = 24
    delta_refresh_minutes: int = 60
    # Pre-signed OCSP responses: their validity, and the age at which they are signed again.
    ocsp_next_update_hours: int = 72
    ocsp_refresh_hours: int = 24
    # Delegated responder certificates: lifetime, and how long before expiry a successor is issued.
    ocsp_responder_days: int = 30
    ocsp_responder_renew_days: int = 7
    # Responses each serving process keeps in memory.
    ocsp_cache_entries: int = 500_000
    # How often the maintenance loop in `mpki serve` looks for work, and how often caches re-check revocations.
    maintenance_seconds: int = 60
    cache_poll_seconds: int = 2
    # Change detection reads revocation times stamped before commit: look back this far past the last poll.
    change_overlap_seconds: int = 300
    # A delta CRL starts this long before its base was built, so no revocation falls between the two.
    delta_overlap_minutes: int = 5
    # How long HTTP caches may keep a CRL or an OCSP GET answer (both are re-issued on revocation).
    http_max_age_seconds: int = 300
    # How long an `unknown` OCSP answer is remembered (it is cheap to repeat and may be issued soon).
    ocsp_unknown_cache_seconds: int = 60


@dataclass(frozen=True)
class ReportSettings:
    """Service-level targets that issuance reports measure each organisation against."""

    # 95% of approved requests are decided within this long of their submission.
    approval_p95_hours: int = 24
    # 95% of approved requests are issued within this long of their approval.
    issuance_p95_minutes: int = 60
    # 95% of revocations appear in a published CRL within this long of the revocation.
    revocation_p95_minutes: int = 60
    # Scheduled reports: the last complete week and month are generated when missing, checked this often.
    schedule_check_minutes: int = 60


@dataclass(frozen=True)
class PortalSettings:
    """Web portal sign-in: lockout after repeated failures, session lifetimes."""

    # This many consecutive failed sign-ins lock the person out for `lockout_minutes`.
    max_failed_logins: int = 5
    lockout_minutes: int = 15
    # A session ends after this long without a request, and in any case after `session_max_hours`.
    session_idle_minutes: int = 30
    session_max_hours: int = 12


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one installation."""

    home: Path = Path("var")
    database_url: str | None = None
    environment: Environment = Environment.DEVELOPMENT
    public_url: str = "http://127.0.0.1:8000"
    kek_passphrase: str | None = None
    # "software" (sealed files under MPKI_HOME/keys) or "pkcs11" (an HSM; SoftHSM2 in development).
    keystore_backend: str = "software"
    pkcs11_module: str = "/usr/lib/softhsm/libsofthsm2.so"
    # Where activated quorum secrets are kept until deactivation; a tmpfs in production.
    run_dir_override: Path | None = None
    # The signer's Unix socket (`mpki signer`); default `<run dir>/signer.sock`.
    signer_socket_override: Path | None = None
    # Audit anchoring outside the database: an append-only directory of signed checkpoints, a
    # checkpoint at least every `audit_checkpoint_events` events and `audit_checkpoint_seconds` seconds,
    # and an optional RFC 5424 syslog target ("tcp://host:port" or "unix:/path/to/socket").
    audit_anchor_dir: Path | None = None
    audit_checkpoint_events: int = 1000
    audit_checkpoint_seconds: int = 300
    audit_syslog: str | None = None
    smki: SmkiSettings = field(default_factory=SmkiSettings)
    tls_leaf_validity_days: int = 397
    tls_ca_validity_years: int = 10
    # Issuance is committed in chunks: serials reserved, signed, stored; bounded loss on a crash.
    issuance_chunk_size: int = 1000
    # A reservation left by a live process younger than this is never abandoned by reconciliation.
    reservation_lease_seconds: int = 600
    status: StatusSettings = field(default_factory=StatusSettings)
    reports: ReportSettings = field(default_factory=ReportSettings)
    portal: PortalSettings = field(default_factory=PortalSettings)

    @property
    def resolved_database_url(self) -> str:
        """`MPKI_DATABASE_URL`, or SQLite under `MPKI_HOME`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'mpki.sqlite3').resolve()}"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def run_dir(self) -> Path:
        return self.run_dir_override or self.home / "run"

    @property
    def signer_socket(self) -> Path:
        return self.signer_socket_override or self.run_dir / "signer.sock"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _tuple_of_str(value: object, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"setting {name} must be a list of strings")


def _int(value: object, name: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(f"setting {name} must be a whole number, not {value!r}") from None


def _smki_from(raw: Mapping[str, object], base: SmkiSettings) -> SmkiSettings:
    changes: dict[str, Any] = {}
    for key in ("org_policy_oids", "device_policy_oids", "ca_policy_oids"):
        if key in raw:
            changes[key] = _tuple_of_str(raw[key], key)
    if "hw_type_oid" in raw:
        changes["hw_type_oid"] = str(raw["hw_type_oid"])
    for key in ("org_validity_years", "ca_validity_years", "root_validity_years"):
        if key in raw:
            changes[key] = _int(raw[key], key)
    if "org_roles" in raw:
        changes["org_roles"] = tuple(_int(v, "org_roles") for v in _tuple_of_str(raw["org_roles"], "org_roles"))
    return replace(base, **changes)


_Section = TypeVar("_Section", "StatusSettings", "ReportSettings", "PortalSettings")


def _positive_section(base: _Section, name: str, env: Mapping[str, str], file_values: Mapping[str, Any]) -> _Section:
    """A settings section of whole numbers, each at least 1: the `[name]` table, then `MPKI_NAME_*` variables."""
    table = file_values.get(name, {})
    changes: dict[str, int] = {}
    for key in base.__dataclass_fields__:
        env_key = f"MPKI_{name.upper()}_{key.upper()}"
        raw = env.get(env_key, table.get(key) if isinstance(table, dict) else None)
        if raw is not None:
            changes[key] = _int(raw, env_key)
            if changes[key] < 1:
                raise ConfigError(f"{env_key} must be at least 1")
    return replace(base, **changes)


def _path_setting(env: Mapping[str, str], file_values: Mapping[str, Any], env_key: str, file_key: str) -> Path | None:
    raw = env.get(env_key) or file_values.get(file_key)
    return Path(str(raw)) if raw else None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings: defaults, then `MPKI_HOME/mpki.toml`, then `MPKI_*` environment variables."""
    env = os.environ if env is None else env
    home = Path(env.get("MPKI_HOME", "var"))
    file_values: dict[str, Any] = {}
    config_file = Path(env.get("MPKI_CONFIG", str(home / "mpki.toml")))
    if config_file.is_file():
        try:
            file_values = tomllib.loads(config_file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: {exc}") from None

    environment_name = env.get("MPKI_ENVIRONMENT", str(file_values.get("environment", "development")))
    try:
        environment = Environment(environment_name)
    except ValueError:
        raise ConfigError("MPKI_ENVIRONMENT must be one of development, test, production") from None

    smki = SmkiSettings()
    smki_tables = file_values.get("smki", {})
    if isinstance(smki_tables, dict):
        smki = _smki_from(smki_tables, smki)
        per_env = smki_tables.get(environment.value)
        if isinstance(per_env, dict):
            smki = _smki_from(per_env, smki)
    env_smki = {
        key.removeprefix("MPKI_SMKI_").lower(): value for key, value in env.items() if key.startswith("MPKI_SMKI_")
    }
    smki = _smki_from(env_smki, smki)

    settings = Settings(
        home=home,
        database_url=env.get("MPKI_DATABASE_URL", file_values.get("database_url")),
        environment=environment,
        public_url=env.get("MPKI_PUBLIC_URL", str(file_values.get("public_url", Settings.public_url))),
        kek_passphrase=env.get("MPKI_KEK_PASSPHRASE", file_values.get("kek_passphrase")),
        smki=smki,
        keystore_backend=env.get("MPKI_KEYSTORE", str(file_values.get("keystore", "software"))),
        pkcs11_module=env.get("MPKI_PKCS11_MODULE", str(file_values.get("pkcs11_module", Settings.pkcs11_module))),
        run_dir_override=Path(env["MPKI_RUN_DIR"]) if env.get("MPKI_RUN_DIR") else None,
        signer_socket_override=_path_setting(env, file_values, "MPKI_SIGNER_SOCKET", "signer_socket"),
        audit_anchor_dir=_path_setting(env, file_values, "MPKI_AUDIT_ANCHOR_DIR", "audit_anchor_dir"),
        audit_syslog=env.get("MPKI_AUDIT_SYSLOG", file_values.get("audit_syslog")) or None,
    )
    if settings.keystore_backend not in ("software", "pkcs11"):
        raise ConfigError("MPKI_KEYSTORE must be software or pkcs11")
    numbers: dict[str, Any] = {}
    for key in (
        "issuance_chunk_size",
        "reservation_lease_seconds",
        "tls_leaf_validity_days",
        "audit_checkpoint_events",
        "audit_checkpoint_seconds",
    ):
        env_key = f"MPKI_{key.upper()}"
        raw = env.get(env_key, file_values.get(key))
        if raw is not None:
            numbers[key] = _int(raw, env_key)
    settings = replace(settings, **numbers)
    settings = replace(settings, status=_positive_section(settings.status, "status", env, file_values))
    if settings.status.ocsp_refresh_hours >= settings.status.ocsp_next_update_hours:
        raise ConfigError("MPKI_STATUS_OCSP_REFRESH_HOURS must be below MPKI_STATUS_OCSP_NEXT_UPDATE_HOURS")
    if settings.status.ocsp_responder_renew_days >= settings.status.ocsp_responder_days:
        raise ConfigError(
            "MPKI_STATUS_OCSP_RESPONDER_RENEW_DAYS must be below MPKI_STATUS_OCSP_RESPONDER_DAYS "
            "(or every round would issue a new responder)"
        )
    if settings.status.crl_refresh_hours >= settings.status.crl_next_update_hours:
        raise ConfigError("MPKI_STATUS_CRL_REFRESH_HOURS must be below MPKI_STATUS_CRL_NEXT_UPDATE_HOURS")
    settings = replace(settings, reports=_positive_section(settings.reports, "reports", env, file_values))
    settings = replace(settings, portal=_positive_section(settings.portal, "portal", env, file_values))
    for key in ("issuance_chunk_size", "audit_checkpoint_events", "audit_checkpoint_seconds"):
        if getattr(settings, key) < 1:
            raise ConfigError(f"MPKI_{key.upper()} must be at least 1")
    if settings.audit_syslog and not settings.audit_syslog.startswith(("tcp://", "unix:")):
        raise ConfigError("MPKI_AUDIT_SYSLOG must be tcp://HOST:PORT or unix:/path/to/socket")
    return settings
