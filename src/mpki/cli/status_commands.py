"""Certificate status from the command line: `mpki revoke`, `mpki release-hold`, `mpki crl generate|show`,
`mpki status maintain`, and CA revocation under dual control (`mpki ca revoke|revoke-approve|revoke-withdraw|
revocations`, registered on the `ca` sub-app).

The operator running `mpki` on the CA host is the provider (the RA's OPERATOR principal). `--by EMAIL` names a
registered person instead; authorisation is the RA's (RevocationDesk), so the CLI decides nothing itself.
A hold is taken off with its own command, `mpki release-hold SERIAL`, not a flag of `mpki revoke`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from pathlib import Path

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.table import Table

from mpki.ca import CertificationAuthority
from mpki.ca.crl import CrlScope
from mpki.cli.context import authority, clean_errors, console, errors, fail, write_output
from mpki.cli.progress import progress_bar
from mpki.domain import KeyStoreError, RevocationReason, utcnow
from mpki.keys import INACTIVE_MESSAGE
from mpki.ra import OPERATOR, Principal
from mpki.ra.revocation import RevocationDesk
from mpki.status import DELTA, FULL, CaRevocationView, PublishedCrl, RevocationOutcome, StatusService

crl_app = typer.Typer(help="CRLs and ARLs (full and delta): generate, show.", no_args_is_help=True)
status_app = typer.Typer(help="Certificate status upkeep: CRLs, OCSP responders and responses.", no_args_is_help=True)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of text.")
CA_OPTION = typer.Option(None, "--ca", help="Issuing CA, if the serial is ambiguous.")


def desk() -> RevocationDesk:
    # The status room logs each re-publication it could not do and also returns it as a warning, which
    # report_outcome prints; without a handler of its own the log line would be printed a second time.
    revocation_log = logging.getLogger("mpki.status.revocation")
    if not revocation_log.handlers:
        revocation_log.addHandler(logging.NullHandler())
    ca = authority()
    return RevocationDesk(ca.database, StatusService(ca))


def signing_authority() -> CertificationAuthority:
    """The authority, for commands that only sign: refused up front when the keys are not active, so that
    nothing (not even a reserved cRLNumber) is written."""
    installation = authority()
    if not installation.keystore.is_active():
        raise KeyStoreError(INACTIVE_MESSAGE)
    return installation


def acting(revocation_desk: RevocationDesk, by: str | None) -> Principal:
    """The person named by --by (registered and active), or the local operator."""
    return revocation_desk.person(by) if by is not None else OPERATOR


def when(moment: dt.datetime) -> str:
    return moment.isoformat()


def crl_label(crl: PublishedCrl) -> str:
    """CRL, ARL (a root's list of revoked CA certificates), or their delta."""
    name = "ARL" if crl.scope == CrlScope.CA else "CRL"
    return name if crl.kind == FULL else f"delta {name}"


def entries_text(count: int, adjective: str = "") -> str:
    return f"{count} {adjective}{' ' if adjective else ''}entr{'y' if count == 1 else 'ies'}"


def crl_line(crl: PublishedCrl) -> str:
    base = f" (base #{crl.base_number})" if crl.base_number is not None else ""
    entries = entries_text(crl.entries)
    return f"{crl.ca}: {crl_label(crl)} #{crl.number}{base}, {entries}, next update {when(crl.next_update)}"


def report_outcome(verb: str, outcome: RevocationOutcome, actor: str, as_json: bool) -> None:
    """Print what changed and what was re-published; warnings (status not re-signed yet) go to stderr."""
    if as_json:
        print(json.dumps(outcome.as_json() | {"actor": actor}, indent=2))
    else:
        for serial in outcome.serials:
            console.print(f"{verb} {serial} reason {outcome.reason.rfc_name} at {when(outcome.revoked_at)} by {actor}")
        console.print(f"re-published: {', '.join(outcome.published) or 'nothing'}")
    for warning in outcome.warnings:
        errors.print(f"warning: {warning}", markup=False, style="yellow")


# ----- end-entity certificates --------------------------------------------------------------------


@clean_errors
def revoke(
    serial: str = typer.Argument(..., help="Serial in hex (colons and 0x allowed)."),
    reason: str = typer.Option(
        ...,
        "--reason",
        "-r",
        help="RFC 5280 reason: keyCompromise (or key-compromise, or 1), superseded, cessationOfOperation, "
        "affiliationChanged, privilegeWithdrawn, unspecified, certificateHold (TLS profiles only).",
    ),
    ca: str | None = CA_OPTION,
    by: str | None = typer.Option(
        None, "--by", help="Act as this registered person (who must be allowed to revoke it); default the operator."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke a certificate; its CA's CRL and delta CRL are re-published and its OCSP response re-signed at once.

    A certificateHold is taken off with `mpki release-hold SERIAL`."""
    parsed = RevocationReason.parse(reason)
    revocation_desk = desk()
    principal = acting(revocation_desk, by)
    outcome = revocation_desk.revoke(principal, serial, parsed, ca_name=ca)
    report_outcome("revoked", outcome, principal.actor, as_json)


@clean_errors
def release_hold(
    serial: str = typer.Argument(..., help="Serial in hex of a certificate on hold."),
    ca: str | None = CA_OPTION,
    by: str | None = typer.Option(None, "--by", help="Act as this registered person; default the operator."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Take a certificateHold off: the certificate is good again and the next delta CRL says removeFromCRL."""
    revocation_desk = desk()
    principal = acting(revocation_desk, by)
    outcome = revocation_desk.release_hold(principal, serial, ca_name=ca)
    report_outcome("released hold on", outcome, principal.actor, as_json)


# ----- CRLs ----------------------------------------------------------------------------------------


@crl_app.command("generate")
@clean_errors
def crl_generate(
    ca: str | None = typer.Argument(None, help="CA name; every active CA when omitted."),
    delta: bool = typer.Option(
        False, "--delta", help="Publish a delta CRL on the newest full one (a full one first if there is none)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Sign and publish a new full CRL (an ARL for a root), or with --delta a delta CRL."""
    installation = signing_authority()
    now = utcnow()
    if ca is not None:
        view = installation.get_ca(ca)
        if view.status == "revoked":
            raise fail(f"CA {ca} is revoked: it publishes no more CRLs (its parent's ARL lists it)")
        if view.not_after <= now:
            raise fail(f"CA {ca} expired on {when(view.not_after)}: it publishes no more CRLs")
        names = [view.name]
    else:
        names = [v.name for v in installation.list_cas() if v.status == "active" and v.not_after > now]
        if not names:
            raise fail("no active CA to publish for")
    service = StatusService(installation)
    kind = DELTA if delta else FULL
    published: list[PublishedCrl] = []
    with progress_bar(f"publishing {'delta ' if delta else ''}CRLs", len(names)) as update:
        for done, name in enumerate(names, start=1):
            published.append(service.crls.publish(name, kind, actor=OPERATOR.actor))
            update(done, None)
    if as_json:
        print(json.dumps([crl.as_json() | {"label": crl_label(crl)} for crl in published], indent=2))
        return
    for crl in published:
        console.print(crl_line(crl))


def entry_rows(crl: x509.CertificateRevocationList, limit: int) -> list[tuple[str, str, str]]:
    rows = []
    for entry in itertools.islice(crl, limit):
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
        except x509.ExtensionNotFound:
            reason = "-"
        rows.append((f"{entry.serial_number:x}", when(entry.revocation_date_utc), reason))
    return rows


@crl_app.command("show")
@clean_errors
def crl_show(
    ca: str = typer.Argument(..., help="CA name."),
    delta: bool = typer.Option(False, "--delta", help="The newest delta CRL instead of the newest full one."),
    entries: int = typer.Option(10, "--entries", "-n", min=0, help="How many entries to list."),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Also write the CRL to this file (`-`: only the CRL, to stdout)."
    ),
    der: bool = typer.Option(False, "--der", help="Write DER instead of PEM."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the newest published CRL of a CA: number, kind, this and next update, and its first entries."""
    if out not in (None, "-") and not Path(out).resolve().parent.is_dir():
        raise fail(f"cannot write {out}: no such directory")
    published = StatusService(authority()).crls.latest(ca, DELTA if delta else FULL)
    crl = x509.load_der_x509_crl(published.der)
    if out is not None:
        encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
        write_output(crl.public_bytes(encoding), out)
        if out == "-":
            return
    rows = entry_rows(crl, entries)
    if as_json:
        listed = [{"serial": s, "revoked_at": t, "reason": r} for s, t, r in rows]
        print(json.dumps(published.as_json() | {"label": crl_label(published), "listed": listed}, indent=2))
    else:
        console.print(crl_line(published))
        console.print(f"this update: {when(published.this_update)}")
        console.print(f"next update: {when(published.next_update)}")
        if rows:
            table = Table("serial", "revoked at", "reason")
            for row in rows:
                table.add_row(*row)
            console.print(table)
        if published.entries > len(rows):
            console.print(f"({entries_text(published.entries - len(rows), 'more')} not listed; --entries N for more)")
    if out is not None:
        errors.print(f"written {'DER' if der else 'PEM'} to {out}", markup=False)


# ----- upkeep ------------------------------------------------------------------------------------


@status_app.command("maintain")
@clean_errors
def maintain(as_json: bool = JSON_OPTION) -> None:
    """One round of upkeep, as `mpki serve` runs it: rotate OCSP responder certificates, publish the CRLs that
    are due, pre-sign the OCSP responses that are missing or due."""
    service = StatusService(signing_authority())
    signed = 0
    with progress_bar("pre-signing OCSP responses", None) as update:

        def step(count: int) -> None:
            nonlocal signed
            signed += count
            update(signed, None)

        report = service.maintain(actor=OPERATOR.actor, progress=step)
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
        return
    console.print(f"OCSP responder certificates issued: {', '.join(report.responders_issued) or 'none'}")
    console.print(f"CRLs published: {len(report.crls_published)}")
    for crl in report.crls_published:
        console.print(f"  {crl_line(crl)}")
    console.print(f"OCSP responses pre-signed: {report.responses_signed}")


# ----- CA certificates, under dual control (registered on the `ca` sub-app) ------------------------

BY_ADMIN = typer.Option(..., "--by", help="The service admin acting (a registered, active person).")


def proposal_line(view: CaRevocationView) -> str:
    return (
        f"proposal {view.id}: revoke CA {view.ca} reason {view.reason.rfc_name}, {view.status}, "
        f"proposed by {view.requested_by} at {when(view.requested_at)}"
    )


@clean_errors
def ca_revoke(
    name: str = typer.Argument(..., help="The CA to revoke (an issuing CA: a root is replaced, not revoked)."),
    reason: str = typer.Option(
        ..., "--reason", "-r", help="keyCompromise, cACompromise, superseded, cessationOfOperation, …"
    ),
    by: str = BY_ADMIN,
    as_json: bool = JSON_OPTION,
) -> None:
    """Propose revoking a CA certificate; a second, different service admin approves it."""
    parsed = RevocationReason.parse(reason)
    revocation_desk = desk()
    view = revocation_desk.propose_ca_revocation(revocation_desk.person(by), name, parsed)
    approve = f"mpki ca revoke-approve {view.id} --by OTHER-ADMIN-EMAIL"
    if as_json:
        print(json.dumps(view.as_json() | {"approve_with": approve}, indent=2))
        return
    console.print(proposal_line(view))
    console.print("nothing is revoked until a different service admin approves it with:")
    console.print(f"  {approve}")


@clean_errors
def ca_revoke_approve(
    proposal: int = typer.Argument(..., help="The proposal id `mpki ca revoke` printed."),
    by: str = BY_ADMIN,
    as_json: bool = JSON_OPTION,
) -> None:
    """Approve a proposed CA revocation (dual control: not its proposer); the parent's ARL is re-published."""
    revocation_desk = desk()
    principal = revocation_desk.person(by)
    pending = {view.id: view.ca for view in revocation_desk.pending_ca_revocations(principal)}
    outcome = revocation_desk.approve_ca_revocation(principal, proposal)
    name = pending.get(proposal)
    report_outcome(f"revoked CA {name}, serial" if name else "revoked CA serial", outcome, principal.actor, as_json)


@clean_errors
def ca_revoke_withdraw(
    proposal: int = typer.Argument(..., help="The proposal id."),
    by: str = BY_ADMIN,
) -> None:
    """Withdraw a pending CA revocation proposal."""
    revocation_desk = desk()
    view = revocation_desk.withdraw_ca_revocation(revocation_desk.person(by), proposal)
    console.print(proposal_line(view))


@clean_errors
def ca_revocations(as_json: bool = JSON_OPTION) -> None:
    """List CA revocations waiting for a second service admin."""
    views = desk().pending_ca_revocations(OPERATOR)
    if as_json:
        print(json.dumps([view.as_json() for view in views], indent=2))
        return
    if not views:
        console.print("no CA revocation is waiting for approval")
        return
    table = Table("id", "CA", "reason", "proposed by", "proposed at")
    for view in views:
        table.add_row(str(view.id), view.ca, view.reason.rfc_name, view.requested_by, when(view.requested_at))
    console.print(table)
