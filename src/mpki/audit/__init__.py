"""The append-only, hash-chained audit log: append in the caller's transaction, verify, export."""

from mpki.audit.chain import AuditRecord, append
from mpki.audit.verify import VerifyResult, export_jsonl, verify_chain

__all__ = ["AuditRecord", "VerifyResult", "append", "export_jsonl", "verify_chain"]
