"""What every procedure works with: the CA, status (revocation, CRLs), the desk, and the run's inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mpki.ca import CertificationAuthority
from mpki.config import Settings
from mpki.recovery.records import RecoveryDesk, RecoveryView
from mpki.status import StatusService

# (what is being done, how many done, out of how many): the CLI draws it as a progress bar.
Progress = Callable[[str, int, int], None]


def no_progress(_label: str, _done: int, _total: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class RunInputs:
    """What the approver brings to the run and the record must never hold: share files, the unwrap key,
    the new CSRs. Given at approval, not at proposal."""

    shares: tuple[Path, ...] = ()
    passphrases: Mapping[str, str] | None = None
    unwrap_key: Path | None = None
    new_unwrap_key: Path | None = None
    csrs: tuple[bytes, ...] = ()
    csr_profile: str = "smki-org"


@dataclass
class RecoveryContext:
    settings: Settings
    authority: CertificationAuthority
    status: StatusService
    desk: RecoveryDesk = field(init=False)

    def __post_init__(self) -> None:
        self.desk = RecoveryDesk(self.authority.database)

    def work_dir(self, recovery_id: int) -> Path:
        """Where a run leaves what it produced for people: signed TAMP messages, ceremony records."""
        path = self.settings.home / "recovery" / str(recovery_id)
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True, slots=True)
class Run:
    """One approved run: its record, who approved it, and the steps it reports as it goes."""

    context: RecoveryContext
    record: RecoveryView
    inputs: RunInputs
    progress: Progress

    @property
    def actor(self) -> str:
        return f"recovery:{self.record.id}:{self.record.approved_by}"

    def step(self, name: str, **details: object) -> None:
        self.context.desk.step(self.record.id, name, self.record.approved_by or "", dict(details))
