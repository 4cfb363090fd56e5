"""Who holds a serial reservation, so reconciliation can tell a crashed issuer from a busy one."""

from __future__ import annotations

import os
import socket
import uuid

_TOKEN = uuid.uuid4().hex[:8]


def this_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_TOKEN}"


def owner_is_dead(owner: str) -> bool:
    """True only when the owner ran on this host and its process no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if pid_text == str(os.getpid()):
        return owner != this_owner()
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
