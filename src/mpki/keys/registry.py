"""The installation's record of its quorum groups and HSM tokens: public facts only.

For each quorum group: its policy, the ceremony that made it, and a check value that recognises the
rebuilt secret without revealing it. For each PKCS#11 token: the group whose secret derives its PIN.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpki.domain import KeyStoreError, NotFound
from mpki.keys.secrets import check_value

REGISTRY_FILE = "custody.json"


@dataclass(frozen=True, slots=True)
class GroupRecord:
    group: str
    threshold: int
    shares: int
    ceremony: str
    check: str


class CustodyRegistry:
    """Reads and writes `MPKI_HOME/keys/custody.json`."""

    def __init__(self, keys_dir: Path) -> None:
        self.path = keys_dir / REGISTRY_FILE

    def _load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"groups": {}, "tokens": {}}
        data: dict[str, Any] = json.loads(self.path.read_text())
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    def register_group(self, group: str, threshold: int, shares: int, ceremony: str, secret: bytes) -> None:
        data = self._load()
        if group in data["groups"]:
            raise KeyStoreError(f"quorum group {group!r} already exists")
        data["groups"][group] = {
            "threshold": threshold,
            "shares": shares,
            "ceremony": ceremony,
            "check": check_value(secret, group),
        }
        self._save(data)

    def register_token(self, label: str, group: str) -> None:
        data = self._load()
        if group not in data["groups"]:
            raise NotFound(f"no quorum group {group!r}")
        if label in data["tokens"]:
            raise KeyStoreError(f"token {label!r} is already registered")
        data["tokens"][label] = group
        self._save(data)

    def groups(self) -> list[GroupRecord]:
        return [GroupRecord(group=name, **fields) for name, fields in sorted(self._load()["groups"].items())]

    def group(self, name: str) -> GroupRecord:
        for record in self.groups():
            if record.group == name:
                return record
        raise NotFound(f"no quorum group {name!r} in this installation")

    def tokens(self) -> dict[str, str]:
        return dict(self._load()["tokens"])

    def group_of_token(self, label: str) -> str:
        tokens = self.tokens()
        if label not in tokens:
            raise NotFound(f"token {label!r} is not registered in this installation")
        return tokens[label]

    def recognises(self, group: str, secret: bytes) -> bool:
        return hmac.compare_digest(self.group(group).check, check_value(secret, group))
