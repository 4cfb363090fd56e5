"""Wiring one installation together: settings -> database (migrated) -> keystore -> CA."""

from __future__ import annotations

from mpki.ca.authority import CertificationAuthority
from mpki.config import Environment, Settings
from mpki.domain import ConfigError
from mpki.keys import SoftwareKeyStore
from mpki.store import Database, is_current, upgrade

# Development only: `mpki init --dev` says so loudly, and production refuses it.
DEV_PASSPHRASE = "insecure-development-passphrase"


def kek_passphrase(settings: Settings) -> str:
    if settings.kek_passphrase:
        return settings.kek_passphrase
    if settings.environment is Environment.PRODUCTION:
        raise ConfigError("MPKI_KEK_PASSPHRASE is required in production")
    return DEV_PASSPHRASE


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    database = Database(settings.resolved_database_url)
    database.check_connection()
    if migrate and not is_current(database):
        upgrade(database)
    return database


def open_authority(settings: Settings, *, create_keystore: bool = False) -> CertificationAuthority:
    """Open (or with `create_keystore`, initialise) everything the CA needs."""
    passphrase = kek_passphrase(settings)
    # The keystore first: a command run before `mpki init` must not leave an empty database behind.
    if create_keystore and not SoftwareKeyStore.exists(settings.keys_dir):
        keystore = SoftwareKeyStore.create(settings.keys_dir, passphrase)
    else:
        keystore = SoftwareKeyStore.open(settings.keys_dir, passphrase)
    return CertificationAuthority(settings, open_database(settings), keystore)
