"""The `mpki` command: operators' entry point."""

from __future__ import annotations

import typer

from mpki.ca.runtime import DEV_PASSPHRASE
from mpki.ceremony import create_dev_hierarchy
from mpki.cli import audit_commands, ca_commands, cert_commands, csr_commands
from mpki.cli.context import authority, clean_errors, console, errors, fail, settings
from mpki.config import Environment

app = typer.Typer(
    help="mpki: a managed PKI (provider-run CAs, customer-run RAs, SMKI profiles).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(ca_commands.app, name="ca")
app.add_typer(cert_commands.app, name="cert")
app.add_typer(audit_commands.app, name="audit")
app.add_typer(csr_commands.app, name="csr")
app.command("issue")(cert_commands.issue)
app.command("issue-batch")(cert_commands.issue_batch)


@app.command("init")
@clean_errors
def init(dev: bool = typer.Option(False, "--dev", help="Create the insecure development hierarchy.")) -> None:
    """Create the database and keystore; with --dev, the SMKI and TLS development hierarchies."""
    current = settings()
    if not dev:
        raise fail("only `mpki init --dev` exists so far; production hierarchies are made in key ceremonies")
    if current.environment is Environment.PRODUCTION:
        raise fail("refusing the insecure development hierarchy in a production environment")
    if not current.kek_passphrase:
        errors.print(
            f"[yellow]warning:[/] INSECURE development keystore passphrase {DEV_PASSPHRASE!r}; "
            "set MPKI_KEK_PASSPHRASE for anything else"
        )
    ca = authority(create=True)
    console.print(f"database: {current.resolved_database_url}")
    console.print(f"keystore: {current.keys_dir} (software, development)")
    create_dev_hierarchy(
        ca,
        on_created=lambda v: console.print(
            f"created CA {v.name} ({v.profile}) {v.subject}"
            + (f" issues {','.join(v.issues_profiles)}" if v.issues_profiles else "")
        ),
    )
    console.print("ready: try `mpki ca list` or `mpki serve`")


@app.command("serve")
@clean_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """Run the HTTP service (health, CA list; the rest of the API comes with the RA)."""
    import uvicorn

    authority().reconcile(actor="mpki-serve")
    # By import string, so the web room stays a sibling of the CLI and uvicorn can run workers.
    uvicorn.run("mpki.web.asgi:application", factory=True, host=host, port=port, log_level="info")


if __name__ == "__main__":
    app()
