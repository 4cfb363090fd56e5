"""`mpki signer`: the signing service behind a local Unix socket, with a narrow set of requests.

The requests are: status, activate (shares in, nothing out but the group's name), deactivate, describe
keys, generate a key for stated purposes, sign to-be-signed bytes for a purpose, and sign an audit
checkpoint. There is no request that returns key material, wraps a key or carries a PIN. The socket is
created mode 0600 (0660 with a group) inside the run directory, so only the signer's own user (or that
group) can connect.
"""

from __future__ import annotations

import contextlib
import grp
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from mpki.domain import ConfigError, InvalidRequest, KeyStoreError, MpkiError
from mpki.keys import KeyAlgorithm
from mpki.keys.purposes import Purpose
from mpki.signer import messages
from mpki.signer.service import SigningService
from mpki.signer.wire import WireError, read_message, send_message

log = structlog.get_logger("mpki.signer")

Reply = tuple[dict[str, Any], list[bytes]]
# sockaddr_un holds 108 bytes on Linux (104 on the BSDs), the terminating NUL included.
MAX_SOCKET_PATH = 103


class _Dispatcher:
    """Maps each request to the service; every refusal goes back as an error kind and one line."""

    def __init__(self, service: SigningService) -> None:
        self.service = service
        self.handlers: dict[str, Callable[[dict[str, Any], list[bytes]], Reply]] = {
            "status": self._status,
            "activate": self._activate,
            "deactivate": self._deactivate,
            "active": self._active,
            "keys": self._keys,
            "info": self._info,
            "generate": self._generate,
            "sign": self._sign,
            "checkpoint": self._checkpoint,
        }

    def handle(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        handler = self.handlers.get(str(header.get("op")))
        if handler is None:
            return {
                "ok": False,
                "kind": "InvalidRequest",
                "error": f"the signer has no request {header.get('op')!r}",
            }, []
        try:
            return handler(header, blobs)
        except MpkiError as error:
            return {"ok": False, "kind": messages.error_kind(error), "error": str(error)}, []
        except (KeyError, TypeError, ValueError) as error:
            return {"ok": False, "kind": "InvalidRequest", "error": f"a malformed signer request: {error}"}, []

    def _status(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        return {"ok": True, "status": messages.status_to_wire(self.service.status())}, []

    def _activate(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        shares = [messages.share_from_wire(item) for item in header["shares"]]
        passphrases = {str(k): str(v) for k, v in dict(header.get("passphrases") or {}).items()}
        result = self.service.activate(shares, passphrases)
        log.info("signer.activated", group=result.group, custodians=list(result.custodians))
        return {"ok": True, "activation": messages.activation_to_wire(result)}, []

    def _deactivate(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        group = header.get("group")
        removed = self.service.deactivate(str(group) if group is not None else None)
        log.info("signer.deactivated", groups=removed)
        return {"ok": True, "groups": removed}, []

    def _active(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        return {"ok": True, "active": self.service.is_active()}, []

    def _keys(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        infos = [messages.info_to_wire(info) for info in self.service.list_keys()]
        return {"ok": True, "keys": infos, "active": self.service.is_active()}, []

    def _info(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        return {"ok": True, "key": messages.info_to_wire(self.service.info(str(header["key_id"])))}, []

    def _generate(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        purposes = frozenset(Purpose(p) for p in header["purposes"])
        token = header.get("token")
        info = self.service.generate(
            str(header["label"]), KeyAlgorithm.parse(str(header["algorithm"])), token and str(token), purposes
        )
        log.info("signer.key_generated", key_id=info.key_id, purposes=sorted(purposes))
        return {"ok": True, "key": messages.info_to_wire(info)}, []

    def _sign(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        purpose = Purpose(str(header["purpose"]))
        signatures = self.service.sign(str(header["key_id"]), purpose, str(header["hash"]), blobs)
        return {"ok": True}, signatures

    def _checkpoint(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        signed = self.service.checkpoint(int(header["sequence"]), str(header["chain_hash"]))
        return {"ok": True, "checkpoint": signed.to_json()}, []


class _Handler(socketserver.BaseRequestHandler):
    server: SignerServer

    def handle(self) -> None:
        connection: socket.socket = self.request
        while True:
            try:
                message = read_message(connection)
            except WireError as error:
                log.warning("signer.bad_message", error=str(error))
                return
            if message is None:
                return
            header, blobs = self.server.dispatcher.handle(*message)
            try:
                send_message(connection, header, blobs)
            except OSError:
                return


class SignerServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """One signing service on one socket; a thread per connection, each connection many requests."""

    daemon_threads = True

    def __init__(self, service: SigningService, path: Path, group: str | None = None) -> None:
        self.dispatcher = _Dispatcher(service)
        self.path = path
        _prepare_socket_path(path)
        previous = os.umask(0o177 if group is None else 0o117)
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(previous)
        mode = 0o600
        if group is not None:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
            mode = 0o660
        os.chmod(path, mode)
        self.ready = threading.Event()

    def serve(self) -> None:
        self.ready.set()
        try:
            self.serve_forever(poll_interval=0.2)
        finally:
            self.server_close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _prepare_socket_path(path: Path) -> None:
    """Refuse a second signer on the same socket; take over a stale socket file a dead signer left."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ConfigError(f"{path} is too long for a Unix socket; set MPKI_SIGNER_SOCKET to a shorter path")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.stat().st_mode & stat.S_IWOTH:
        raise KeyStoreError(f"{path.parent} is writable by everyone; refusing to put the signer's socket there")
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise InvalidRequest(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise KeyStoreError(f"a signer is already listening on {path}")
