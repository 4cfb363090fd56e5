"""Apex recovery with the contingency key on its own SoftHSM2 token: the shipped SMKI ceremony
(`examples/ceremonies/smki-root.yaml`, whose `contingency:` section makes the token "contingency"), then
the contingency ceremony in-process with 3 of its 5 shares and the unwrap key written beside the record.
The TAMPApexUpdate verifies against the contingency public key read from the token; a CA a recovery
stands up is made on the token of the CA it replaces."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from mpki.asn1.tamp import ApexUpdate, ApexUpdateConfirm, StatusCode, TrustAnchor
from mpki.ca.runtime import open_authority
from mpki.ceremony import CeremonySpec, run_ceremony
from mpki.config import load_settings
from mpki.domain import RevocationReason
from mpki.keys.contingency import GROUP, TOKEN, ContingencyVault
from mpki.keys.pkcs11_tokens import token_labels
from mpki.keys.quorum import combine, read_share
from mpki.recovery import RecoveryContext, RecoveryStatus, RunInputs, approve, issuing_ca
from mpki.recovery import apex as apex_recovery
from mpki.status import StatusService
from mpki.tams import TrustAnchorStore, parse, parse_verified
from tests.hsm import SoftHsm
from tests.support.recovery import public_spki

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ceremonies" / "smki-root.yaml"


def test_apex_recovery_with_the_contingency_token(softhsm: SoftHsm, env: dict[str, str], tmp_path: Path) -> None:
    env.update({"SOFTHSM2_CONF": str(softhsm.conf), "MPKI_PKCS11_MODULE": softhsm.module})
    shares_dir, record_path = tmp_path / "shares", tmp_path / "record.json"
    run_ceremony(CeremonySpec.load(EXAMPLE), env, shares_dir, record_path)
    unwrap_key = tmp_path / "smki-root-2026-contingency-unwrap-key.json"
    assert unwrap_key.is_file()
    assert TOKEN in token_labels(softhsm.module)
    shares = sorted(p for p in shares_dir.iterdir() if read_share(p).group == GROUP)
    # ca-keys 5, backup 3, token-admin 3, contingency 5: one file per custodian and group.
    assert len(shares) == 5 and len(list(shares_dir.iterdir())) == 16

    settings = load_settings(env)
    assert not (settings.run_dir / "active" / f"{GROUP}.secret").exists()
    vault = ContingencyVault(settings.keys_dir, settings.keystore_backend, settings.pkcs11_module)
    record = vault.record()
    assert record.backend == "pkcs11" and record.apex == "smki-root"
    _, secret = combine([read_share(p) for p in shares[:3]])
    token_public = vault.open(secret).info(record.key_id).public_key()  # from the contingency token

    authority = open_authority(settings)
    try:
        context = RecoveryContext(settings, authority, StatusService(authority))
        old_apex = authority.get_ca("smki-root")
        endpoint = TrustAnchorStore.initialise(
            tmp_path / "endpoint" / "store.json",
            ec.generate_private_key(ec.SECP256R1()),
            TrustAnchor.from_certificate(old_apex.certificate_der),
        )
        proposal = apex_recovery.propose(context, "smki-root-2", "mpki Test SMKI Root 2", actor="Fay Contingency")
        inputs = RunInputs(shares=tuple(shares[2:]), unwrap_key=unwrap_key)
        done = approve(context, proposal.id, actor="Gus Contingency", inputs=inputs)
        assert done.status is RecoveryStatus.COMPLETED, done.outcome
        new_apex = authority.get_ca("smki-root-2")
        # The new apex key is made on the replaced apex's token (the keystore has several: it must be told).
        assert authority.keystore.info(new_apex.key_id).token == "smki-root"

        # An issuing-CA recovery on the HSM too: the new CA's key goes on the old CA's token.
        proposal = issuing_ca.propose(
            context, "smki-org-ca", "smki-org-ca-2", "mpki Test Org CA 2", RevocationReason.KEY_COMPROMISE, actor="Ann"
        )
        replaced = approve(context, proposal.id, actor="Bob")
        assert replaced.status is RecoveryStatus.COMPLETED and authority.get_ca("smki-org-ca").status == "revoked"
        assert authority.keystore.info(authority.get_ca("smki-org-ca-2").key_id).token == "smki-issuing"
    finally:
        authority.database.dispose()

    der = Path(str((done.outcome or {})["tamp_apex_update"])).read_bytes()
    message, _ = parse_verified(der, token_public)
    assert isinstance(message, ApexUpdate)
    assert message.apex.der == new_apex.certificate_der
    confirm, _ = parse(endpoint.process(der))
    assert isinstance(confirm, ApexUpdateConfirm) and confirm.status is StatusCode.success
    assert endpoint.state.apex.der == new_apex.certificate_der

    rotated = vault.record()
    assert rotated.apex == "smki-root-2" and rotated.key_id != record.key_id and record.key_id in rotated.retired
    fresh = vault.open(secret).info(rotated.key_id).public_key()  # the new contingency key is on the token too
    assert public_spki(fresh) != public_spki(token_public)
