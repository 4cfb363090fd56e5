"""Anchoring the audit chain outside the database: every committed event to syslog, signed checkpoints.

Hash chaining alone cannot show that the newest events were deleted and `audit_head` rolled back, or
that events were rewritten and the rest re-chained: the database holds every hash. So, after each
transaction that appended events commits, the process's `AuditAnchoring`
- forwards those events to a syslog target (RFC 5424, structured data `[mpki@32473 seq=… hash=…]`,
  octet-counted over TCP as RFC 6587 says, one datagram each over a Unix socket), in sequence order;
- when the committed head is `audit_checkpoint_events` or more past the last checkpoint, and at least
  every `audit_checkpoint_seconds` while the head moves, asks the signer for a signed checkpoint of the
  head, stores it in `audit_checkpoints` and forwards it to syslog too. The signer appends it to its
  anchor directory before answering, and refuses one that goes back on what it anchored.

Nothing here runs inside the business transaction or can fail it: `append` only notes the new events
on the session, and a commit hands them to a background thread (cheap on the issuance path: one list
append per commit, no query). A syslog or signer failure is logged and counted in `stats`, never raised.

Wiring: the process builds one `AuditAnchoring.from_settings(settings, database, signer)` right after
opening its database and calls `install(anchoring)`; `install` closes it at interpreter exit (a last
checkpoint, syslog flushed). The thread takes the `audit_checkpoint_seconds` checkpoint by itself once
the process has committed an event; a server calls `close()` when its lifespan ends (or `checkpoint_now()`
from a maintenance loop that wants the tick on its own clock, e.g. for nodes that only read). Events
appended inside a savepoint that is rolled back while the outer transaction commits are not supported
(no caller does that): they would be forwarded although never committed.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, SessionTransaction

from mpki.config import Settings
from mpki.domain import ConfigError, MpkiError, utcnow
from mpki.signer.checkpoints import CheckpointSigner, SignedCheckpoint
from mpki.store import AuditCheckpointRepository, AuditRepository, CheckpointRow, Database

log: structlog.stdlib.BoundLogger = structlog.wrap_logger(
    logging.getLogger("mpki.audit.anchoring"),
    processors=[structlog.processors.format_exc_info, structlog.processors.KeyValueRenderer(key_order=["event"])],
    wrapper_class=structlog.stdlib.BoundLogger,
)

# RFC 5424: facility 13 (log audit), severity 5 (notice) for events, 6 (informational) for checkpoints.
EVENT_PRI = 13 * 8 + 5
CHECKPOINT_PRI = 13 * 8 + 6
SD_ENTERPRISE = "32473"  # the IANA number RFC 5612 sets aside for documentation; a site may use its own
APP_NAME = "mpki"
BOM = b"\xef\xbb\xbf"
MAX_BACKLOG = 100_000  # records kept for a syslog target that is down; older ones are dropped and counted
RETRY_SECONDS = 5.0
SOCKET_TIMEOUT = 5.0
_PENDING = "mpki.audit.anchoring.pending"


@dataclass(frozen=True, slots=True)
class CommittedEvent:
    seq: int
    at: dt.datetime
    actor: str
    action: str
    ca: str | None
    serial: str | None
    request_id: int | None
    details: str
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CommittedEvent:
        return cls(
            row["seq"],
            row["at"],
            row["actor"],
            row["action"],
            row["ca"],
            row["serial"],
            row["request_id"],
            row["details"],
            row["prev_hash"],
            row["hash"],
        )


@dataclass(slots=True)
class AnchoringStats:
    """Counters an operator (or /metrics) can read: what went out, and what failed."""

    forwarded: int = 0
    syslog_failures: int = 0
    dropped: int = 0
    checkpoints: int = 0
    checkpoint_failures: int = 0


# ----- RFC 5424 records ----------------------------------------------------------------------------


def _sd_value(value: object) -> str:
    """An SD-PARAM value: `"`, `\\` and `]` escaped with a backslash (RFC 5424 section 6.3.3)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd(sd_id: str, params: Sequence[tuple[str, object]]) -> str:
    pairs = " ".join(f'{name}="{_sd_value(value)}"' for name, value in params if value is not None)
    return f"[{sd_id}@{SD_ENTERPRISE} {pairs}]"


def _header_name(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most `limit` characters, "-" when empty."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RecordFormat:
    """RFC 5424 lines for one host and process."""

    def __init__(self, hostname: str | None = None, procid: int | None = None) -> None:
        self.hostname = _header_name(hostname or socket.gethostname(), 255)
        self.procid = _header_name(str(procid if procid is not None else os.getpid()), 128)

    def _line(self, pri: int, moment: dt.datetime, msgid: str, sd: str, message: bytes) -> bytes:
        header = f"<{pri}>1 {_timestamp(moment)} {self.hostname} {APP_NAME} {self.procid} {msgid} {sd}"
        return header.encode("utf-8") + b" " + BOM + message

    def event(self, committed: CommittedEvent) -> bytes:
        sd = _sd(
            "mpki",
            [
                ("seq", committed.seq),
                ("action", committed.action),
                ("actor", committed.actor),
                ("ca", committed.ca),
                ("serial", committed.serial),
                ("request", committed.request_id),
                ("prev", committed.prev_hash),
                ("hash", committed.hash),
            ],
        )
        return self._line(EVENT_PRI, committed.at, "audit", sd, committed.details.encode("utf-8"))

    def checkpoint(self, signed: SignedCheckpoint) -> bytes:
        wire = signed.to_json()
        sd = _sd(
            "mpki-checkpoint",
            [
                ("seq", signed.sequence),
                ("hash", signed.chain_hash),
                ("at", wire["at"]),
                ("key", signed.key_id),
                ("publicKey", wire["public_key"]),
                ("signature", wire["signature"]),
            ],
        )
        text = f"audit chain checkpoint: event {signed.sequence} has hash {signed.chain_hash}"
        return self._line(CHECKPOINT_PRI, signed.at, "checkpoint", sd, text.encode("utf-8"))


# ----- syslog targets ------------------------------------------------------------------------------


class SyslogTarget:
    """Where records go; `send` raises OSError when the target cannot take them (the caller retries)."""

    _socket: socket.socket | None = None

    def send(self, records: Sequence[bytes]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Drop the connection, if any; the next send opens a new one."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @staticmethod
    def parse(spec: str) -> SyslogTarget:
        """`tcp://HOST:PORT` (octet counting, RFC 6587) or `unix:/path/to/socket` (datagrams)."""
        if spec.startswith("unix:"):
            path = spec.removeprefix("unix:")
            if not path:
                raise ConfigError("the audit syslog target unix: needs a socket path")
            return UnixSyslog(path)
        parts = urlsplit(spec)
        if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
            raise ConfigError(f"the audit syslog target {spec!r} must be tcp://HOST:PORT or unix:/path")
        return TcpSyslog(parts.hostname, parts.port)


class TcpSyslog(SyslogTarget):
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None

    def __str__(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def send(self, records: Sequence[bytes]) -> None:
        if self._socket is None:
            self._socket = socket.create_connection((self.host, self.port), timeout=SOCKET_TIMEOUT)
        frames = b"".join(str(len(record)).encode("ascii") + b" " + record for record in records)
        try:
            self._socket.sendall(frames)
        except OSError:
            self.close()
            raise


class UnixSyslog(SyslogTarget):
    def __init__(self, path: str) -> None:
        self.path = path
        self._socket: socket.socket | None = None

    def __str__(self) -> str:
        return f"unix:{self.path}"

    def send(self, records: Sequence[bytes]) -> None:
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.settimeout(SOCKET_TIMEOUT)
        try:
            for record in records:
                self._socket.sendto(record, self.path)
        except OSError:
            self.close()
            raise


# ----- the process's anchoring ----------------------------------------------------------------------


class AuditAnchoring:
    """Forwards committed events and takes checkpoints for one database, on a background thread."""

    def __init__(
        self,
        database: Database,
        *,
        every_events: int = 1000,
        every_seconds: float = 300.0,
        syslog: SyslogTarget | None = None,
        signer: CheckpointSigner | None = None,
        records: RecordFormat | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        if every_events < 1 or every_seconds <= 0:
            raise ConfigError("audit checkpoints need a positive event count and interval")
        self.database = database
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.syslog = syslog
        self.signer = signer
        self.records = records or RecordFormat()
        self.stats = AnchoringStats()
        self._clock = clock
        self._queue: deque[Mapping[str, Any]] = deque()
        self._backlog: deque[bytes] = deque()
        self._retry_at = 0.0
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._work = threading.RLock()  # one batch or checkpoint at a time, worker or caller
        self._highest_seen = 0
        self._checkpointed: int | None = None  # the last checkpointed event, read from the database once
        self._last_tick = time.monotonic()

    @classmethod
    def from_settings(
        cls, settings: Settings, database: Database, signer: CheckpointSigner | None = None
    ) -> AuditAnchoring:
        """The anchoring `settings` ask for: `audit_syslog`, and checkpoints by the signer (when given)
        every `audit_checkpoint_events` events or `audit_checkpoint_seconds` seconds."""
        syslog = SyslogTarget.parse(settings.audit_syslog) if settings.audit_syslog else None
        return cls(
            database,
            every_events=settings.audit_checkpoint_events,
            every_seconds=settings.audit_checkpoint_seconds,
            syslog=syslog,
            signer=signer,
        )

    @property
    def active(self) -> bool:
        return self.syslog is not None or self.signer is not None

    def watches(self, session: Session) -> bool:
        """Whether `session` writes to this anchoring's database (through any engine of the process)."""
        if not self.active:
            return False
        bind = session.get_bind()
        engine = bind if isinstance(bind, Engine) else bind.engine
        return engine is self.database.engine or engine.url == self.database.engine.url

    def watches_database(self, url: str) -> bool:
        return self.active and make_url(url) == self.database.engine.url

    # ----- the hot path: called after a commit ---------------------------------------------------

    def committed(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Take events a transaction committed (as `append` wrote them); the thread does the rest."""
        with self._cond:
            if self._stopping:
                return
            self._queue.extend(rows)
            overflow = len(self._queue) - MAX_BACKLOG
            for _ in range(max(0, overflow)):
                self._queue.popleft()
            if overflow > 0:
                self.stats.dropped += overflow
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mpki-audit-anchoring", daemon=True)
                self._thread.start()
            self._cond.notify()

    # ----- called by the wiring ---------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every committed event handed over so far has been processed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cond.wait(left)
        return True

    def checkpoint_now(self) -> SignedCheckpoint | None:
        """Checkpoint the committed head if it moved past the last checkpoint (the periodic tick and
        shutdown); None when there is nothing new, no signer, or the signer failed (logged, counted)."""
        self.flush()
        with self._work:
            return self._checkpoint_head()

    def close(self) -> None:
        """Flush, take a last checkpoint, stop the thread and drop the syslog connection."""
        self.flush()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30.0)
        with self._work:
            self._checkpoint_head()
            self._send_backlog(force=True)
            if self.syslog is not None:
                self.syslog.close()

    # ----- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    wait = self._next_wake()
                    if wait <= 0 or not self._cond.wait(wait):
                        break
                if self._stopping and not self._queue:
                    return
                rows = list(self._queue)
                self._queue.clear()
                self._busy = True
            try:
                with self._work:
                    self._round(rows)
            except Exception:
                log.exception("audit_anchoring.round_failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _next_wake(self) -> float:
        wake = self._last_tick + self.every_seconds
        if self._backlog:
            wake = min(wake, self._retry_at)
        return wake - time.monotonic()

    def _round(self, rows: list[Mapping[str, Any]]) -> None:
        events = sorted((CommittedEvent.from_row(row) for row in rows), key=lambda e: e.seq)
        if events:
            self._highest_seen = max(self._highest_seen, events[-1].seq)
            if self.syslog is not None:
                self._backlog.extend(self.records.event(e) for e in events)
        self._send_backlog()
        if time.monotonic() - self._last_tick >= self.every_seconds:
            self._last_tick = time.monotonic()
            self._checkpoint_head()
        elif self.signer is not None and self._highest_seen - self._last_checkpointed() >= self.every_events:
            self._checkpointed = None  # another process may have taken one meanwhile: read it again
            if self._highest_seen - self._last_checkpointed() >= self.every_events:
                self._checkpoint_head()

    def _send_backlog(self, force: bool = False) -> None:
        if self.syslog is None or not self._backlog:
            return
        overflow = len(self._backlog) - MAX_BACKLOG
        for _ in range(max(0, overflow)):
            self._backlog.popleft()
        if overflow > 0:
            self.stats.dropped += overflow
            log.error("audit_anchoring.syslog_records_dropped", target=str(self.syslog), dropped=overflow)
        if not force and time.monotonic() < self._retry_at:
            return
        records = list(self._backlog)
        try:
            self.syslog.send(records)
        except OSError as error:
            self.stats.syslog_failures += 1
            self._retry_at = time.monotonic() + RETRY_SECONDS
            log.error(
                "audit_anchoring.syslog_unreachable", target=str(self.syslog), error=str(error), waiting=len(records)
            )
            return
        self._backlog.clear()
        self.stats.forwarded += len(records)

    # ----- checkpoints -----------------------------------------------------------------------------

    def _last_checkpointed(self) -> int:
        if self._checkpointed is None:
            with self.database.reader() as session:
                latest = AuditCheckpointRepository(session).latest()
            self._checkpointed = latest.seq if latest is not None else 0
        return self._checkpointed

    def _committed_head(self) -> tuple[int, str, CheckpointRow | None]:
        """The head as committed now, and the latest stored checkpoint."""
        with self.database.reader() as session:
            head = AuditRepository(session).head()
            latest = AuditCheckpointRepository(session).latest()
        self._checkpointed = latest.seq if latest is not None else 0
        return (head.seq, head.hash, latest) if head is not None else (0, "", latest)

    def _checkpoint_head(self) -> SignedCheckpoint | None:
        """Sign, store and forward a checkpoint of the committed head when it is past the last one."""
        self._last_tick = time.monotonic()
        if self.signer is None:
            return None
        try:
            seq, chain_hash, latest = self._committed_head()
            if seq == 0 or (latest is not None and (latest.seq, latest.chain_hash) == (seq, chain_hash)):
                return None  # nothing new since the last checkpoint
            # A head below the last checkpoint (or at it with another hash) is asked about all the same:
            # the signer refuses it against its anchors, and that refusal is the alarm.
            signed = self._signed(seq, chain_hash)
            if signed is None:
                return None
            with self.database.transaction() as session:
                row = CheckpointRow(
                    signed.sequence,
                    signed.chain_hash,
                    signed.at,
                    signed.key_id,
                    signed.public_key_der,
                    signed.signature,
                )
                AuditCheckpointRepository(session).add(row, self._clock())
        except Exception as error:  # never let a checkpoint take the process down
            self.stats.checkpoint_failures += 1
            log.error("audit_anchoring.checkpoint_failed", error=str(error), kind=type(error).__name__)
            return None
        self._checkpointed = signed.sequence
        self.stats.checkpoints += 1
        if self.syslog is not None:
            self._backlog.append(self.records.checkpoint(signed))
            self._send_backlog(force=True)
        log.info("audit_anchoring.checkpoint", seq=signed.sequence, hash=signed.chain_hash, key=signed.key_id)
        return signed

    def _signed(self, seq: int, chain_hash: str) -> SignedCheckpoint | None:
        """Ask the signer; if it refuses because another process anchored a later head meanwhile, ask
        once more for the head as it is now. Anything else is counted and logged."""
        assert self.signer is not None
        try:
            signed = self.signer.checkpoint(seq, chain_hash)
        except (MpkiError, OSError) as error:
            now_seq, now_hash, _ = self._committed_head()
            if now_seq <= seq:
                self.stats.checkpoint_failures += 1
                log.error("audit_anchoring.checkpoint_refused", seq=seq, error=str(error), kind=type(error).__name__)
                return None
            seq, chain_hash = now_seq, now_hash
            signed = self.signer.checkpoint(seq, chain_hash)
        if signed.sequence != seq or signed.chain_hash != chain_hash:
            raise MpkiError(f"the signer answered a checkpoint of event {signed.sequence}, not of event {seq}")
        signed.verify()
        return signed


# ----- the process-wide hook -------------------------------------------------------------------------

_current: AuditAnchoring | None = None
_install_lock = threading.Lock()
_hooked = False


def install(anchoring: AuditAnchoring | None) -> AuditAnchoring | None:
    """Make `anchoring` the process's anchoring (None: none); returns the one it replaces, unclosed.

    The first call hooks SQLAlchemy's commit events and arranges for the installed anchoring to be
    closed at interpreter exit. The CLI and the web server call this once, after opening the database.
    """
    global _current, _hooked
    with _install_lock:
        if not _hooked:
            event.listen(Session, "after_commit", _after_commit)
            event.listen(Session, "after_transaction_end", _after_transaction_end)
            atexit.register(_close_at_exit)
            _hooked = True
        previous, _current = _current, anchoring
    return previous


def installed() -> AuditAnchoring | None:
    return _current


def note_appended(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Called by `append` inside the transaction: remember the rows until the session commits."""
    anchoring = _current
    if anchoring is None or not anchoring.watches(session):
        return
    pending: list[Mapping[str, Any]] | None = session.info.get(_PENDING)
    if pending is None:
        session.info[_PENDING] = pending = []
    pending.extend(rows)


def _after_commit(session: Session) -> None:
    rows = session.info.pop(_PENDING, None)
    anchoring = _current
    if rows and anchoring is not None:
        anchoring.committed(rows)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)  # rolled back or closed without commit: nothing to forward


def _close_at_exit() -> None:
    anchoring = _current
    if anchoring is not None:
        try:
            anchoring.close()
        except Exception:
            log.exception("audit_anchoring.close_failed")
