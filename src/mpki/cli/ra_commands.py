"""`mpki org …`, `mpki user …`, `mpki token …`: the RA's directory, run by the provider's operator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from mpki.ca.runtime import open_database
from mpki.cli.context import authority, clean_errors, console, errors, fail, settings
from mpki.domain import OrgStatus, Role
from mpki.ra import OPERATOR, Directory
from mpki.ra.intake import Registration
from mpki.ra.logins import PortalLogins

org_app = typer.Typer(help="Customer organisations.", no_args_is_help=True)
user_app = typer.Typer(help="People and their roles.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (shown once).", no_args_is_help=True)


def directory() -> Directory:
    return Directory(open_database(settings()))


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@org_app.command("create")
@clean_errors
def org_create(
    name: str = typer.Argument(..., help="Organisation name."),
    eui64: list[str] = typer.Option(
        ..., "--eui64", help="Entity identifier(s), 16 hex digits; repeat or comma-separate."
    ),
    roles: list[str] = typer.Option(..., "--roles", help="Remote-party roles, e.g. supplier,network-operator."),
) -> None:
    """Register a customer organisation with its EUI-64s and the roles it may hold."""
    view = directory().create_organisation(OPERATOR, name, _split(eui64), _split(roles))
    console.print(f"organisation {view.name} (id {view.id}) roles {','.join(view.roles)} eui64 {','.join(view.eui64s)}")


@org_app.command("list")
@clean_errors
def org_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List organisations."""
    views = directory().organisations(OPERATOR)
    if as_json:
        print(json.dumps([v.as_json() for v in views], indent=2))
        return
    table = Table("id", "name", "roles", "EUI-64s", "status")
    for v in views:
        table.add_row(str(v.id), v.name, ",".join(v.roles), ",".join(v.eui64s), v.status)
    console.print(table)


@org_app.command("suspend")
@clean_errors
def org_suspend(name: str) -> None:
    """Suspend an organisation: its people's tokens stop working."""
    directory().set_organisation_status(OPERATOR, name, OrgStatus.SUSPENDED)
    console.print(f"organisation {name} suspended")


@org_app.command("activate")
@clean_errors
def org_activate(name: str) -> None:
    """Re-activate a suspended organisation."""
    directory().set_organisation_status(OPERATOR, name, OrgStatus.ACTIVE)
    console.print(f"organisation {name} active")


@org_app.command("policy")
@clean_errors
def org_policy(
    name: str = typer.Argument(...),
    profile: str = typer.Option(..., "--profile", help="smki-device, smki-org, tls-server or tls-client."),
    rule: str = typer.Option(..., "--rule", help="auto, review (one RA agent) or dual (two different agents)."),
) -> None:
    """Set how an organisation's requests for a profile are approved."""
    rules = directory().set_approval_rule(OPERATOR, name, profile, rule)
    console.print(f"{name}: " + ", ".join(f"{p}={r}" for p, r in sorted(rules.items())))


@user_app.command("create")
@clean_errors
def user_create(
    email: str = typer.Argument(...),
    role: Role = typer.Option(..., "--role"),
    org: str | None = typer.Option(None, "--org", help="Organisation, for authorised-subscriber and org-ra-officer."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read a portal password from stdin."),
) -> None:
    """Create a person with one role."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    if password_stdin and not password:
        raise fail("no password on stdin")
    view = directory().create_person(OPERATOR, email, role, org, password)
    console.print(f"{view.email}: {view.role}" + (f" of {view.organisation}" if view.organisation else ""))


@user_app.command("password")
@clean_errors
def user_password(email: str = typer.Argument(...)) -> None:
    """Set a person's portal password, read from stdin (never from the command line). Their sessions end
    and a lockout is lifted."""
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise fail("no password on stdin")
    current = settings()
    PortalLogins(authority().database, current.portal).set_password(OPERATOR, email, password)
    console.print(f"{email.strip().lower()}: password set; their portal sessions are ended")


@user_app.command("list")
@clean_errors
def user_list(org: str | None = typer.Option(None, "--org"), as_json: bool = typer.Option(False, "--json")) -> None:
    """List people (of one organisation with --org)."""
    views = directory().people(OPERATOR, org)
    if as_json:
        print(json.dumps([v.as_json() for v in views], indent=2))
        return
    table = Table("id", "email", "role", "organisation", "status")
    for v in views:
        table.add_row(str(v.id), v.email, v.role, v.organisation or "-", v.status)
    console.print(table)


@token_app.command("create")
@clean_errors
def token_create(email: str = typer.Argument(..., help="Whose token.")) -> None:
    """Create an API token; it is printed once and stored only as a hash."""
    token = directory().create_token(OPERATOR, email)
    print(token)
    errors.print("store it now: it is shown only once", style="yellow")


request_app = typer.Typer(help="Certificate requests: list, approve, reject.", no_args_is_help=True)


def registration() -> Registration:
    ca = authority()
    return Registration(ca.database, ca)


@request_app.command("list")
@clean_errors
def request_list(
    status: str | None = typer.Option(None, "--status", help="submitted, pending, approved, issued, rejected, failed"),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List requests (oldest first), e.g. `--status pending` for the review queue."""
    views = registration().requests(OPERATOR, status=status, limit=limit)
    if as_json:
        print(json.dumps([v.as_json() for v in views], indent=2))
        return
    table = Table("id", "profile", "status", "batch", "EUI-64", "usage", "reason / serial", "submitted by")
    for v in views:
        table.add_row(
            str(v.id),
            v.profile,
            v.status,
            str(v.batch_id or "-"),
            v.eui64 or "-",
            v.key_usage or "-",
            v.reason or v.serial or "",
            v.submitted_by,
        )
    console.print(table)


@request_app.command("approve")
@clean_errors
def request_approve(request_id: int = typer.Argument(...), reason: str | None = typer.Option(None, "--reason")) -> None:
    """Approve a held request; the CA issues it at once."""
    view = registration().decide(OPERATOR, request_id, True, reason)
    console.print(f"request {view.id}: {view.status}" + (f" serial {view.serial}" if view.serial else ""))


@request_app.command("reject")
@clean_errors
def request_reject(request_id: int = typer.Argument(...), reason: str = typer.Option(..., "--reason")) -> None:
    """Reject a held request, with the reason the subscriber will see."""
    view = registration().decide(OPERATOR, request_id, False, reason)
    console.print(f"request {view.id}: {view.status} ({view.reason})")


batch_app = typer.Typer(help="Batches: process the queue outside the server.", no_args_is_help=True)


@batch_app.command("process")
@clean_errors
def batch_process() -> None:
    """Process every submitted batch now (what `mpki serve`'s worker does), with a progress bar."""
    desk = registration()
    done = 0
    while (view := desk.process_next()) is not None:
        done += 1
        counts = view.as_json()["counts"]
        console.print(f"batch {view.id}: {counts}")
    console.print(f"{done} batch(es) processed")


@user_app.command("cert")
@clean_errors
def user_cert(
    email: str = typer.Argument(..., help="Whose certificate."),
    cert: Path = typer.Option(..., "--cert", help="The person's client certificate, PEM or DER."),
) -> None:
    """Register a client certificate the person may authenticate to the API with (instead of a token)."""
    if not cert.is_file():
        raise fail(f"no such certificate file: {cert}")
    fingerprint = directory().register_client_certificate(OPERATOR, email, cert.read_bytes())
    console.print(f"{email.strip().lower()}: client certificate sha256 {fingerprint} registered")
