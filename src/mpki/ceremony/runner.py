"""Running a ceremony file: quorum groups, keystore or tokens, CA keys and certificates, a signed record.

Every group's secret is drawn and split before the first step, and checked to share neither secret nor
share with another group; the secrets are then held in memory only. Only the CA keys' activation group
is kept for signing: the backup and token-admin secrets (token initialisation needs the SO PINs) and the
contingency vault's are forgotten when the ceremony ends, their shares handed out beside the others.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mpki.asn1.tamp import WRAPPED_APEX_CONTIN_KEY_EXT
from mpki.audit import AuditRecord, append
from mpki.ca import CaView, CertificationAuthority
from mpki.ca.runtime import open_database
from mpki.ceremony.installation import bind_installation
from mpki.ceremony.record import RecordBuilder
from mpki.ceremony.spec import CeremonySpec, GroupStep
from mpki.config import Environment, Settings, load_settings
from mpki.domain import InvalidRequest, KeyStoreError
from mpki.keys import KeyAlgorithm, SoftwareKeyStore
from mpki.keys.contingency import TOKEN as CONTINGENCY_TOKEN
from mpki.keys.contingency import UNWRAP_KEY_BYTES, ContingencyVault, VaultRecord, wrap_public_key, write_unwrap_key
from mpki.keys.purposes import Purpose
from mpki.keys.quorum import (
    CustodianShare,
    QuorumPolicy,
    combine,
    new_secret,
    read_share,
    refuse_shared_material,
    split,
    write_share,
)
from mpki.keys.registry import CustodyRegistry, GroupRole
from mpki.keys.secrets import so_pin, user_pin
from mpki.signer.service import SigningService
from mpki.signer.signing_keys import SigningKeys

StepHook = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class CeremonyResult:
    record_path: Path
    record_sha256: str
    share_files: tuple[Path, ...]
    cas: tuple[CaView, ...]
    # The ceremony's own signing keys, holding the new secret until the ceremony's caller lets go.
    keys: SigningKeys | None = None
    shares_by_group: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Group:
    """One quorum group drawn for the ceremony: its secret (in memory only) and its custodians' shares."""

    role: GroupRole
    policy: QuorumPolicy
    prefix: str  # of its share files' names, so that groups' files never look alike
    secret: bytes = field(repr=False)
    shares: tuple[CustodianShare, ...] = field(repr=False)


def _draw(
    role: GroupRole,
    policy: QuorumPolicy,
    custodians: Sequence[str],
    prefix: str,
    spec: CeremonySpec,
    passphrases: Mapping[str, str],
) -> _Group:
    mine = {name: passphrases[name] for name in custodians if name in passphrases}
    secret = new_secret()
    return _Group(role, policy, prefix, secret, tuple(split(secret, policy, spec.ceremony, list(custodians), mine)))


def _draw_groups(spec: CeremonySpec, passphrases: Mapping[str, str] | None) -> dict[GroupRole | str, _Group]:
    """Every group's secret and shares, before the first step; refused if two groups share either."""
    passphrases = dict(passphrases or {})
    holders = set(spec.people.custodians)
    drawn: dict[GroupRole | str, _Group] = {
        GroupRole.ACTIVATION: _draw(GroupRole.ACTIVATION, spec.quorum, spec.people.custodians, "", spec, passphrases)
    }
    others: list[tuple[GroupRole | str, GroupStep | None]] = [
        (GroupRole.BACKUP, spec.backup),
        (GroupRole.TOKEN_ADMIN, spec.token_admin),
    ]
    for key, step in others:
        if step is not None:
            drawn[key] = _draw(step.role, step.quorum, step.custodians, f"{step.role.value}-", spec, passphrases)
            holders |= set(step.custodians)
    if spec.contingency is not None:
        contingency = spec.contingency
        drawn["contingency"] = _draw(
            GroupRole.ACTIVATION, contingency.quorum, contingency.custodians, "contingency-", spec, passphrases
        )
        holders |= set(contingency.custodians)
    unknown = sorted(set(passphrases) - holders)
    if unknown:
        raise InvalidRequest(f"a passphrase was given for {unknown[0]}, who holds no share in this ceremony")
    refuse_shared_material({g.policy.group: (g.secret, g.shares) for g in drawn.values()}, passphrases)
    return drawn


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "custodian"


def _preflight(
    spec: CeremonySpec, settings: Settings, shares_dir: Path, record_path: Path, unwrap_key_path: Path
) -> None:
    if spec.contingency is not None:
        if unwrap_key_path.exists():
            raise InvalidRequest(f"{unwrap_key_path} exists; an unwrap key is never overwritten")
        if ContingencyVault(settings.keys_dir, spec.backend, settings.pkcs11_module).exists():
            raise InvalidRequest("this installation already has an apex contingency key")
        if any(g.group == spec.contingency.quorum.group for g in CustodyRegistry(settings.keys_dir).groups()):
            raise InvalidRequest(f"quorum group {spec.contingency.quorum.group!r} already exists in this installation")
    if record_path.exists():
        raise InvalidRequest(f"{record_path} exists; a ceremony record is never overwritten")
    if shares_dir.exists() and any(shares_dir.iterdir()):
        raise InvalidRequest(f"{shares_dir} is not empty; shares of two ceremonies must never mix")
    registry = CustodyRegistry(settings.keys_dir)
    existing = {g.group for g in registry.groups()}
    for policy in (spec.quorum, spec.backup.quorum, spec.token_admin.quorum if spec.token_admin else None):
        if policy is not None and policy.group in existing:
            raise InvalidRequest(f"quorum group {policy.group!r} already exists in this installation")
    if spec.backend == "software" and SoftwareKeyStore.exists(settings.keys_dir):
        raise InvalidRequest(f"a software keystore already exists in {settings.keys_dir}")
    if spec.backend == "pkcs11":
        from mpki.keys.pkcs11_tokens import token_labels

        wanted = set(spec.tokens) | ({CONTINGENCY_TOKEN} if spec.contingency else set())
        taken = set(token_labels(settings.pkcs11_module)) & wanted
        if taken:
            raise InvalidRequest(f"token(s) {sorted(taken)} already exist on the HSM")


def run_ceremony(
    spec: CeremonySpec,
    env: Mapping[str, str],
    shares_dir: Path,
    record_path: Path,
    *,
    passphrases: Mapping[str, str] | None = None,
    on_step: StepHook | None = None,
    unwrap_key_path: Path | None = None,
) -> CeremonyResult:
    """Execute every step in order; all checks run before the first step changes anything.

    With a `contingency` section the unwrap key is written to `unwrap_key_path` (default: beside the
    record), apart from the shares and the vault."""
    unwrap_key_path = unwrap_key_path or record_path.with_name(f"{_slug(spec.ceremony)}-contingency-unwrap-key.json")
    settings = load_settings(env)
    if settings.environment is Environment.PRODUCTION and spec.environment != Environment.PRODUCTION.value:
        # Binding a test or development ceremony here would lift the production guards of `reinitialise`.
        raise InvalidRequest(
            f"this environment is marked production; the ceremony is for {spec.environment!r}, not production"
        )
    bind_installation(settings.home, keystore=spec.backend, environment=spec.environment, check_only=True)
    _preflight(spec, settings, shares_dir, record_path, unwrap_key_path)
    groups = _draw_groups(spec, passphrases)
    people = spec.people
    record = RecordBuilder(
        ceremony=spec.ceremony,
        environment=spec.environment,
        ceremony_file_sha256=hashlib.sha256(spec.source).hexdigest(),
        people={
            "key_manager": people.key_manager,
            "custodians": list(people.custodians),
            "witnesses": list(people.witnesses),
            "auditor": people.auditor,
        },
    )

    completed: list[str] = []  # the record's digest, once its completion is in the audit chain
    try:
        return _execute(
            spec, env, shares_dir, record_path, unwrap_key_path, record, groups, passphrases, on_step, completed
        )
    except BaseException as error:
        # Steps already taken (shares written, a keystore made) must not vanish from the audit chain.
        if record.steps and not completed:
            _audit_failure(env, spec, record, error)
        raise


def _execute(
    spec: CeremonySpec,
    env: Mapping[str, str],
    shares_dir: Path,
    record_path: Path,
    unwrap_key_path: Path,
    record: RecordBuilder,
    groups: Mapping[GroupRole | str, _Group],
    passphrases: Mapping[str, str] | None,
    on_step: StepHook | None,
    completed: list[str],
) -> CeremonyResult:
    settings = load_settings(env)
    people = spec.people

    def step(name: str, actor: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        entry = record.step(name, actor, inputs, outputs)
        if on_step:
            on_step(entry)

    step(
        "ceremony.opened",
        people.key_manager,
        {"ceremony_file_sha256": record.ceremony_file_sha256},
        {
            "present": record.people,
        },
    )
    bind_installation(settings.home, keystore=spec.backend, environment=spec.environment)
    settings = load_settings(env)

    # The quorum groups: each secret split M-of-N, one file per custodian and group, never two together.
    registry = CustodyRegistry(settings.keys_dir)
    files: list[Path] = []
    by_group: dict[str, tuple[Path, ...]] = {}
    for role in (GroupRole.ACTIVATION, GroupRole.BACKUP, GroupRole.TOKEN_ADMIN):
        if role in groups:
            drawn = groups[role]
            by_group[drawn.policy.group] = _hand_out(spec, drawn, shares_dir, passphrases, step)
            files.extend(by_group[drawn.policy.group])
            _register(registry, drawn, spec.ceremony)
    policy, secret = spec.quorum, groups[GroupRole.ACTIVATION].secret
    token_admin = groups.get(GroupRole.TOKEN_ADMIN)
    if spec.backend == "software":
        SoftwareKeyStore.create_for_quorum(settings.keys_dir, policy.group, secret)
        step("keystore.initialised", people.key_manager, {"backend": "software"}, {"group": policy.group})
    else:
        from mpki.keys.pkcs11_tokens import initialise_token

        assert token_admin is not None  # the spec requires it for pkcs11
        for label in spec.tokens:
            initialise_token(settings.pkcs11_module, label, so_pin(token_admin.secret, label), user_pin(secret, label))
            registry.register_token(label, policy.group, token_admin=token_admin.policy.group)
            step(
                "token.initialised",
                people.key_manager,
                {"token": label, "so_pin_group": token_admin.policy.group},
                {"group": policy.group},
            )
    # The ceremony signs through its own signing service, which holds the new secret in memory (and, in
    # development only, leaves the group activated on disk as `mpki init --dev` promises).
    ceremony_signer = SigningService(settings)
    ceremony_signer.hold(policy.group, secret)
    step("keys.activated", people.key_manager, {"group": policy.group}, {"active": True})

    apex_extensions: list[x509.ExtensionType] = []
    if spec.contingency is not None:
        apex_extension, contingency_files = _make_contingency(
            spec, settings, shares_dir, unwrap_key_path, groups["contingency"], token_admin, passphrases, step
        )
        apex_extensions.append(apex_extension)
        files.extend(contingency_files)
        by_group[spec.contingency.quorum.group] = tuple(contingency_files)

    authority = CertificationAuthority(settings, open_database(settings), SigningKeys(ceremony_signer))
    made: list[CaView] = []
    try:
        for ca in spec.cas:
            is_apex = spec.contingency is not None and ca.name == spec.contingency.apex
            view = authority.create_ca(
                name=ca.name,
                profile_name=ca.profile,
                common_name=ca.common_name,
                parent=ca.parent,
                algorithm=ca.algorithm,
                issues=ca.issues,
                token=ca.token,
                actor=f"ceremony:{spec.ceremony}:{people.key_manager}",
                extra_extensions=apex_extensions if is_apex else (),
            )
            made.append(view)
            info = authority.keystore.info(view.key_id)
            step(
                "key.generated",
                people.key_manager,
                {"ca": ca.name, "algorithm": ca.algorithm.value, "token": ca.token},
                {"key_id": view.key_id, "public_key_sha256": hashlib.sha256(info.public_key_der).hexdigest()},
            )
            step(
                "ca.certificate_signed",
                people.key_manager,
                {"ca": ca.name, "profile": ca.profile, "parent": ca.parent},
                {
                    "ca": ca.name,
                    "subject": view.subject,
                    "serial": view.serial,
                    "certificate_sha256": view.fingerprint_sha256,
                    "not_after": view.not_after.isoformat(),
                },
            )
        step("ceremony.closed", people.auditor, {"witnesses": list(people.witnesses)}, {"cas": [v.name for v in made]})
        signer = next(v for v in made if v.name == spec.record_signer)
        certificate = x509.load_der_x509_certificate(signer.certificate_der)
        signed = record.sign(signer.name, certificate, authority.keystore.signing_key(signer.key_id, Purpose.RECORD))
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_bytes(signed)
        digest = hashlib.sha256(signed).hexdigest()
        with authority.database.transaction() as session:
            completion = AuditRecord(
                action="ceremony.completed",
                actor=people.auditor,
                details={
                    "ceremony": spec.ceremony,
                    "record_sha256": digest,
                    "steps": len(record.steps),
                    "signer": signer.name,
                },
            )
            append(session, [*_step_events(spec, record), completion])
        completed.append(digest)
    finally:
        authority.database.dispose()
    return CeremonyResult(record_path, digest, tuple(files), tuple(made), authority.keystore, by_group)


Step = Callable[[str, str, dict[str, Any], dict[str, Any]], None]


def _register(registry: CustodyRegistry, drawn: _Group, ceremony: str) -> None:
    policy = drawn.policy
    registry.register_group(policy.group, policy.threshold, policy.shares, ceremony, drawn.secret, role=drawn.role)


def _hand_out(
    spec: CeremonySpec,
    drawn: _Group,
    shares_dir: Path,
    passphrases: Mapping[str, str] | None,
    step: Step,
) -> tuple[Path, ...]:
    """One file per custodian of a drawn group, then the secret rebuilt from M of the files as a test."""
    policy = drawn.policy
    shares_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for share in drawn.shares:
        path = shares_dir / f"{_slug(spec.ceremony)}-{drawn.prefix}share-{share.index}-{_slug(share.custodian)}.json"
        write_share(share, path)
        files.append(path)
    step(
        "quorum.split",
        spec.people.key_manager,
        {"group": policy.group, "role": drawn.role.value, "threshold": policy.threshold, "shares": policy.shares},
        {
            "holders": [
                {"custodian": s.custodian, "index": s.index, "file": f.name, "sealed": s.sealed is not None}
                for s, f in zip(drawn.shares, files, strict=True)
            ]
        },
    )
    tested = [read_share(path) for path in files[: policy.threshold]]
    group, rebuilt = combine(tested, passphrases)
    if rebuilt != drawn.secret or group != policy.group:
        raise KeyStoreError(f"the quorum test failed: the shares of group {policy.group} did not rebuild its secret")
    step(
        "quorum.tested",
        spec.people.key_manager,
        {"group": policy.group, "custodians": [s.custodian for s in tested]},
        {"rebuilt": True},
    )
    return tuple(files)


def _make_contingency(
    spec: CeremonySpec,
    settings: Settings,
    shares_dir: Path,
    unwrap_key_path: Path,
    drawn: _Group,
    token_admin: _Group | None,
    passphrases: Mapping[str, str] | None,
    step: Step,
) -> tuple[x509.ExtensionType, list[Path]]:
    """The contingency key in its own vault behind its own quorum, and the apex's extension wrapping it.

    The vault's secret is held only in memory here: the vault is never left activated. A token of its
    own is initialised under the token-admin group's SO PIN, like every token.
    """
    assert spec.contingency is not None
    contingency = spec.contingency
    policy = contingency.quorum
    files = list(_hand_out(spec, drawn, shares_dir, passphrases, step))
    secret = drawn.secret
    registry = CustodyRegistry(settings.keys_dir)
    _register(registry, drawn, spec.ceremony)
    vault = ContingencyVault(settings.keys_dir, spec.backend, settings.pkcs11_module)
    keystore = vault.create(secret, token_admin_secret=token_admin.secret if token_admin else None)
    token = vault.token()
    if token is not None:
        assert token_admin is not None  # the spec requires it for pkcs11
        registry.register_token(token, policy.group, token_admin=token_admin.policy.group)
    info = keystore.generate("apex-contingency", KeyAlgorithm.EC_P256, token)
    unwrap_key = os.urandom(UNWRAP_KEY_BYTES)
    unwrap_sha256 = write_unwrap_key(unwrap_key_path, unwrap_key, contingency.apex)
    wrapped = wrap_public_key(info.public_key(), unwrap_key)
    vault.save(VaultRecord(spec.backend, info.key_id, contingency.apex, unwrap_sha256))
    step(
        "contingency.key_generated",
        spec.people.key_manager,
        {"apex": contingency.apex, "group": policy.group, "backend": spec.backend, "token": vault.token()},
        {
            "key_id": info.key_id,
            "public_key_sha256": hashlib.sha256(info.public_key_der).hexdigest(),
            "unwrap_key_sha256": unwrap_sha256,
            "unwrap_key_file": unwrap_key_path.name,
            "wrap_algorithm": wrapped.wrap_algorithm,
        },
    )
    extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(WRAPPED_APEX_CONTIN_KEY_EXT), wrapped.encode())
    return extension, files


def _step_events(spec: CeremonySpec, record: RecordBuilder) -> list[AuditRecord]:
    return [
        AuditRecord(
            action="ceremony.step",
            actor=entry["actor"],
            details={
                "ceremony": spec.ceremony,
                "n": entry["n"],
                "step": entry["step"],
                "inputs": entry["inputs"],
                "outputs": entry["outputs"],
            },
        )
        for entry in record.steps
    ]


def _audit_failure(env: Mapping[str, str], spec: CeremonySpec, record: RecordBuilder, error: BaseException) -> None:
    """Enter the steps taken so far and why the ceremony stopped; never hides the original error."""
    reason = " ".join(str(error).split()) or type(error).__name__
    try:
        database = open_database(load_settings(env))
        try:
            with database.transaction() as session:
                failed = AuditRecord(
                    action="ceremony.failed",
                    actor=spec.people.key_manager,
                    details={"ceremony": spec.ceremony, "steps": len(record.steps), "reason": reason},
                )
                append(session, [*_step_events(spec, record), failed])
        finally:
            database.dispose()
    except Exception:  # the ceremony's own error is what the operator must see
        return


def certificate_pem(view: CaView) -> str:
    return x509.load_der_x509_certificate(view.certificate_der).public_bytes(serialization.Encoding.PEM).decode()
