"""`mpki recovery …`: the compromise procedures under dual control. Each scenario command proposes (one
person, `--by`); `approve ID --by` (another person) runs it, bringing what the run needs and the record
must not hold: share files, the unwrap key, new CSRs. `drill` rehearses every scenario in a throwaway
installation."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from mpki.cli.context import authority, clean_errors, console, errors, fail, settings
from mpki.domain import RevocationReason
from mpki.recovery import RecoveryContext, RecoveryStatus, RecoveryView, RunInputs, approve
from mpki.recovery import apex as apex_procedure
from mpki.recovery import devices as device_procedure
from mpki.recovery import issuing_ca as issuing_ca_procedure
from mpki.recovery import organisations as organisation_procedure
from mpki.recovery import roots as root_procedure
from mpki.recovery.drill import DrillStep, run_drill
from mpki.status import StatusService

app = typer.Typer(
    help="Compromise recovery (device, organisation, issuing CA, root, apex) under dual control.",
    no_args_is_help=True,
)

BY_OPTION = typer.Option(..., "--by", help="Who is acting (the approver must differ from the proposer).")
NEW_NAME = typer.Option(..., "--new-name", help="Name of the CA that replaces it.")
COMMON_NAME = typer.Option(..., "--common-name", help="Common name of the replacing CA.")


def context() -> RecoveryContext:
    installation = authority()
    return RecoveryContext(settings(), installation, StatusService(installation))


def report(view: RecoveryView, *, as_json: bool = False) -> None:
    if as_json:
        console.print(json.dumps(view.as_json(), indent=2))
        return
    console.print(f"recovery {view.id} ({view.scenario.value}) {view.status.value}: {view.subject}")
    console.print(f"  proposed by {view.proposed_by} at {view.proposed_at.isoformat()}")
    if view.approved_by:
        console.print(f"  approved by {view.approved_by} at {view.approved_at.isoformat() if view.approved_at else ''}")
    for kind, (total, done) in sorted(view.items.items()):
        console.print(f"  items {kind}: {total} ({done} with their replacement)")
    for key, value in (view.outcome or {}).items():
        console.print(f"  {key}: {value}")


def proposed(view: RecoveryView) -> None:
    report(view)
    console.print(f"next: a second person runs `mpki recovery approve {view.id} --by NAME`")


@app.command("device")
@clean_errors
def device(
    eui64: list[str] = typer.Option([], "--eui", help="A compromised device's EUI-64 (repeatable)."),
    from_file: Path | None = typer.Option(None, "--file", help="A file of EUI-64s, one per line (a production run)."),
    by: str = BY_OPTION,
) -> None:
    """Propose: mark the devices' certificates not in use and flag them for RA-reviewed re-enrolment."""
    devices = list(eui64)
    if from_file is not None:
        devices += [line.strip() for line in from_file.read_text().splitlines() if line.strip()]
    proposed(device_procedure.propose(context(), devices, actor=by))


@app.command("organisation")
@clean_errors
def organisation(
    name: str = typer.Argument(..., help="The organisation whose keys are compromised."),
    reason: str = typer.Option("keyCompromise", "--reason", help="Revocation reason (RFC 5280 name)."),
    by: str = BY_OPTION,
) -> None:
    """Propose: revoke the organisation's certificates and publish the CRLs; new CSRs come at approval."""
    proposed(organisation_procedure.propose(context(), name, RevocationReason.parse(reason), actor=by))


@app.command("issuing-ca")
@clean_errors
def issuing_ca(
    ca: str = typer.Argument(..., help="The compromised issuing CA."),
    new_name: str = NEW_NAME,
    common_name: str = COMMON_NAME,
    reason: str = typer.Option("keyCompromise", "--reason", help="Revocation reason for the ARL."),
    by: str = BY_OPTION,
) -> None:
    """Propose: revoke the CA (ARL), stand up its replacement, reissue its live organisation certificates."""
    view = issuing_ca_procedure.propose(context(), ca, new_name, common_name, RevocationReason.parse(reason), actor=by)
    proposed(view)


@app.command("root")
@clean_errors
def root(
    ca: str = typer.Argument(..., help="The compromised root (not the apex: see `apex`)."),
    new_name: str = NEW_NAME,
    common_name: str = COMMON_NAME,
    signer: str | None = typer.Option(None, "--signer", help="CA that signs the TAMPUpdate (default: the apex)."),
    by: str = BY_OPTION,
) -> None:
    """Propose: a new root, its CAs certified again under it, and a TAMPUpdate for the endpoints."""
    proposed(root_procedure.propose(context(), ca, new_name, common_name, signer, actor=by))


@app.command("apex")
@clean_errors
def apex(new_name: str = NEW_NAME, common_name: str = COMMON_NAME, by: str = BY_OPTION) -> None:
    """Propose: the contingency ceremony, a TAMPApexUpdate, a new apex root with a new contingency key."""
    proposed(apex_procedure.propose(context(), new_name, common_name, actor=by))


@contextmanager
def progress_bars() -> Iterator[Progress]:
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bars:
        yield bars


@app.command("approve")
@clean_errors
def approve_command(
    recovery_id: int = typer.Argument(..., help="The proposed (or failed) recovery to run."),
    by: str = BY_OPTION,
    share: list[Path] = typer.Option([], "--share", help="Apex: a contingency custodian's share file (repeatable)."),
    unwrap_key: Path | None = typer.Option(None, "--unwrap-key", help="Apex: the contingency unwrap key file."),
    new_unwrap_key: Path | None = typer.Option(
        None, "--new-unwrap-key", help="Apex: where the new contingency key's unwrap key is written (keep it apart)."
    ),
    csr: list[Path] = typer.Option([], "--csr", help="Organisation: a new CSR to reissue on (repeatable)."),
    profile: str = typer.Option("smki-org", "--profile", help="Organisation: the profile of the new CSRs."),
) -> None:
    """Approve a proposed recovery (dual control) and run it, with progress; exit 1 if it fails."""
    inputs = RunInputs(
        shares=tuple(share),
        unwrap_key=unwrap_key,
        new_unwrap_key=new_unwrap_key,
        csrs=tuple(path.read_bytes() for path in csr),
        csr_profile=profile,
    )
    with progress_bars() as bars:
        tasks: dict[str, TaskID] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=total)
            bars.update(tasks[label], completed=done, total=total)

        view = approve(context(), recovery_id, actor=by, inputs=inputs, progress=progress)
    report(view)


@app.command("withdraw")
@clean_errors
def withdraw(recovery_id: int = typer.Argument(...), by: str = BY_OPTION) -> None:
    """Withdraw a proposal nobody has approved yet."""
    report(context().desk.withdraw(recovery_id, actor=by))


@app.command("show")
@clean_errors
def show(
    recovery_id: int = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
) -> None:
    """A recovery record: who proposed and approved it, its items and its outcome."""
    report(context().desk.show(recovery_id), as_json=as_json)


@app.command("list")
@clean_errors
def list_command(
    status: str | None = typer.Option(None, "--status", help="proposed, running, completed, failed or withdrawn."),
) -> None:
    """Recovery records, newest first."""
    wanted = None
    if status is not None:
        try:
            wanted = RecoveryStatus(status)
        except ValueError:
            raise fail(f"--status must be one of {', '.join(s.value for s in RecoveryStatus)}") from None
    for view in context().desk.list(wanted):
        console.print(f"{view.id:>5}  {view.scenario.value:<12} {view.status.value:<10} {view.subject}")


@app.command("drill")
@clean_errors
def drill(
    keep: Path | None = typer.Option(
        None, "--keep", help="Run in this (new, empty) directory and keep it; default: a temporary one, removed."
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="An empty database to rehearse on (default: SQLite in the drill directory)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the steps as JSON."),
) -> None:
    """Rehearse every recovery scenario end to end in a throwaway installation; exit 1 if a step fails."""
    with tempfile.TemporaryDirectory(prefix="mpki-drill-") as scratch:
        home = keep if keep is not None else Path(scratch) / "home"
        table = Table("scenario", "step", "result", "detail", show_lines=False)

        def show(step: DrillStep) -> None:
            if not as_json:
                errors.print(f"{'PASS' if step.ok else 'FAIL'}  {step.scenario:<12} {step.step}", highlight=False)
            table.add_row(step.scenario, step.step, "pass" if step.ok else "FAIL", step.detail[:160])

        result = run_drill(home, database_url=database_url, on_step=show)
    if as_json:
        console.print(json.dumps({"ok": result.ok, "steps": [s.as_json() for s in result.steps]}, indent=2))
    else:
        Console(soft_wrap=False).print(table)
        passed = sum(1 for s in result.steps if s.ok)
        console.print(f"drill {'passed' if result.ok else 'FAILED'}: {passed} of {len(result.steps)} steps")
    if not result.ok:
        raise typer.Exit(1)
