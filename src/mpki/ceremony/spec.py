"""The declarative ceremony file: who is present, the quorum groups, the tokens, and the CAs to make.

Each quorum group is its own secret with its own custodians and shares (`keys.registry.GroupRole`):

    quorum:       {group: ca-keys, threshold: 3, shares: 5}      # activation: the people's custodians
    backup:       {custodians: [...], threshold: 2}              # group `backup`: the backup key only
    token_admin:  {custodians: [...], threshold: 2}              # group `token-admin`: the SO PINs only
    contingency:  {apex: ..., custodians: [...], threshold: 3}   # the apex contingency key's own activation

`backup` is required; `token_admin` is required for a pkcs11 ceremony (it initialises the tokens) and
may be given for a software one. Custodians may hold shares in several groups; every group name is
distinct, and the ceremony makes sure no two groups share a secret or a share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mpki.config import Environment
from mpki.domain import InvalidRequest
from mpki.keys import KeyAlgorithm
from mpki.keys.contingency import GROUP as CONTINGENCY_GROUP
from mpki.keys.quorum import QuorumPolicy
from mpki.keys.registry import GroupRole
from mpki.profiles import ProfileKind, ca_subject, get_profile
from mpki.profiles.model import KeyRule

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")
BACKUP_GROUP = "backup"
TOKEN_ADMIN_GROUP = "token-admin"
DEFAULT_THRESHOLD = 2
# The environment is written into MPKI_HOME/mpki.toml, where settings must be able to read it back.
ENVIRONMENTS = tuple(e.value for e in Environment)


@dataclass(frozen=True, slots=True)
class People:
    key_manager: str
    custodians: tuple[str, ...]
    witnesses: tuple[str, ...]
    auditor: str


@dataclass(frozen=True, slots=True)
class CaStep:
    name: str
    profile: str
    common_name: str
    algorithm: KeyAlgorithm
    parent: str | None
    token: str | None
    issues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupStep:
    """A quorum group other than the CA keys' activation group: its role, policy and custodians."""

    role: GroupRole
    custodians: tuple[str, ...]
    quorum: QuorumPolicy


@dataclass(frozen=True, slots=True)
class ContingencyStep:
    """The apex contingency key: made in its own vault behind its own quorum, wrapped into the apex root."""

    apex: str
    custodians: tuple[str, ...]
    quorum: QuorumPolicy


@dataclass(frozen=True, slots=True)
class CeremonySpec:
    ceremony: str
    environment: str
    backend: str
    people: People
    quorum: QuorumPolicy
    tokens: tuple[str, ...]
    backup: GroupStep
    cas: tuple[CaStep, ...]
    record_signer: str
    source: bytes
    contingency: ContingencyStep | None = None
    token_admin: GroupStep | None = None

    @classmethod
    def load(cls, path: Path) -> CeremonySpec:
        if not path.is_file():
            raise InvalidRequest(f"no ceremony file {path}")
        source = path.read_bytes()
        try:
            raw = yaml.safe_load(source)
        except yaml.YAMLError as error:
            raise InvalidRequest(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise InvalidRequest(f"{path}: a ceremony file is a YAML mapping")
        return parse(raw, source)


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{where}: `{key}` must be a non-empty string")
    return value.strip()


def _names(raw: dict[str, Any], key: str, where: str, *, required: bool = True) -> tuple[str, ...]:
    value = raw.get(key, [] if not required else None)
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidRequest(f"{where}: `{key}` must be a list of names")
    if len(set(value)) != len(value):
        raise InvalidRequest(f"{where}: `{key}` names someone twice")
    return tuple(v.strip() for v in value)


def parse(raw: dict[str, Any], source: bytes) -> CeremonySpec:
    """Validate everything before the first step, so a bad file changes nothing."""
    ceremony = _text(raw, "ceremony", "ceremony file")
    backend = raw.get("backend", "software")
    if backend not in ("software", "pkcs11"):
        raise InvalidRequest("ceremony file: `backend` must be software or pkcs11")
    people_raw = raw.get("people")
    if not isinstance(people_raw, dict):
        raise InvalidRequest("ceremony file: `people` must list key_manager, custodians, witnesses and auditor")
    people = People(
        key_manager=_text(people_raw, "key_manager", "people"),
        custodians=_names(people_raw, "custodians", "people"),
        witnesses=_names(people_raw, "witnesses", "people"),
        auditor=_text(people_raw, "auditor", "people"),
    )
    if not people.witnesses:
        raise InvalidRequest("people: a ceremony needs at least one witness")
    quorum_raw = raw.get("quorum")
    if not isinstance(quorum_raw, dict):
        raise InvalidRequest("ceremony file: `quorum` must give group, threshold and shares")
    try:
        quorum = QuorumPolicy(
            group=str(quorum_raw.get("group", "ca-keys")),
            threshold=int(quorum_raw["threshold"]),
            shares=int(quorum_raw.get("shares", len(people.custodians))),
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidRequest("quorum: threshold and shares must be whole numbers") from None
    if quorum.shares != len(people.custodians):
        raise InvalidRequest(f"quorum: {quorum.shares} shares but {len(people.custodians)} custodians present")
    tokens = _names(raw, "tokens", "ceremony file", required=False)
    for label in tokens:
        if not _SLUG.fullmatch(label):
            raise InvalidRequest(f"token label {label!r}: use lower-case letters, digits and dashes (max 31)")
    if backend == "pkcs11" and not tokens:
        raise InvalidRequest("ceremony file: a pkcs11 ceremony must list the tokens it initialises")
    cas = tuple(_ca_step(item, backend, tokens) for item in raw.get("cas") or [])
    if not cas:
        raise InvalidRequest("ceremony file: `cas` must list at least one CA to create")
    names = [step.name for step in cas]
    if len(set(names)) != len(names):
        raise InvalidRequest("ceremony file: two CAs share a name")
    for index, step in enumerate(cas):
        if step.parent is not None and step.parent not in names[:index]:
            raise InvalidRequest(f"CA {step.name}: parent {step.parent!r} must be created earlier in this ceremony")
    signer = str(raw.get("record_signer", names[0]))
    if signer not in names:
        raise InvalidRequest(f"record_signer {signer!r} is not a CA made in this ceremony")
    contingency = _contingency(raw.get("contingency"), cas, quorum)
    backup = _group_step(raw.get("backup"), "backup", GroupRole.BACKUP, BACKUP_GROUP)
    token_admin = _group_step(raw.get("token_admin"), "token_admin", GroupRole.TOKEN_ADMIN, TOKEN_ADMIN_GROUP)
    if backup is None:
        raise InvalidRequest("ceremony file: `backup` must give the backup group's custodians and threshold")
    if backend == "pkcs11" and token_admin is None:
        raise InvalidRequest("ceremony file: a pkcs11 ceremony needs `token_admin` (custodians and threshold)")
    names = [quorum.group, backup.quorum.group]
    names += [step.quorum.group for step in (token_admin, contingency) if step is not None]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InvalidRequest(f"ceremony file: two quorum groups are named {twice[0]!r}; each group is its own")
    environment = raw.get("environment", "development")
    if environment not in ENVIRONMENTS:
        raise InvalidRequest(f"ceremony file: `environment` must be one of {', '.join(ENVIRONMENTS)}")
    return CeremonySpec(
        ceremony=ceremony,
        environment=environment,
        backend=backend,
        people=people,
        quorum=quorum,
        tokens=tokens,
        backup=backup,
        cas=cas,
        record_signer=signer,
        source=source,
        contingency=contingency,
        token_admin=token_admin,
    )


def _group_step(raw: Any, key: str, role: GroupRole, default_group: str) -> GroupStep | None:
    """`backup: {group: backup, custodians: [...], threshold: 2}`: a group of its own, M of N with M >= 2."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest(
            f"ceremony file: `{key}` is the {role.value} group: give its custodians and threshold"
            f" ({key}: {{custodians: [...], threshold: {DEFAULT_THRESHOLD}}})"
        )
    custodians = _names(raw, "custodians", key)
    try:
        threshold = int(raw.get("threshold", DEFAULT_THRESHOLD))
        shares = int(raw.get("shares", len(custodians)))
    except (TypeError, ValueError):
        raise InvalidRequest(f"{key}: threshold and shares must be whole numbers") from None
    if shares != len(custodians):
        raise InvalidRequest(f"{key}: {shares} shares but {len(custodians)} custodians named")
    if not 1 < threshold <= len(custodians):
        raise InvalidRequest(f"{key}: threshold {threshold} needs 2 to {len(custodians)} of the custodians")
    policy = QuorumPolicy(group=str(raw.get("group", default_group)), threshold=threshold, shares=shares)
    return GroupStep(role=role, custodians=custodians, quorum=policy)


def _contingency(raw: Any, cas: tuple[CaStep, ...], quorum: QuorumPolicy) -> ContingencyStep | None:
    """`contingency: {apex: CA, custodians: [...], threshold: 3}`: the apex is a root made in this ceremony."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest("ceremony file: `contingency` must give apex, custodians and threshold")
    apex = _text(raw, "apex", "contingency")
    step = next((ca for ca in cas if ca.name == apex), None)
    if step is None or step.parent is not None:
        raise InvalidRequest(f"contingency: the apex {apex!r} must be a root made in this ceremony")
    custodians = _names(raw, "custodians", "contingency")
    try:
        threshold = int(raw.get("threshold", 3))
    except (TypeError, ValueError):
        raise InvalidRequest("contingency: threshold must be a whole number") from None
    if not 1 < threshold <= len(custodians):
        raise InvalidRequest(f"contingency: threshold {threshold} needs 2 to {len(custodians)} of the custodians")
    policy = QuorumPolicy(group=CONTINGENCY_GROUP, threshold=threshold, shares=len(custodians))
    if quorum.group == policy.group:
        raise InvalidRequest(f"quorum: the group name {policy.group!r} is the contingency key's own")
    return ContingencyStep(apex=apex, custodians=custodians, quorum=policy)


def _ca_step(item: Any, backend: str, tokens: tuple[str, ...]) -> CaStep:
    if not isinstance(item, dict):
        raise InvalidRequest("cas: each CA is a mapping with name, profile, common_name")
    name = _text(item, "name", "CA")
    where = f"CA {name}"
    profile = get_profile(_text(item, "profile", where))
    if not profile.is_ca:
        raise InvalidRequest(f"{where}: profile {profile.name} is not a CA profile")
    token = item.get("token")
    if backend == "pkcs11":
        if token not in tokens:
            raise InvalidRequest(f"{where}: `token` must be one of the ceremony's tokens {list(tokens)}")
    elif token is not None:
        raise InvalidRequest(f"{where}: `token` only applies to a pkcs11 ceremony")
    issues = _names(item, "issues", where, required=False)
    for issued in issues:
        get_profile(issued)
    parent = item.get("parent")
    # What creating the CA would refuse halfway through the ceremony is refused here, before the first step.
    if (profile.kind is ProfileKind.ROOT) != (parent is None):
        raise InvalidRequest(f"{where}: a root ({profile.name}) has no parent; an issuing CA needs one")
    common_name = _text(item, "common_name", where)
    ca_subject(profile, common_name)
    algorithm = KeyAlgorithm.parse(str(item.get("algorithm", "ec-p256")))
    if profile.key_rule is KeyRule.P256_ONLY and algorithm is not KeyAlgorithm.EC_P256:
        raise InvalidRequest(f"{where}: profile {profile.name} needs an ec-p256 key, not {algorithm.value}")
    return CaStep(
        name=name,
        profile=profile.name,
        common_name=common_name,
        algorithm=algorithm,
        parent=str(parent) if parent is not None else None,
        token=str(token) if token is not None else None,
        issues=issues,
    )
