"""Key ceremonies: declarative files run step by step into a signed record; the development ceremony."""

from mpki.ceremony.dev import DEV_HIERARCHY, CaPlan, create_dev_hierarchy, run_dev_ceremony
from mpki.ceremony.record import VerifiedRecord, verify_record
from mpki.ceremony.runner import CeremonyResult, run_ceremony
from mpki.ceremony.spec import CeremonySpec

__all__ = [
    "DEV_HIERARCHY",
    "CaPlan",
    "CeremonyResult",
    "CeremonySpec",
    "VerifiedRecord",
    "create_dev_hierarchy",
    "run_ceremony",
    "run_dev_ceremony",
    "verify_record",
]
