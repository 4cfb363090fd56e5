"""Portal accounts for the development hierarchy: one demo organisation and a person of each main role,
with random passwords written beside the dev shares (as insecure as they are, and said so)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from mpki.domain import Role
from mpki.ra import OPERATOR, Directory
from mpki.store import Database

DEMO_ORGANISATION = "Demo Energy Supplier"
DEMO_EUI64 = "90B3D51F30000001"
ACCOUNTS_FILE = "dev-portal-accounts.txt"


@dataclass(frozen=True, slots=True)
class DevAccount:
    email: str
    role: Role
    password: str


def create_dev_accounts(database: Database, home: Path) -> tuple[Path, list[DevAccount]]:
    directory = Directory(database)
    directory.create_organisation(OPERATOR, DEMO_ORGANISATION, [DEMO_EUI64], ["supplier"])
    wanted = [
        ("admin@dev.mpki.invalid", Role.SERVICE_ADMIN, None),
        ("agent@dev.mpki.invalid", Role.RA_AGENT, None),
        ("auditor@dev.mpki.invalid", Role.AUDITOR, None),
        ("subscriber@dev.mpki.invalid", Role.AUTHORISED_SUBSCRIBER, DEMO_ORGANISATION),
    ]
    accounts = []
    for email, role, organisation in wanted:
        password = secrets.token_urlsafe(12)
        directory.create_person(OPERATOR, email, role, organisation, password)
        accounts.append(DevAccount(email, role, password))
    path = home / ACCOUNTS_FILE
    lines = ["# INSECURE development portal accounts (sign in at /portal/login)"]
    lines += [f"{account.email}\t{account.role.value}\t{account.password}" for account in accounts]
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return path, accounts
