"""Approving a proposed recovery runs it: the desk checks dual control, the scenario's procedure runs,
and the record ends completed with its outcome or failed with the reason (a failed one may be run again)."""

from __future__ import annotations

from collections.abc import Callable

from mpki.domain import KeyStoreError, MpkiError
from mpki.keys import INACTIVE_MESSAGE
from mpki.recovery import apex, devices, issuing_ca, organisations, roots
from mpki.recovery.context import Progress, RecoveryContext, Run, RunInputs, no_progress
from mpki.recovery.records import RecoveryView, Scenario

PROCEDURES: dict[Scenario, Callable[[Run], dict[str, object]]] = {
    Scenario.DEVICE: devices.run,
    Scenario.ORGANISATION: organisations.run,
    Scenario.ISSUING_CA: issuing_ca.run,
    Scenario.ROOT: roots.run,
    Scenario.APEX: apex.run,
}


def approve(
    context: RecoveryContext,
    recovery_id: int,
    *,
    actor: str,
    inputs: RunInputs | None = None,
    progress: Progress | None = None,
) -> RecoveryView:
    """Dual control's second half, then the run. A refusal of the run itself (bad inputs, an inactive
    keystore) is recorded as a failed run with its reason, and raised."""
    if not context.authority.keystore.is_active():
        # Every procedure but the device one signs with CA keys; refuse before the approval is recorded.
        view = context.desk.show(recovery_id)
        if view.scenario is not Scenario.DEVICE:
            raise KeyStoreError(INACTIVE_MESSAGE)
    record = context.desk.begin(recovery_id, actor=actor)
    job = Run(context, record, inputs or RunInputs(), progress or no_progress)
    try:
        outcome = PROCEDURES[record.scenario](job)
    except MpkiError as error:
        context.desk.finish(recovery_id, actor=actor, outcome=None, error=str(error))
        raise
    except Exception as error:  # recorded, then raised for the operator to see in full
        context.desk.finish(recovery_id, actor=actor, outcome=None, error=f"internal error: {type(error).__name__}")
        raise
    return context.desk.finish(recovery_id, actor=actor, outcome=outcome)
