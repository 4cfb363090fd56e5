"""Shared plumbing for commands: settings, the authority, and turning errors into one-line exits."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mpki.ca import CertificationAuthority
from mpki.ca.runtime import open_authority
from mpki.config import Settings, load_settings
from mpki.domain import MpkiError

P = ParamSpec("P")
R = TypeVar("R")

# soft_wrap: a message stays one line however narrow the terminal (or pipe) is. No markup on stdout:
# what it prints (subjects, DNS names, file names) comes from requests and must be shown as written.
console = Console(soft_wrap=True, markup=False, highlight=False)
errors = Console(stderr=True, soft_wrap=True)


def settings() -> Settings:
    return load_settings()


def authority(*, create: bool = False) -> CertificationAuthority:
    return open_authority(settings(), create_keystore=create)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise.

    The message is escaped: it often quotes the request (a DNS name, a CN), which must not be read as markup.
    """
    one_line = " ".join(message.split())
    errors.print(f"[bold red]error:[/] {escape(one_line)}", highlight=False)
    return typer.Exit(code)


def clean_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Every MpkiError becomes a one-line message and exit status 1; nothing else is swallowed."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except MpkiError as error:
            raise fail(str(error)) from None
        except OSError as error:
            raise fail(f"{error.strerror or error}: {error.filename}" if error.filename else str(error)) from None

    return wrapper


def write_output(data: bytes | str, out: str | None) -> None:
    """Write to a file, or to stdout when no file (or `-`) is given."""
    payload = data.encode() if isinstance(data, str) else data
    if out is None or out == "-":
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
        return
    with open(out, "wb") as handle:
        handle.write(payload)
