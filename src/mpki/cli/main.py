"""The `mpki` command: operators' entry point."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from mpki.ceremony import run_dev_ceremony
from mpki.ceremony.dev import DEV_UNWRAP_KEY
from mpki.cli import (
    audit_commands,
    ca_commands,
    ceremony_commands,
    cert_commands,
    csr_commands,
    keys_commands,
    ra_commands,
    recovery_commands,
    report_commands,
    signer_commands,
    status_commands,
    tams_commands,
)
from mpki.cli.context import authority, clean_errors, console, errors, fail, settings
from mpki.cli.dev_accounts import DEMO_ORGANISATION, create_dev_accounts
from mpki.config import Environment
from mpki.keys import SoftwareKeyStore

app = typer.Typer(
    help="mpki: a managed PKI (provider-run CAs, customer-run RAs, SMKI profiles).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(ca_commands.app, name="ca")
app.add_typer(cert_commands.app, name="cert")
app.add_typer(audit_commands.app, name="audit")
app.add_typer(csr_commands.app, name="csr")
app.add_typer(keys_commands.app, name="keys")
app.add_typer(ra_commands.org_app, name="org")
app.add_typer(ra_commands.user_app, name="user")
app.add_typer(ra_commands.token_app, name="token")
app.add_typer(ra_commands.request_app, name="request")
app.add_typer(ra_commands.batch_app, name="batch")
app.add_typer(ceremony_commands.app, name="ceremony")
app.add_typer(tams_commands.app, name="tams")
app.add_typer(recovery_commands.app, name="recovery")
app.add_typer(signer_commands.app, name="signer")
app.command("bootstrap")(ceremony_commands.bootstrap)
app.command("reinitialise")(ceremony_commands.reinitialise)
app.command("issue")(cert_commands.issue)
app.command("issue-batch")(cert_commands.issue_batch)
app.add_typer(status_commands.crl_app, name="crl")
app.add_typer(status_commands.status_app, name="status")
app.command("revoke")(status_commands.revoke)
app.command("release-hold")(status_commands.release_hold)
app.command("report")(report_commands.report)
app.command("report-schedule")(report_commands.report_schedule)
app.command("report-list")(report_commands.report_list)


@app.command("init")
@clean_errors
def init(dev: bool = typer.Option(False, "--dev", help="Create the insecure development hierarchy.")) -> None:
    """With --dev: run the scripted development ceremony (SMKI and TLS hierarchies, 2-of-3 quorum)."""
    current = settings()
    if not dev:
        raise fail("only `mpki init --dev` exists; real hierarchies are made with `mpki ceremony run FILE`")
    if current.environment is Environment.PRODUCTION:
        raise fail("refusing the insecure development hierarchy in a production environment")
    if SoftwareKeyStore.exists(current.keys_dir):
        raise fail(f"the development hierarchy already exists in {current.home} (keystore {current.keys_dir})")
    errors.print(
        "warning: INSECURE development ceremony: software keys, and every quorum share (the CA keys', the backup "
        f"and token-admin groups' and the contingency key's) side by side in {current.home / 'dev-shares'}; "
        "never use this for anything real",
        markup=False,
    )
    result = run_dev_ceremony(os.environ, current.home, on_step=ceremony_commands.show_step)
    console.print(f"database: {current.resolved_database_url}")
    console.print(f"keystore: {current.keys_dir} (software, quorum 2 of 3, activated)")
    for view in result.cas:
        issues = f" issues {','.join(view.issues_profiles)}" if view.issues_profiles else ""
        console.print(f"created CA {view.name} ({view.profile}) {view.subject}{issues}")
    console.print(f"ceremony record: {result.record_path}")
    console.print(
        f"apex contingency key: its own keystore in {current.keys_dir / 'contingency'} behind a 3-of-5 quorum "
        f"(shares in {current.home / 'dev-shares'}, not activated); unwrap key in {current.home / DEV_UNWRAP_KEY}"
    )
    accounts_file, accounts = create_dev_accounts(authority().database, current.home)
    console.print(f"portal accounts (demo organisation {DEMO_ORGANISATION}), also in {accounts_file}:")
    for account in accounts:
        console.print(f"  {account.email:<30} {account.role.value:<22} {account.password}", markup=False)
    console.print("ready: try `mpki ca list` or `mpki serve`, then sign in at http://127.0.0.1:8000/portal/")


@app.command("serve")
@clean_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Server processes; each answers OCSP from its own cache."
    ),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="Serve HTTPS with this certificate (PEM chain)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="The TLS certificate's private key (PEM)."),
    client_ca: Path | None = typer.Option(
        None,
        "--client-ca",
        help="Ask for client certificates issued under these CAs (PEM bundle); registered ones authenticate "
        "API callers (`mpki user cert`). Optional for callers: bearer tokens still work.",
    ),
) -> None:
    """Run the HTTP service: the REST API under /api/v1 (OpenAPI at /api/v1/openapi.json), OCSP at /ocsp, CRLs
    at /crl/{ca}.crl, the batch worker and the status upkeep (CRLs, OCSP responders and responses).

    Behind a TLS-terminating proxy, list the proxy's addresses in MPKI_TRUSTED_PROXIES to accept the client
    certificate it forwards in an RFC 9440 Client-Cert header."""
    import ssl
    from contextlib import nullcontext

    import uvicorn

    from mpki.reports.prometheus import shared_metrics_dir

    if (tls_cert is None) != (tls_key is None):
        raise fail("--tls-cert and --tls-key go together")
    if client_ca is not None and tls_cert is None:
        raise fail("--client-ca needs --tls-cert and --tls-key: client certificates come with TLS")
    for option, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key), ("--client-ca", client_ca)):
        if path is not None and not path.is_file():
            raise fail(f"{option}: no such file: {path}")
    options: dict[str, Any] = {}
    if tls_cert is not None:
        options |= {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)}
    if client_ca is not None:
        # CERT_OPTIONAL: a presented certificate must chain to client_ca; callers without one use tokens.
        # uvicorn does not pass the certificate on; this protocol puts it into the request scope.
        options |= {
            "ssl_ca_certs": str(client_ca),
            "ssl_cert_reqs": ssl.CERT_OPTIONAL,
            "http": "mpki.web.clientcert:ClientCertH11Protocol",
        }
    if os.environ.get("MPKI_TRUSTED_PROXIES", "").strip():
        # The Client-Cert header is believed by the proxy's own address: keep uvicorn from replacing the
        # client address with X-Forwarded-For.
        options["proxy_headers"] = False
    # Several workers share one metrics directory, so /metrics counts what all of them did.
    shared = shared_metrics_dir(settings().run_dir) if workers > 1 else nullcontext()
    with signer_commands.signer_for_serve(settings()), shared:
        authority().reconcile(actor="mpki-serve")
        # By import string, so the web room stays a sibling of the CLI and uvicorn can run workers.
        uvicorn.run(
            "mpki.web.asgi:application",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=False,
            **options,
        )


if __name__ == "__main__":
    app()
