"""Wiring one installation together: settings -> database (migrated) -> signer -> CA."""

from __future__ import annotations

from mpki.audit import AuditAnchoring, install
from mpki.audit.anchoring import installed
from mpki.ca.authority import CertificationAuthority
from mpki.config import Settings
from mpki.domain import ConfigError
from mpki.signer.connect import open_signer, open_signing_keys
from mpki.signer.service import create_passphrase_keystore
from mpki.signer.signing_keys import Signer, SigningKeys
from mpki.store import Database, is_current, upgrade


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    database = Database(settings.resolved_database_url)
    database.check_connection()
    if migrate and not is_current(database):
        upgrade(database)
    anchor_audit(settings, database)
    return database


def anchor_audit(settings: Settings, database: Database) -> AuditAnchoring | None:
    """Once per process, where the installation anchors its audit chain outside the database (an anchor
    directory, a syslog target, or both), forward its events and have the signer sign checkpoints."""
    if settings.audit_anchor_dir is None and settings.audit_syslog is None:
        return None
    current = installed()
    if current is not None and current.watches_database(database.url):
        return current
    try:
        signer: Signer | None = open_signer(settings)
    except ConfigError:
        signer = None  # production before its signer runs (a ceremony): syslog now, checkpoints later
    anchoring = AuditAnchoring.from_settings(settings, database, signer)
    previous = install(anchoring)
    if previous is not None:
        previous.close()
    return anchoring


def open_keystore(settings: Settings) -> SigningKeys:
    """The installation's keys, through `mpki signer` when it runs (in production, only then)."""
    return open_signing_keys(settings)


def open_authority(settings: Settings, *, create_keystore: bool = False) -> CertificationAuthority:
    """Open (or with `create_keystore`, initialise a passphrase keystore for) everything the CA needs."""
    # The keystore first: a command run before `mpki init` must not leave an empty database behind.
    if create_keystore:
        create_passphrase_keystore(settings)
    return CertificationAuthority(settings, open_database(settings), open_keystore(settings))
