"""The client side of the signer's socket: the same calls as `SigningService`, made over the wire.

One connection per client, reused for every request and guarded by a lock, so a chunk of a thousand
certificates is one round trip on an open connection.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mpki.domain import KeyStoreError
from mpki.keys import KeyAlgorithm, KeyInfo
from mpki.keys.purposes import Purpose
from mpki.keys.quorum import CustodianShare
from mpki.signer import messages
from mpki.signer.checkpoints import SignedCheckpoint
from mpki.signer.service import ActivationResult, SignerStatus
from mpki.signer.wire import WireError, read_message, send_message


def signer_listening(path: Path) -> bool:
    """Whether a signer answers on `path` (a socket file a dead signer left does not count)."""
    if not path.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


class SignerClient:
    """Talks to `mpki signer` over its Unix socket."""

    remote = True

    def __init__(self, path: Path, timeout: float = 120.0) -> None:
        self.path = path
        self.timeout = timeout
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    def _connect(self) -> socket.socket:
        if self._socket is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
            except OSError as error:
                sock.close()
                raise KeyStoreError(
                    f"cannot reach the signer at {self.path} ({error.strerror}): is `mpki signer` running?"
                ) from None
            self._socket = sock
        return self._socket

    def _call(self, header: dict[str, Any], blobs: Sequence[bytes] = ()) -> tuple[dict[str, Any], list[bytes]]:
        reply: tuple[dict[str, Any], list[bytes]] | None = None
        with self._lock:
            for attempt in (1, 2):
                sock = self._connect()
                try:
                    send_message(sock, header, blobs)
                    reply = read_message(sock)
                    if reply is not None:
                        break
                except (OSError, WireError):
                    pass
                # A signer restarted since the last request: reconnect once, then give up.
                self.close_unlocked()
                if attempt == 2:
                    raise KeyStoreError(f"the signer at {self.path} stopped answering")
        assert reply is not None
        answer, payloads = reply
        if not answer.get("ok"):
            messages.raise_error(answer)
        return answer, payloads

    def close_unlocked(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def close(self) -> None:
        with self._lock:
            self.close_unlocked()

    def status(self) -> SignerStatus:
        answer, _ = self._call({"op": "status"})
        return messages.status_from_wire(answer["status"])

    def activate(self, shares: Sequence[CustodianShare], passphrases: Mapping[str, str] | None) -> ActivationResult:
        wire_shares = [messages.share_to_wire(share) for share in shares]
        answer, _ = self._call({"op": "activate", "shares": wire_shares, "passphrases": dict(passphrases or {})})
        return messages.activation_from_wire(answer["activation"])

    def deactivate(self, group: str | None = None) -> list[str]:
        answer, _ = self._call({"op": "deactivate", "group": group})
        return [str(name) for name in answer["groups"]]

    def active_groups(self) -> list[str]:
        return list(self.status().active_groups)

    def is_active(self) -> bool:
        answer, _ = self._call({"op": "active"})
        return bool(answer["active"])

    def list_keys(self) -> list[KeyInfo]:
        answer, _ = self._call({"op": "keys"})
        return [messages.info_from_wire(item) for item in answer["keys"]]

    def info(self, key_id: str) -> KeyInfo:
        answer, _ = self._call({"op": "info", "key_id": key_id})
        return messages.info_from_wire(answer["key"])

    def generate(self, label: str, algorithm: KeyAlgorithm, token: str | None, purposes: frozenset[Purpose]) -> KeyInfo:
        header = {
            "op": "generate",
            "label": label,
            "algorithm": algorithm.value,
            "token": token,
            "purposes": sorted(p.value for p in purposes),
        }
        answer, _ = self._call(header)
        return messages.info_from_wire(answer["key"])

    def sign(self, key_id: str, purpose: Purpose, hash_name: str, payloads: Sequence[bytes]) -> list[bytes]:
        header = {"op": "sign", "key_id": key_id, "purpose": purpose.value, "hash": hash_name}
        _, signatures = self._call(header, payloads)
        if len(signatures) != len(payloads):
            raise KeyStoreError("the signer answered with the wrong number of signatures")
        return signatures

    def checkpoint(self, sequence: int, chain_hash: str) -> SignedCheckpoint:
        answer, _ = self._call({"op": "checkpoint", "sequence": sequence, "chain_hash": chain_hash})
        return SignedCheckpoint.from_json(answer["checkpoint"])
