"""PKCS#11 plumbing: one loaded module per process, its lock, its sessions, and token initialisation.

Three facts about python-pkcs11 shape this module (DEPENDENCIES.md, gotchas 1, 3 and 4):

- It calls `C_Initialize(NULL)`, which promises the module that the application will never call it from
  two threads at once; SoftHSM2 then runs without locks and corrupts memory under concurrent calls. So
  every call into a module goes through that module's one lock (`Pkcs11Module.lock`). A lock per token
  would not be enough: the promise covers the whole library, and SoftHSM2's slot and object stores are
  shared between tokens.
- Login is per application and token: a second `C_Login` fails with UserAlreadyLoggedIn. So each token
  has at most one logged-in session in the process, kept open and shared by every keystore object.
- A module reads its tokens at `C_Initialize`: a token initialised later (by `pkcs11-tool`, or by another
  process) stays invisible until the module is finalised and initialised again, and slot ids change
  when it is. Tokens are therefore found by label, and a label that cannot be found triggers one
  re-initialisation; sessions opened before it are invalid afterwards and are reopened on next use
  (`generation` tells them apart).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11errors

from mpki.domain import KeyStoreError

SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SOFTHSM2_CONF_TEMPLATE = """\
directories.tokendir = {tokens}
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
library.reset_on_fork = false
"""


def write_softhsm_conf(directory: Path) -> Path:
    """A SoftHSM2 configuration with its own token directory under `directory` (gotcha 4)."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(SOFTHSM2_CONF_TEMPLATE.format(tokens=tokens))
    return conf


_MAX_LABEL_BYTES = 32  # CK_TOKEN_INFO.label
_PIN_DIGEST_KEY = os.urandom(32)  # so that PINs are compared without being kept


def default_module() -> str:
    """The PKCS#11 module to load: `MPKI_PKCS11_MODULE`, else Debian's SoftHSM2."""
    return os.environ.get("MPKI_PKCS11_MODULE") or SOFTHSM2_MODULE


def pin_digest(pin: str) -> bytes:
    """A process-local keyed digest of a PIN, to tell whether two callers present the same one."""
    return hmac.new(_PIN_DIGEST_KEY, pin.encode("utf-8"), hashlib.sha256).digest()


@dataclass
class TokenSessions:
    """The sessions this process holds on one token, valid for one module generation."""

    generation: int
    public: Any = None  # read-only session without login: public objects only
    user: Any = None  # read/write session logged in as the user
    user_pin: bytes | None = None  # pin_digest() of the PIN that logged `user` in
    private_keys: dict[bytes, Any] = field(default_factory=dict)  # private key objects by CKA_ID
    mechanisms: frozenset[Any] | None = None  # what the token's slot offers


class Pkcs11Module:
    """One PKCS#11 module as loaded in this process. Take `lock` around every call into it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.generation = 0
        self._lib: Any = None
        self._sessions: dict[str, TokenSessions] = {}
        self._forked = False

    def after_fork_in_child(self) -> None:
        """A forked child has the parent's sessions in name only, and perhaps a lock some other parent
        thread held: start it afresh (PKCS#11 asks a child to initialise the module again)."""
        self.lock = threading.RLock()
        self._sessions.clear()
        self.generation += 1
        self._forked = True

    # --- the library --------------------------------------------------------------------------

    def lib(self) -> Any:
        """The initialised library (caller holds `lock`)."""
        if self._lib is None:
            if not os.path.isfile(self.path):
                raise KeyStoreError(f"PKCS#11 module {self.path} not found (set MPKI_PKCS11_MODULE)")
            try:
                self._lib = pkcs11.lib(self.path)
            except p11errors.PKCS11Error as exc:
                raise KeyStoreError(f"cannot load PKCS#11 module {self.path}: {exc}") from None
        if self._forked:
            self._forked = False
            if self._lib.initialized:
                with contextlib.suppress(p11errors.PKCS11Error):
                    self._lib.finalize()
        if not self._lib.initialized:
            self._lib.initialize()
        return self._lib

    def reset(self) -> None:
        """Finalise the module: every session closes and the next call sees the tokens afresh."""
        with self.lock:
            if self._lib is not None and self._lib.initialized:
                self._lib.finalize()
            self._sessions.clear()
            self.generation += 1

    def slots(self) -> list[tuple[Any, Any]]:
        """(slot, token) for every slot holding a token (caller holds `lock`)."""
        found = []
        for slot in self.lib().get_slots():
            try:
                found.append((slot, slot.get_token()))
            except (p11errors.TokenNotPresent, p11errors.TokenNotRecognised):
                continue
        return found

    def labels(self) -> list[str]:
        """Labels of the initialised tokens, as currently seen (caller holds `lock`)."""
        return sorted(t.label for _, t in self.slots() if t.flags & TokenFlag.TOKEN_INITIALIZED)

    def token(self, label: str) -> Any:
        """The initialised token labelled `label`; re-reads the slots once if it is not seen."""
        with self.lock:
            for attempt in range(2):
                matches = [t for _, t in self.slots() if t.flags & TokenFlag.TOKEN_INITIALIZED and t.label == label]
                if len(matches) > 1:
                    raise KeyStoreError(f"several tokens are labelled {label!r} in {self.path}")
                if matches:
                    return matches[0]
                if attempt == 0:
                    self.reset()
            raise KeyStoreError(f"no token labelled {label!r} in PKCS#11 module {self.path}")

    # --- sessions -----------------------------------------------------------------------------

    def sessions(self, label: str) -> TokenSessions:
        """This generation's session record for a token (caller holds `lock`)."""
        record = self._sessions.get(label)
        if record is None or record.generation != self.generation:
            record = TokenSessions(self.generation)
            self._sessions[label] = record
        return record

    def public_session(self, label: str) -> Any:
        """A read-only session without login: enough to read public key objects (caller holds `lock`)."""
        record = self.sessions(label)
        if record.public is None:
            token = self.token(label)
            record = self.sessions(label)  # token() may have re-initialised the module
            record.public = token.open(rw=False)
        return record.public

    def mechanisms(self, label: str) -> frozenset[Any]:
        """The mechanisms the token's slot offers (caller holds `lock`)."""
        record = self.sessions(label)
        if record.mechanisms is None:
            offered = frozenset(self.token(label).slot.get_mechanisms())
            record = self.sessions(label)
            record.mechanisms = offered
        return record.mechanisms

    def user_session(self, label: str, pin: str, digest: bytes) -> TokenSessions:
        """The token's one logged-in read/write session, opened on first use (caller holds `lock`).

        A keystore presenting a PIN other than the one the open session logged in with is refused: a
        token has one user PIN, so the other one is wrong, and must not ride on an earlier login.
        """
        record = self.sessions(label)
        if record.user is not None:
            if record.user_pin is None or not hmac.compare_digest(record.user_pin, digest):
                raise KeyStoreError(f"the user PIN presented for token {label!r} is wrong")
            return record
        token = self.token(label)
        record = self.sessions(label)
        try:
            session = token.open(rw=True, user_pin=pin)
        except p11errors.PinIncorrect:
            raise KeyStoreError(f"the user PIN for token {label!r} is wrong") from None
        except p11errors.PinLocked:
            raise KeyStoreError(
                f"the user PIN of token {label!r} is locked; the security officer must reset it"
            ) from None
        except p11errors.UserPinNotInitialized:
            raise KeyStoreError(f"token {label!r} has no user PIN yet; initialise it with mpki") from None
        except p11errors.UserAlreadyLoggedIn:
            # Someone outside this registry logged this application in already: login is per
            # application, so a plain session shares that login. Its PIN was checked when it was made.
            session = token.open(rw=True)
        record.user = session
        record.user_pin = digest
        return record

    def close_token(self, label: str) -> None:
        """Close this process's sessions on a token (logging the application out of it)."""
        with self.lock:
            record = self._sessions.pop(label, None)
            if record is None or record.generation != self.generation:
                return
            for session in (record.user, record.public):
                if session is not None:
                    with contextlib.suppress(p11errors.PKCS11Error):
                        session.close()


_modules: dict[str, Pkcs11Module] = {}
_modules_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _modules_lock
    _modules_lock = threading.Lock()
    for handle in _modules.values():
        handle.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def module_handle(module: str) -> Pkcs11Module:
    """The process-wide handle for a module path (the same library under two paths is one module)."""
    path = os.path.realpath(module)
    with _modules_lock:
        handle = _modules.get(path)
        if handle is None:
            handle = _modules[path] = Pkcs11Module(path)
        return handle


def reset_module(module: str) -> None:
    """Finalise a module if this process loaded it: closes every session, and the next use re-reads
    the tokens (and `SOFTHSM2_CONF`). Tests call this when they switch SoftHSM2 token directories."""
    path = os.path.realpath(module)
    with _modules_lock:
        handle = _modules.get(path)
    if handle is not None:
        handle.reset()


def token_labels(module: str, *, refresh: bool = False) -> list[str]:
    """Labels of the initialised tokens. `refresh` re-reads the slots first, which also sees tokens
    initialised by other processes but closes this process's sessions (they reopen on next use)."""
    handle = module_handle(module)
    with handle.lock:
        if refresh:
            handle.reset()
        labels: list[str] = handle.labels()
        return labels


def token_serial(module: str, label: str) -> str:
    """The serial number the token labelled `label` reports (CK_TOKEN_INFO.serialNumber), as text."""
    handle = module_handle(module)
    with handle.lock:
        serial = handle.token(label).serial
    text = serial.decode("ascii", "replace") if isinstance(serial, bytes) else str(serial)
    return text.strip()


def initialise_token(module: str, label: str, so_pin: str, user_pin: str) -> None:
    """Initialise a fresh token in a free slot under the SO PIN (the token-admin group's) and set its
    user PIN (the activation group's) through a security-officer session.

    Nothing else is put on the token: its keys can never be wrapped out (see `pkcs11.py`), so it needs
    no wrapping key; its backups are copies of its protected object store (`keys.token_backups`).
    Refuses a label that an initialised token already carries: re-initialising destroys every key.
    The SO PIN reaches `pkcs11-tool` through its environment (`env:`), never its command line.
    """
    if not label or len(label.encode("utf-8")) > _MAX_LABEL_BYTES:
        raise KeyStoreError(f"a token label is 1 to {_MAX_LABEL_BYTES} bytes; {label!r} is not")
    tool = shutil.which("pkcs11-tool")
    if tool is None:
        raise KeyStoreError("pkcs11-tool (Debian package opensc) is needed to initialise a token")
    handle = module_handle(module)
    with handle.lock:
        handle.reset()  # see tokens initialised since this process loaded the module
        if label in handle.labels():
            raise KeyStoreError(
                f"a token labelled {label!r} already exists in {handle.path}; refusing to initialise it again "
                "(that would destroy its keys)"
            )
        free = [slot for slot, token in handle.slots() if not token.flags & TokenFlag.TOKEN_INITIALIZED]
        if not free:
            raise KeyStoreError(f"no free slot in {handle.path} to initialise token {label!r}")
        command = [tool, "--module", handle.path, "--init-token", "--slot", str(free[0].slot_id)]
        command += ["--label", label, "--so-pin", "env:MPKI_PKCS11_SO_PIN"]
        result = subprocess.run(
            command, env=os.environ | {"MPKI_PKCS11_SO_PIN": so_pin}, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise KeyStoreError(f"pkcs11-tool could not initialise token {label!r}: {detail}")
        handle.reset()
        token = handle.token(label)
        try:
            so_session = token.open(rw=True, so_pin=so_pin)
        except p11errors.PinIncorrect:
            raise KeyStoreError(
                f"token {label!r} was initialised but refuses its SO PIN: this pkcs11-tool may not read "
                "`env:` PINs (OpenSC 0.20 or newer does)"
            ) from None
        try:
            so_session.init_pin(user_pin)
        finally:
            so_session.close()
