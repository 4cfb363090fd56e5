"""The compromise procedures of seed 000, Part G: device, organisation, issuing CA, root and apex.

Each is proposed by one person and approved by another (`records.RecoveryDesk`); approving runs it
(`runner.approve`), writing a recovery record, its items and audit events.
"""

from mpki.recovery.context import Progress, RecoveryContext, RunInputs
from mpki.recovery.records import RecoveryDesk, RecoveryStatus, RecoveryView, Scenario
from mpki.recovery.runner import approve

__all__ = [
    "Progress",
    "RecoveryContext",
    "RecoveryDesk",
    "RecoveryStatus",
    "RecoveryView",
    "RunInputs",
    "Scenario",
    "approve",
]
