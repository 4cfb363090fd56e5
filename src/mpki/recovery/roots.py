"""Root compromise: a new root in a recorded ceremony, the old root's CAs certified again under it (their
keys were not compromised, so everything they issued chains to the new root without being reissued), the
old root retired as compromised, and a TAMPUpdate for the endpoints: remove the old root, add the new,
signed by the apex (or a management trust anchor the endpoints hold)."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

from mpki.asn1.tamp import AddAnchor, AllModules, MsgRef, RemoveAnchor, TampUpdate, TrustAnchor
from mpki.ca import CaView, CertificationAuthority
from mpki.config import Settings
from mpki.domain import InvalidRequest
from mpki.keys.contingency import ContingencyVault
from mpki.keys.purposes import Purpose
from mpki.profiles import ca_subject, get_profile
from mpki.recovery.ceremonies import stand_up_ca
from mpki.recovery.context import RecoveryContext, Run
from mpki.recovery.messages import sign_for_endpoints
from mpki.recovery.records import RecoveryView, Scenario
from mpki.tams.outbox import Signer

APEX_PROFILE = "smki-root"


def vault_of(settings: Settings) -> ContingencyVault:
    return ContingencyVault(settings.keys_dir, settings.keystore_backend, settings.pkcs11_module)


def apex_name(settings: Settings, authority: CertificationAuthority) -> str | None:
    """The apex named by the contingency vault; without a vault, the newest active SMKI root."""
    vault = vault_of(settings)
    if vault.exists():
        return vault.record().apex
    roots = [v for v in authority.list_cas() if v.profile == APEX_PROFILE and v.status == "active"]
    return max(roots, key=lambda v: v.not_before).name if roots else None


def check_new_root(context: RecoveryContext, old: CaView, new_name: str, common_name: str) -> list[str]:
    """Refusals common to root and apex recovery; returns the old root's active CAs to certify again."""
    if old.parent is not None:
        raise InvalidRequest(f"{old.name} is not a root")
    if old.status != "active":
        raise InvalidRequest(f"CA {old.name} is {old.status}, not active")
    cas = context.authority.list_cas()
    if any(view.name == new_name for view in cas):
        raise InvalidRequest(f"a CA named {new_name!r} already exists")
    ca_subject(get_profile(old.profile), common_name)
    return [view.name for view in cas if view.parent == old.name and view.status == "active"]


def propose(
    context: RecoveryContext, ca: str, new_name: str, common_name: str, signer: str | None, *, actor: str
) -> RecoveryView:
    old = context.authority.get_ca(ca)
    apex = apex_name(context.settings, context.authority)
    if ca == apex:
        raise InvalidRequest(f"{ca} is the apex trust anchor: use apex recovery (the contingency key)")
    children = check_new_root(context, old, new_name, common_name)
    tamp_signer = signer or apex
    if tamp_signer is None:
        raise InvalidRequest("no apex to sign the TAMPUpdate; name a --signer CA the endpoints trust")
    signing = context.authority.get_ca(tamp_signer)
    if signing.status != "active" or signing.name == ca:
        raise InvalidRequest(f"{tamp_signer} cannot sign the TAMPUpdate: it is {signing.status} or the root replaced")
    return context.desk.propose(
        Scenario.ROOT,
        f"root {ca} -> {new_name}; {len(children)} CA(s) certified again",
        {"ca": ca, "new_ca": new_name, "common_name": common_name, "signer": tamp_signer, "children": children},
        actor=actor,
    )


def replace_root(
    job: Run,
    old: str,
    new: str,
    common_name: str,
    children: Sequence[str],
    extra_extensions: Sequence[x509.ExtensionType] = (),
) -> CaView:
    """New root, children certified again under it, old root retired; each stage skipped once done."""
    authority = job.context.authority
    old_view = authority.get_ca(old)
    existing = {view.name: view for view in authority.list_cas()}
    new_view = existing.get(new) or stand_up_ca(
        job,
        name=new,
        profile=old_view.profile,
        common_name=common_name,
        parent=None,
        issues=(),
        extra_extensions=extra_extensions,
        replaces=old_view,
    )
    for index, child in enumerate(children, start=1):
        if authority.get_ca(child).parent != new:
            authority.recertify(child, parent=new, actor=job.actor)
            job.step("ca.recertified", ca=child, parent=new)
        job.progress("CAs certified again", index, len(children))
    if authority.get_ca(old).status == "active":
        authority.retire(
            old, status="compromised", actor=job.actor, reason=f"replaced by {new} (recovery {job.record.id})"
        )
        job.step("ca.retired", ca=old, status="compromised")
    return new_view


def run(job: Run) -> dict[str, object]:
    p = job.record.parameters
    authority = job.context.authority
    old_anchor = TrustAnchor.from_certificate(authority.get_ca(str(p["ca"])).certificate_der)
    new_view = replace_root(job, str(p["ca"]), str(p["new_ca"]), str(p["common_name"]), list(p["children"]))
    signer = authority.get_ca(str(p["signer"]))
    signer_anchor = TrustAnchor.from_certificate(signer.certificate_der)
    new_anchor = TrustAnchor.from_certificate(new_view.certificate_der)
    identity = Signer(
        signer.name,
        authority.keystore.signing_key(signer.key_id, Purpose.TAMP),
        signer_anchor.key_id,
        signer_anchor,
        signer.name,
    )
    path, seq_num = sign_for_endpoints(
        job,
        identity,
        lambda seq: TampUpdate(
            MsgRef(AllModules(), seq), (RemoveAnchor(old_anchor.public_key_info), AddAnchor(new_anchor))
        ),
        "tamp-update",
    )
    return {
        "new_root": new_view.name,
        "new_root_sha256": new_view.fingerprint_sha256,
        "retired": str(p["ca"]),
        "recertified": list(p["children"]),
        "tamp_update": str(path),
        "seq_num": seq_num,
        "signer": signer.name,
    }
