"""Apex compromise: the contingency ceremony. M of N contingency custodians rebuild the vault's secret,
the unwrap key comes out of its separate storage, and the contingency private key signs a TAMPApexUpdate
carrying that unwrap key, announcing a new apex root. The new apex carries a new contingency key (a used
one has been shown to the world), whose unwrap key is written apart again; the old apex's CAs are
certified again under the new apex and the old apex is retired."""

from __future__ import annotations

import hashlib
import os

from cryptography import x509

from mpki.asn1.tamp import WRAPPED_APEX_CONTIN_KEY_EXT, AllModules, ApexContingencyKey, ApexUpdate, MsgRef, TrustAnchor
from mpki.domain import InvalidRequest, KeyStoreError
from mpki.keys import KeyAlgorithm
from mpki.keys.contingency import (
    GROUP,
    UNWRAP_KEY_BYTES,
    ContingencyVault,
    read_unwrap_key,
    wrap_public_key,
    write_unwrap_key,
)
from mpki.keys.quorum import combine, read_share
from mpki.keys.registry import CustodyRegistry
from mpki.recovery.context import RecoveryContext, Run
from mpki.recovery.messages import sign_for_endpoints
from mpki.recovery.records import RecoveryView, Scenario
from mpki.recovery.roots import check_new_root, replace_root
from mpki.tams import public_key_id, unwrap_contingency_key


def vault_of(context: RecoveryContext) -> ContingencyVault:
    settings = context.settings
    return ContingencyVault(settings.keys_dir, settings.keystore_backend, settings.pkcs11_module)


def propose(context: RecoveryContext, new_name: str, common_name: str, *, actor: str) -> RecoveryView:
    record = vault_of(context).record()
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


def run(job: Run) -> dict[str, object]:
    p = job.record.parameters
    context, inputs = job.context, job.inputs
    if len(inputs.shares) == 0 or inputs.unwrap_key is None:
        raise InvalidRequest("apex recovery needs the contingency custodians' share files (--share) and --unwrap-key")
    vault = vault_of(context)
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

    fresh = vault_keys.generate("apex-contingency", KeyAlgorithm.EC_P256, vault.token())
    new_unwrap = os.urandom(UNWRAP_KEY_BYTES)
    new_unwrap_path = inputs.new_unwrap_key or context.work_dir(job.record.id) / "new-contingency-unwrap-key.json"
    new_unwrap_sha256 = write_unwrap_key(new_unwrap_path, new_unwrap, str(p["new_apex"]))
    job.step("contingency.key_generated", key_id=fresh.key_id, unwrap_key_sha256=new_unwrap_sha256)
    extension = x509.UnrecognizedExtension(
        x509.ObjectIdentifier(WRAPPED_APEX_CONTIN_KEY_EXT), wrap_public_key(fresh.public_key(), new_unwrap).encode()
    )
    new_apex = replace_root(
        job, old_apex.name, str(p["new_apex"]), str(p["common_name"]), list(p["children"]), [extension]
    )
    key_id = public_key_id(contingency_public)
    path, seq_num = sign_for_endpoints(
        job,
        make=lambda seq: ApexUpdate(MsgRef(AllModules(), seq), TrustAnchor.from_certificate(new_apex.certificate_der)),
        key=vault_keys.signing_key(record.key_id),
        public_key=contingency_public,
        key_id=key_id,
        signer=f"contingency:{old_apex.name}",
        filename="tamp-apex-update",
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
