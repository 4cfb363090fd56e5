"""Where a rebuilt quorum secret is kept between `mpki keys activate` and `mpki keys deactivate`.

Why the secret is written down at all: every CLI command is a separate process, so a secret held in
memory would be gone before the next command could sign. Like an HSM that stays activated while it is
powered, the group stays active until someone deactivates it: the secret sits in
`<run dir>/active/<group>.secret`, mode 0600, in a directory of mode 0700, written atomically.

In production `MPKI_RUN_DIR` must name a tmpfs (RAM) directory, such as systemd's `RuntimeDirectory=`
under /run, so that deactivation or a power loss really forgets the secret. The default,
`MPKI_HOME/run`, is on disk and is meant for development only: on a disk, unlinking (or overwriting)
a file does not reliably destroy its contents.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mpki.domain import KeyStoreError
from mpki.keys.quorum import validate_group
from mpki.keys.secrets import SECRET_BYTES

ACTIVE_DIR = "active"
_SUFFIX = ".secret"


def _bound_to_production(run_dir: Path) -> bool:
    """A last line of defence for callers that forgot to ask: the installation file says production."""
    config = run_dir.parent / "mpki.toml"
    try:
        text = config.read_text()
    except OSError:
        return False
    return any(line.replace(" ", "").startswith('environment="production"') for line in text.splitlines())


class ActivationStore:
    """The active quorum secrets of one installation, one file per group under `run_dir/active`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.directory = run_dir / ACTIVE_DIR

    def _ensure_directory(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)
        except FileExistsError:
            raise KeyStoreError(f"{self.directory} exists and is not a directory") from None
        if self.directory.is_symlink() or not self.directory.is_dir():
            raise KeyStoreError(f"{self.directory} must be a plain directory, not a link")
        if hasattr(os, "getuid") and self.directory.stat().st_uid != os.getuid():
            raise KeyStoreError(f"{self.directory} belongs to another user; refusing to keep secrets in it")
        os.chmod(self.directory, 0o700)

    def _path(self, group: str) -> Path:
        return self.directory / f"{validate_group(group)}{_SUFFIX}"

    def activate(self, group: str, secret: bytes) -> None:
        """Keep `secret` as the active secret of `group`, replacing any earlier one atomically."""
        if os.environ.get("MPKI_ENVIRONMENT") == "production" or _bound_to_production(self.run_dir):
            raise KeyStoreError("an installation marked production never writes a quorum secret to disk")
        path = self._path(group)
        if not isinstance(secret, bytes) or len(secret) != SECRET_BYTES:
            raise KeyStoreError(f"a quorum secret is {SECRET_BYTES} bytes")
        self._ensure_directory()
        tmp = self.directory / f".{group}.{os.urandom(8).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secret)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._sync_directory()

    def secret(self, group: str) -> bytes | None:
        """The active secret of `group`, or None if the group is not active."""
        path = self._path(group)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as error:
            raise KeyStoreError(f"cannot read the activation of group {group}: {error.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(SECRET_BYTES + 1)
        if len(data) != SECRET_BYTES:
            raise KeyStoreError(
                f"the activation of group {group} is damaged; deactivate it and present the shares again"
            )
        return data

    def deactivate(self, group: str | None = None) -> list[str]:
        """Forget the secret of `group`, or of every group; returns the groups that were active."""
        if group is not None:
            path = self._path(group)
            removed = [group] if self._forget(path) else []
        else:
            removed = [name for name in self.active_groups() if self._forget(self._path(name))]
            if self.directory.is_dir():
                for stale in self.directory.glob(".*.tmp"):
                    self._forget(stale)
        if removed:
            self._sync_directory()
        return removed

    def active_groups(self) -> list[str]:
        """The groups whose secret is present, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name.removesuffix(_SUFFIX) for p in self.directory.glob(f"*{_SUFFIX}") if p.is_file())

    @staticmethod
    def _forget(path: Path) -> bool:
        """Overwrite then unlink (the overwrite helps on tmpfs; on a disk only the unlink is certain)."""
        try:
            fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return False
        except OSError:
            fd = -1
        if fd >= 0:
            with os.fdopen(fd, "wb") as handle, contextlib.suppress(OSError):
                size = os.fstat(handle.fileno()).st_size
                handle.write(b"\0" * size)
                handle.flush()
                os.fsync(handle.fileno())
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _sync_directory(self) -> None:
        if not hasattr(os, "O_DIRECTORY"):
            return
        with contextlib.suppress(OSError):
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
