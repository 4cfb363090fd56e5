"""`mpki audit …`: verify the chain, export it."""

from __future__ import annotations

import sys

import typer

from mpki.audit import export_jsonl, verify_chain
from mpki.ca.runtime import open_database
from mpki.cli.context import clean_errors, console, fail, settings
from mpki.cli.progress import progress_bar

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command("verify")
@clean_errors
def verify() -> None:
    """Walk the hash chain; exit 1 naming the first broken link."""
    with progress_bar("verifying audit chain", None) as update:
        result = verify_chain(open_database(settings()), progress=lambda done: update(done, None))
    if not result.ok:
        raise fail(f"audit chain broken at event {result.broken_at}: {result.reason}")
    console.print(f"audit chain OK: {result.events} events")


@app.command("export")
@clean_errors
def export(out: str | None = typer.Option(None, "--out", "-o", help="File (default stdout).")) -> None:
    """Write every audit event as JSON Lines."""
    database = open_database(settings())
    if out is None or out == "-":
        export_jsonl(database, sys.stdout)
        return
    with open(out, "w", encoding="utf-8") as handle:
        count = export_jsonl(database, handle)
    console.print(f"{count} events written to {out}")
