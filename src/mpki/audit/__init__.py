"""The append-only, hash-chained audit log: append in the caller's transaction, anchor it outside the
database (syslog, signed checkpoints), verify, export."""

from mpki.audit.anchoring import AuditAnchoring, install
from mpki.audit.chain import AuditRecord, append
from mpki.audit.verify import VerifyResult, export_jsonl, verify_chain, verify_with_anchors

__all__ = [
    "AuditAnchoring",
    "AuditRecord",
    "VerifyResult",
    "append",
    "export_jsonl",
    "install",
    "verify_chain",
    "verify_with_anchors",
]
