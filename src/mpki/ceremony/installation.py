"""What an installation is bound to once its first ceremony ran: its keystore backend and environment.

Written to `MPKI_HOME/mpki.toml` so every later command (and `mpki reinitialise`'s production guard)
sees the same facts without anyone having to export variables.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from mpki.domain import InvalidRequest

FILE = "mpki.toml"
# Marks the lines a ceremony wrote, so `unbind_installation` removes those and keeps the operator's own.
MARK = "# bound by a key ceremony"


def bound_values(home: Path) -> dict[str, object]:
    path = home / FILE
    if not path.is_file():
        return {}
    return dict(tomllib.loads(path.read_text()))


def bind_installation(home: Path, *, keystore: str, environment: str, check_only: bool = False) -> None:
    """Record keystore and environment; refuse to rebind an installation to different ones."""
    current = bound_values(home)
    wanted = {"keystore": keystore, "environment": environment}
    clashes = {k: (current[k], v) for k, v in wanted.items() if k in current and current[k] != v}
    if clashes:
        detail = ", ".join(f"{k} is {old!r}, the ceremony wants {new!r}" for k, (old, new) in clashes.items())
        raise InvalidRequest(f"this installation is bound already: {detail}")
    if check_only:
        return
    missing = {k: v for k, v in wanted.items() if k not in current}
    if missing:
        home.mkdir(parents=True, exist_ok=True)
        path = home / FILE
        existing = path.read_text() if path.is_file() else ""
        # Top-level keys must precede any [table] in TOML: put the new lines first.
        lines = "".join(f'{key} = "{value}"  {MARK}\n' for key, value in missing.items())
        path.write_text(lines + existing)


def unbind_installation(home: Path) -> bool:
    """Undo `bind_installation`: drop the lines it wrote, keep the rest of the file; True if it changed."""
    path = home / FILE
    if not path.is_file():
        return False
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.rstrip().endswith(MARK)]
    if kept == lines:
        return False
    if any(line.strip() for line in kept):
        path.write_text("".join(kept))
    else:
        path.unlink()
    return True
