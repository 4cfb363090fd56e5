"""The installation's record of its quorum groups and HSM tokens: public facts only.

For each quorum group: its role, its policy, the ceremony that made it, and a check value that
recognises the rebuilt secret without revealing it. For each PKCS#11 token: the activation group whose
secret derives its user PIN (`tokens`) and the token-admin group whose secret derives its SO PIN
(`token_admins`). `MPKI_HOME/keys/custody.json`:

    {"groups": {"ca-keys": {"role": "activation", "threshold": 3, "shares": 5, "ceremony": "...",
                            "check": "<hex>"},
                "backup": {"role": "backup", ...}, "token-admin": {"role": "token-admin", ...}},
     "tokens": {"smki-root": "ca-keys"},
     "token_admins": {"smki-root": "token-admin"}}

A group written before roles existed has no `role` and is an activation group.
"""

from __future__ import annotations

import enum
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpki.domain import KeyStoreError, NotFound
from mpki.keys.quorum import QuorumError
from mpki.keys.secrets import check_value

REGISTRY_FILE = "custody.json"


class GroupRole(enum.StrEnum):
    """What a quorum group's secret is for; each derives only its own keys (see `keys.secrets`)."""

    ACTIVATION = "activation"  # user PINs and the software KEK: the keys sign
    BACKUP = "backup"  # the backup key: backups are sealed and opened
    TOKEN_ADMIN = "token-admin"  # SO PINs: tokens are initialised

    @property
    def task(self) -> str:
        return _TASKS[self]


_TASKS = {
    GroupRole.ACTIVATION: "activating keys",
    GroupRole.BACKUP: "backing up, restoring or cloning keys",
    GroupRole.TOKEN_ADMIN: "initialising a token",
}


@dataclass(frozen=True, slots=True)
class GroupRecord:
    group: str
    threshold: int
    shares: int
    ceremony: str
    check: str
    role: GroupRole = GroupRole.ACTIVATION


class CustodyRegistry:
    """Reads and writes `MPKI_HOME/keys/custody.json`."""

    def __init__(self, keys_dir: Path) -> None:
        self.path = keys_dir / REGISTRY_FILE

    def _load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"groups": {}, "tokens": {}, "token_admins": {}}
        data: dict[str, Any] = json.loads(self.path.read_text())
        data.setdefault("token_admins", {})
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    def register_group(
        self, group: str, threshold: int, shares: int, ceremony: str, secret: bytes, *, role: GroupRole
    ) -> None:
        data = self._load()
        if group in data["groups"]:
            raise KeyStoreError(f"quorum group {group!r} already exists")
        data["groups"][group] = {
            "role": role.value,
            "threshold": threshold,
            "shares": shares,
            "ceremony": ceremony,
            "check": check_value(secret, group),
        }
        self._save(data)

    def register_token(self, label: str, group: str, *, token_admin: str) -> None:
        """A token whose user PIN comes from activation group `group` and SO PIN from `token_admin`."""
        self.require_role(group, GroupRole.ACTIVATION)
        self.require_role(token_admin, GroupRole.TOKEN_ADMIN)
        data = self._load()
        if label in data["tokens"]:
            raise KeyStoreError(f"token {label!r} is already registered")
        data["tokens"][label] = group
        data["token_admins"][label] = token_admin
        self._save(data)

    def groups(self) -> list[GroupRecord]:
        return [_record(name, fields) for name, fields in sorted(self._load()["groups"].items())]

    def groups_with_role(self, role: GroupRole) -> list[GroupRecord]:
        return [record for record in self.groups() if record.role is role]

    def only_group(self, role: GroupRole) -> GroupRecord:
        """The installation's one group of `role` (its backup group, its token-admin group)."""
        found = self.groups_with_role(role)
        if not found:
            raise NotFound(f"this installation has no {role.value} quorum group; its key ceremony makes one")
        if len(found) > 1:
            raise KeyStoreError(f"several {role.value} groups ({', '.join(g.group for g in found)}): name one")
        return found[0]

    def require_role(self, group: str, role: GroupRole) -> GroupRecord:
        """The group's record; QuorumError if its secret is for something else than `role`'s task."""
        record = self.group(group)
        if record.role is not role:
            raise QuorumError(
                f"quorum group {group!r} has the {record.role.value} role;"
                f" {role.task} needs shares of the {role.value} group"
            )
        return record

    def group(self, name: str) -> GroupRecord:
        for record in self.groups():
            if record.group == name:
                return record
        raise NotFound(f"no quorum group {name!r} in this installation")

    def tokens(self) -> dict[str, str]:
        return dict(self._load()["tokens"])

    def token_admin_of(self, label: str) -> str:
        """The token-admin group whose secret derives the token's SO PIN."""
        admins: dict[str, str] = self._load()["token_admins"]
        if label not in admins:
            raise NotFound(f"token {label!r} has no token-admin group registered in this installation")
        return admins[label]

    def group_of_token(self, label: str) -> str:
        tokens = self.tokens()
        if label not in tokens:
            raise NotFound(f"token {label!r} is not registered in this installation")
        return tokens[label]

    def recognises(self, group: str, secret: bytes, role: GroupRole = GroupRole.ACTIVATION) -> bool:
        """Whether `secret` is the group's. A group of another role than `role` is refused outright
        (QuorumError): backup or token-admin shares never activate keys, nor the reverse."""
        record = self.require_role(group, role)
        return hmac.compare_digest(record.check, check_value(secret, group))


def _record(name: str, fields: dict[str, Any]) -> GroupRecord:
    role = GroupRole(fields.get("role", GroupRole.ACTIVATION.value))
    return GroupRecord(
        group=name,
        threshold=int(fields["threshold"]),
        shares=int(fields["shares"]),
        ceremony=str(fields["ceremony"]),
        check=str(fields["check"]),
        role=role,
    )
