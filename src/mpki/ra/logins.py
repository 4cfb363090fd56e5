"""Portal sign-in: argon2 passwords, server-side sessions with a bound CSRF token, lockout after repeated
failures. Every sign-in, failure, lockout and sign-out is audited.

Sessions live in the database (not in a signed cookie) so that any node can check one, a sign-out ends it
everywhere, and disabling a person ends their sessions at once.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from mpki.audit import AuditRecord, append
from mpki.config.settings import PortalSettings
from mpki.domain import Action, InvalidRequest, NotFound, Role, Unauthenticated, utcnow
from mpki.ra.authorisation import Principal, authorise, authorise_grant
from mpki.ra.credentials import hash_password, password_matches
from mpki.ra.principals import principal_of
from mpki.store import (
    Database,
    LoginThrottleRepository,
    PersonRepository,
    PortalSession,
    PortalSessionRepository,
)


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the email is unknown, so that a miss costs as much time as a wrong password
    (made on first use: an argon2 hash at import would slow every CLI command)."""
    return hash_password("not a real password, only a timing equaliser")


# A session's last-seen time is written at most this often: reads stay reads.
_TOUCH_EVERY = dt.timedelta(seconds=60)
MIN_PASSWORD = 12


class LoginRefused(Unauthenticated):
    """Sign-in failed; the message never says whether the email exists."""


@dataclass(frozen=True, slots=True)
class PortalIdentity:
    """Who a session cookie stands for, and the CSRF token every form of that session must carry."""

    principal: Principal
    csrf_token: str
    session_id: int


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the cookie value is shown here once and stored only as a hash."""

    cookie: str
    identity: PortalIdentity


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def tokens_match(expected: str, offered: str | None) -> bool:
    """Constant-time comparison of CSRF tokens."""
    return offered is not None and hmac.compare_digest(expected.encode(), offered.encode())


class PortalLogins:
    def __init__(self, database: Database, settings: PortalSettings) -> None:
        self.database = database
        self.settings = settings

    def sign_in(self, email: str, password: str, *, client: str = "unknown") -> SignedIn:
        """A new session, or LoginRefused. Failures count towards a lockout; a success resets the count."""
        email = email.strip().lower()
        now = utcnow()
        refusal: str | None = None
        principal: Principal | None = None
        with self.database.transaction() as session:
            people = PersonRepository(session)
            try:
                person = people.by_email(email)
            except NotFound:
                password_matches(_dummy_hash(), password)
                append(
                    session,
                    [AuditRecord("portal.login_failed", f"portal:{email}", details={"email": email, "client": client})],
                )
                person = None
                refusal = "the email or password is wrong"
            if person is not None:
                throttle = LoginThrottleRepository(session).for_update(person.id)
                if throttle.locked_until is not None and throttle.locked_until > now:
                    append(
                        session,
                        [
                            AuditRecord(
                                "portal.login_refused_locked",
                                f"portal:{email}",
                                details={"email": email, "client": client, "until": throttle.locked_until.isoformat()},
                            )
                        ],
                    )
                    refusal = "too many failed sign-ins: the account is locked for a while; try again later"
                elif person.password_hash is None or not password_matches(person.password_hash, password):
                    throttle.failed_count += 1
                    throttle.last_failed_at = now
                    records = [
                        AuditRecord(
                            "portal.login_failed",
                            f"portal:{email}",
                            details={"email": email, "client": client, "consecutive": throttle.failed_count},
                        )
                    ]
                    refusal = "the email or password is wrong"
                    if throttle.failed_count >= self.settings.max_failed_logins:
                        throttle.locked_until = now + dt.timedelta(minutes=self.settings.lockout_minutes)
                        throttle.failed_count = 0
                        records.append(
                            AuditRecord(
                                "portal.locked",
                                f"portal:{email}",
                                details={"email": email, "until": throttle.locked_until.isoformat()},
                            )
                        )
                        refusal = "too many failed sign-ins: the account is locked for a while; try again later"
                    append(session, records)
                else:
                    try:
                        principal = principal_of(session, person.id, "account")
                    except Unauthenticated as disowned:
                        # The right password for a disabled person or a suspended organisation: refused, audited.
                        append(
                            session,
                            [
                                AuditRecord(
                                    "portal.login_refused_disabled",
                                    f"portal:{email}",
                                    details={"email": email, "client": client, "why": str(disowned)},
                                )
                            ],
                        )
                        refusal = f"sign-in refused: {disowned}"
                if person is not None and principal is not None:
                    throttle.failed_count = 0
                    throttle.locked_until = None
                    cookie = secrets.token_urlsafe(32)
                    row = PortalSessionRepository(session).add(
                        PortalSession(
                            person_id=person.id,
                            token_sha256=_digest(cookie),
                            csrf_token=secrets.token_urlsafe(32),
                            created_at=now,
                            last_seen_at=now,
                            expires_at=now + dt.timedelta(hours=self.settings.session_max_hours),
                        )
                    )
                    append(
                        session,
                        [AuditRecord("portal.login", principal.actor, details={"client": client, "session": row.id})],
                    )
                    return SignedIn(cookie, PortalIdentity(principal, row.csrf_token, row.id))
        raise LoginRefused(refusal or "the email or password is wrong")

    def identify(self, cookie: str) -> PortalIdentity:
        """The identity behind a session cookie; ended, expired, idle or disowned sessions are refused."""
        now = utcnow()
        digest = _digest(cookie)
        with self.database.reader() as session:
            row = PortalSessionRepository(session).live_by_hash(digest, now)
            if row is None or now - row.last_seen_at > dt.timedelta(minutes=self.settings.session_idle_minutes):
                raise Unauthenticated("the session has ended: sign in again")
            principal = principal_of(session, row.person_id, "session")
            identity = PortalIdentity(principal, row.csrf_token, row.id)
            stale = now - row.last_seen_at > _TOUCH_EVERY
        if stale:
            with self.database.transaction() as session:
                PortalSessionRepository(session).touch(identity.session_id, now)
        return identity

    def sign_out(self, cookie: str) -> None:
        now = utcnow()
        with self.database.transaction() as session:
            row = PortalSessionRepository(session).end(_digest(cookie), now)
            if row is not None:
                person = PersonRepository(session).by_id(row.person_id)
                append(
                    session,
                    [AuditRecord("portal.logout", f"{person.role}:{person.email}", details={"session": row.id})],
                )

    def set_password(self, principal: Principal, email: str, password: str) -> None:
        """Give someone a (new) password; their sessions end and any lockout is lifted."""
        if len(password) < MIN_PASSWORD:
            raise InvalidRequest(f"a password has at least {MIN_PASSWORD} characters")
        now = utcnow()
        with self.database.transaction() as session:
            person = PersonRepository(session).by_email(email.strip().lower())
            if person.id != principal.person_id:
                authorise(principal, Action.TOKEN_CREATE, person.organisation_id)
                authorise_grant(principal, Role(person.role))
            person.password_hash = hash_password(password)
            throttle = LoginThrottleRepository(session).for_update(person.id)
            throttle.failed_count = 0
            throttle.locked_until = None
            ended = PortalSessionRepository(session).end_all_for(person.id, now)
            append(
                session,
                [
                    AuditRecord(
                        "person.password_set",
                        principal.actor,
                        details={"email": person.email, "sessions_ended": ended},
                    )
                ],
            )
