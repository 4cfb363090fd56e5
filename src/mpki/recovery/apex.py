"""Apex compromise: the contingency ceremony. M of N contingency custodians rebuild the vault's secret,
the unwrap key comes out of its separate storage, and the contingency private key signs a TAMPApexUpdate
carrying that unwrap key, announcing a new apex root. The new apex carries a new contingency key (a used
one has been shown to the world), whose unwrap key is written apart again; the old apex's CAs are
certified again under the new apex and the old apex is retired."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography import x509

from mpki.asn1.tamp import WRAPPED_APEX_CONTIN_KEY_EXT, AllModules, ApexContingencyKey, ApexUpdate, MsgRef, TrustAnchor
from mpki.domain import InvalidRequest, KeyStoreError, utcnow
from mpki.keys import KeyAlgorithm, KeyInfo, KeyStore
from mpki.keys.contingency import (
    GROUP,
    UNWRAP_KEY_BYTES,
    read_unwrap_key,
    wrap_public_key,
    write_unwrap_key,
)
from mpki.keys.quorum import combine, read_share
from mpki.keys.registry import CustodyRegistry
from mpki.recovery.context import RecoveryContext, Run
from mpki.recovery.messages import sign_for_endpoints
from mpki.recovery.records import RecoveryView, Scenario
from mpki.recovery.roots import check_new_root, replace_root, vault_of
from mpki.store import RecoveryRepository
from mpki.tams import public_key_id, unwrap_contingency_key
from mpki.tams.outbox import Signer

NEW_KEY_ITEM = "contingency-key"


def propose(context: RecoveryContext, new_name: str, common_name: str, *, actor: str) -> RecoveryView:
    record = vault_of(context.settings).record()
    old = context.authority.get_ca(record.apex)
    children = check_new_root(context, old, new_name, common_name)
    return context.desk.propose(
        Scenario.APEX,
        f"apex {old.name} -> {new_name} by the contingency key; {len(children)} CA(s) certified again",
        {
            "apex": old.name,
            "new_apex": new_name,
            "common_name": common_name,
            "contingency_key_id": record.key_id,
            "children": children,
        },
        actor=actor,
    )


def _wrapped_key(certificate_der: bytes) -> ApexContingencyKey:
    certificate = x509.load_der_x509_certificate(certificate_der)
    try:
        extension = certificate.extensions.get_extension_for_oid(x509.ObjectIdentifier(WRAPPED_APEX_CONTIN_KEY_EXT))
    except x509.ExtensionNotFound:
        raise InvalidRequest("the apex certificate carries no wrapped contingency key") from None
    assert isinstance(extension.value, x509.UnrecognizedExtension)
    return ApexContingencyKey.decode(extension.value.value)


def _new_contingency_key(job: Run, vault_keys: KeyStore, token: str | None) -> tuple[KeyInfo, bytes, Path]:
    """The new apex's contingency key and its unwrap key; a run resumed after a failure finds the pair
    an earlier run of this recovery made (recorded as an item) instead of making a second one."""
    database = job.context.authority.database
    with database.reader() as session:
        earlier = [item for item in RecoveryRepository(session).items(job.record.id) if item.kind == NEW_KEY_ITEM]
    if earlier and earlier[0].replacement:
        path = Path(earlier[0].replacement)
        return vault_keys.info(earlier[0].subject), read_unwrap_key(path), path
    fresh = vault_keys.generate("apex-contingency", KeyAlgorithm.EC_P256, token)
    unwrap_key = os.urandom(UNWRAP_KEY_BYTES)
    path = job.inputs.new_unwrap_key or job.context.work_dir(job.record.id) / "new-contingency-unwrap-key.json"
    digest = write_unwrap_key(path, unwrap_key, str(job.record.parameters["new_apex"]))
    with database.transaction() as session:
        records = RecoveryRepository(session)
        records.add_items(job.record.id, NEW_KEY_ITEM, [fresh.key_id], utcnow())
        records.settle_items(job.record.id, NEW_KEY_ITEM, {fresh.key_id: str(path)})
    job.step("contingency.key_generated", key_id=fresh.key_id, unwrap_key_sha256=digest, unwrap_key_file=str(path))
    return fresh, unwrap_key, path


def run(job: Run) -> dict[str, object]:
    p = job.record.parameters
    context, inputs = job.context, job.inputs
    if len(inputs.shares) == 0 or inputs.unwrap_key is None:
        raise InvalidRequest("apex recovery needs the contingency custodians' share files (--share) and --unwrap-key")
    vault = vault_of(context.settings)
    record = vault.record()
    if record.key_id != p["contingency_key_id"] or record.apex != p["apex"]:
        raise InvalidRequest("the contingency vault changed since this recovery was proposed; propose it again")
    group, secret = combine([read_share(path) for path in inputs.shares], inputs.passphrases)
    if group != GROUP or not CustodyRegistry(context.settings.keys_dir).recognises(GROUP, secret):
        raise KeyStoreError("these shares do not rebuild the contingency quorum's secret")
    unwrap_key = read_unwrap_key(inputs.unwrap_key)
    if hashlib.sha256(unwrap_key).hexdigest() != record.unwrap_key_sha256:
        raise InvalidRequest(f"{inputs.unwrap_key} is not the unwrap key of {record.apex}'s contingency key")
    vault_keys = vault.open(secret)
    contingency_public = vault_keys.info(record.key_id).public_key()
    old_apex = context.authority.get_ca(str(p["apex"]))
    # What the endpoints will do, done first here: the apex's extension must unwrap to this very key.
    if unwrap_contingency_key(_wrapped_key(old_apex.certificate_der), unwrap_key) != contingency_public:
        raise InvalidRequest(f"{old_apex.name}'s wrapped key does not unwrap to the vault's contingency key")
    job.step("contingency.activated", key_id=record.key_id, custodians=len(inputs.shares))

    fresh, new_unwrap, new_unwrap_path = _new_contingency_key(job, vault_keys, vault.token())
    new_unwrap_sha256 = hashlib.sha256(new_unwrap).hexdigest()
    extension = x509.UnrecognizedExtension(
        x509.ObjectIdentifier(WRAPPED_APEX_CONTIN_KEY_EXT), wrap_public_key(fresh.public_key(), new_unwrap).encode()
    )
    new_apex = replace_root(
        job, old_apex.name, str(p["new_apex"]), str(p["common_name"]), list(p["children"]), [extension]
    )
    key_id = public_key_id(contingency_public)
    # The contingency key is no CA's: it is named by its RFC 5280 method-1 identifier, as stores expect.
    identity = Signer(
        f"contingency:{old_apex.name}", vault_keys.signing_key(record.key_id), key_id, contingency_public, None
    )
    new_anchor = TrustAnchor.from_certificate(new_apex.certificate_der)
    path, seq_num = sign_for_endpoints(
        job,
        identity,
        lambda seq: ApexUpdate(MsgRef(AllModules(), seq), new_anchor),
        "tamp-apex-update",
        contingency_key=unwrap_key,
    )
    vault.rotate(record, fresh.key_id, new_apex.name, new_unwrap_sha256)
    job.step("contingency.rotated", retired_key_id=record.key_id, key_id=fresh.key_id, apex=new_apex.name)
    return {
        "new_apex": new_apex.name,
        "new_apex_sha256": new_apex.fingerprint_sha256,
        "retired": old_apex.name,
        "recertified": list(p["children"]),
        "tamp_apex_update": str(path),
        "seq_num": seq_num,
        "new_unwrap_key": str(new_unwrap_path),
        "contingency_key_id": fresh.key_id,
    }
