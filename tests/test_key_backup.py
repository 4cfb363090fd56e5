"""Separate quorum secrets, keys that never leave their token, and backups that need the backup group.

On SoftHSM2, through the shipped SMKI ceremony: every private key (CA and contingency) is sensitive and
non-extractable, and no key the user session can make wraps it out; the SO PINs come from the
token-admin group, never from the activation secret. `mpki keys backup` refuses without fresh shares of
the backup group (writing nothing but the audit of the refusal), and with them seals the token's object
store; restored into a replacement HSM's token directory, the keys sign under their CA certificates.
Nothing the activation secret yields opens a backup; backup shares do not activate; and a ceremony
refuses two groups that share a secret or a share.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mpki.audit import export_jsonl
from mpki.ca.runtime import open_database
from mpki.ceremony import CeremonyResult, CeremonySpec, run_ceremony
from mpki.config import load_settings
from mpki.domain import InvalidRequest, KeyStoreError
from mpki.keys import KeyAlgorithm, SoftwareKeyStore
from mpki.keys.backups import open_backup, read_header
from mpki.keys.quorum import CustodianShare, QuorumError, combine, read_share
from mpki.keys.registry import CustodyRegistry, GroupRole
from mpki.keys.secrets import backup_key, check_value, so_pin, software_kek, user_pin
from mpki.keys.software_backups import backup_software_key, restore_software_key
from tests.hsm import SoftHsm

pkcs11 = pytest.importorskip("pkcs11")
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass  # noqa: E402
from pkcs11 import exceptions as p11errors  # noqa: E402

from mpki.keys.pkcs11 import Pkcs11KeyStore  # noqa: E402
from mpki.keys.pkcs11_tokens import module_handle, pin_digest, reset_module, token_serial, write_softhsm_conf  # noqa: E402
from mpki.keys.softhsm_store import find_token_directory, token_directories, token_root  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ceremonies" / "smki-root.yaml"
SOFTWARE = Path(__file__).parent / "ceremonies" / "software-3of5.yaml"
CA_TOKENS = ("smki-root", "smki-issuing")


# --- helpers -----------------------------------------------------------------------------------------


def hsm_ceremony(env: dict[str, str], softhsm: SoftHsm, tmp_path: Path) -> CeremonyResult:
    env.update({"SOFTHSM2_CONF": str(softhsm.conf), "MPKI_PKCS11_MODULE": softhsm.module})
    return run_ceremony(CeremonySpec.load(EXAMPLE), env, tmp_path / "shares", tmp_path / "record.json")


def software_ceremony(env: dict[str, str], tmp_path: Path) -> CeremonyResult:
    return run_ceremony(CeremonySpec.load(SOFTWARE), env, tmp_path / "shares", tmp_path / "record.json")


def shares(result: CeremonyResult, group: str) -> list[CustodianShare]:
    return [read_share(path) for path in result.shares_by_group[group]]


def share_args(result: CeremonyResult, group: str, count: int | None = None) -> list[str]:
    files = result.shares_by_group[group]
    return [arg for path in files[: count or len(files)] for arg in ("--share", str(path))]


def secret(result: CeremonyResult, group: str) -> bytes:
    presented = shares(result, group)
    return combine(presented[: presented[0].threshold])[1]


def actions(env: dict[str, str]) -> list[str]:
    database = open_database(load_settings(env))
    try:
        out = io.StringIO()
        export_jsonl(database, out)
    finally:
        database.dispose()
    return [json.loads(line)["action"] for line in out.getvalue().splitlines()]


def files_under(*roots: Path) -> dict[Path, bytes]:
    """Every file under `roots` but the database (whose only change a refusal may make is its audit event)."""
    return {
        path: path.read_bytes()
        for root in roots
        if root.exists()
        for path in root.rglob("*")
        if path.is_file() and ".sqlite3" not in path.name
    }


def private_keys(module: str, label: str, pin: str) -> list[Any]:
    handle = module_handle(module)
    with handle.lock:
        session = handle.user_session(label, pin, pin_digest(pin)).user
        return list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))


def certificate_of(result: CeremonyResult, ca: str) -> x509.Certificate:
    view = next(view for view in result.cas if view.name == ca)
    return x509.load_der_x509_certificate(view.certificate_der)


def signs_under(keystore: Pkcs11KeyStore, key_id: str, certificate: x509.Certificate) -> None:
    key = keystore.signing_key(key_id)
    public = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(key.sign(b"restored", ec.ECDSA(hashes.SHA256())), b"restored", ec.ECDSA(hashes.SHA256()))


# --- keys that never leave their token; PINs from their own groups ------------------------------------------


def test_ca_and_contingency_keys_never_leave_their_tokens_and_so_pins_are_the_token_admins(
    env: dict[str, str], softhsm: SoftHsm, tmp_path: Path
) -> None:
    result = hsm_ceremony(env, softhsm, tmp_path)
    activation, contingency = secret(result, "ca-keys"), secret(result, "contingency")
    token_admin = secret(result, "token-admin")
    reset_module(softhsm.module)
    pins = {label: user_pin(activation, label) for label in CA_TOKENS}
    pins["contingency"] = user_pin(contingency, "contingency")

    seen = 0
    for label, pin in pins.items():
        keys = private_keys(softhsm.module, label, pin)
        assert keys, label
        handle = module_handle(softhsm.module)
        with handle.lock:
            session = handle.sessions(label).user
            assert list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})) == []  # no backup key
            for private in keys:
                assert private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE], label
                assert not private[Attribute.WRAP_WITH_TRUSTED]
                wrapping = session.generate_key(KeyType.AES, 256, template={Attribute.TOKEN: False})
                with pytest.raises(p11errors.KeyUnextractable):
                    wrapping.wrap_key(private, mechanism=Mechanism.AES_KEY_WRAP_PAD)
                wrapping.destroy()
                seen += 1
    assert seen == 4  # the root, the Org and Device CAs, and the contingency key

    # The SO PIN of every token comes from the token-admin group; the activation secrets do not give it.
    reset_module(softhsm.module)  # an SO login needs no other session open in this application
    handle = module_handle(softhsm.module)
    for label in (*CA_TOKENS, "contingency"):
        with handle.lock:
            token = handle.token(label)
            for wrong in (so_pin(activation, label), so_pin(contingency, label), user_pin(activation, label)):
                with pytest.raises(p11errors.PinIncorrect):
                    token.open(rw=True, so_pin=wrong)
            token.open(rw=True, so_pin=so_pin(token_admin, label)).close()
    registry = CustodyRegistry(load_settings(env).keys_dir)
    assert {label: registry.token_admin_of(label) for label in (*CA_TOKENS, "contingency")} == dict.fromkeys(
        (*CA_TOKENS, "contingency"), "token-admin"
    )
    assert not (load_settings(env).run_dir / "active" / "token-admin.secret").exists()


# --- backup, restore onto a replacement HSM ---------------------------------------------------------------


def test_backup_needs_fresh_backup_shares_and_restores_onto_a_replacement_hsm(  # type: ignore[no-untyped-def]
    mpki, env: dict[str, str], softhsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = hsm_ceremony(env, softhsm, tmp_path)
    backup = tmp_path / "issuing.backup"
    before_files = files_under(tmp_path, softhsm.tokens)
    before = actions(env)

    # Without fresh shares of the backup group: one line, non-zero exit, nothing written but the audit.
    for refused_args, reason in (
        ((), "needs fresh shares of the backup group"),
        (tuple(share_args(result, "ca-keys", 3)), "has the activation role"),
        (tuple(share_args(result, "backup", 1)), "1 of 2 required shares"),
    ):
        done = mpki("keys", "backup", "smki-device-ca", "-o", str(backup), *refused_args)
        assert done.returncode == 1, done.stdout
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], done.stderr
    assert files_under(tmp_path, softhsm.tokens) == before_files
    assert actions(env) == before + ["key.backup_failed"] * 3

    done = mpki("keys", "backup", "smki-device-ca", "-o", str(backup), *share_args(result, "backup", 2))
    assert done.returncode == 0, done.stderr
    blob = backup.read_bytes()
    header = read_header(blob)
    assert header.group == "backup" and header.manifest.token == "smki-issuing"
    assert header.manifest.serial == token_serial(softhsm.module, "smki-issuing")
    assert {k.key_id for k in header.manifest.keys} == {
        view.key_id for view in result.cas if view.name in ("smki-org-ca", "smki-device-ca")
    }
    assert "token.object" in {f.name for f in header.manifest.files}

    # Nothing the activation secret yields opens the backup; the backup group's key does.
    activation = secret(result, "ca-keys")
    candidates = [activation, software_kek(activation), backup_key(activation), so_pin(activation, "x").encode()[:32]]
    candidates += [hashlib.sha256(user_pin(activation, label).encode()).digest() for label in CA_TOKENS]
    candidates += [bytes.fromhex(check_value(activation, group)) for group in ("ca-keys", "backup")]
    for candidate in candidates:
        with pytest.raises(KeyStoreError, match="does not open"):
            open_backup(blob, candidate.ljust(32, b"\0")[:32])
    _, files = open_backup(blob, backup_key(secret(result, "backup")))
    assert set(files) == {f.name for f in header.manifest.files}

    # The HSM is lost: lay the token into a replacement HSM's token directory, then sign there.
    replacement = write_softhsm_conf(tmp_path / "replacement")
    done = mpki(
        "keys", "restore", "smki-device-ca", "--from", str(backup), "--to-conf", str(replacement),
        *share_args(result, "backup", 2),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [d.label for d in token_directories(token_root(replacement))] == ["smki-issuing"]
    monkeypatch.setenv("SOFTHSM2_CONF", str(replacement))
    reset_module(softhsm.module)
    try:
        assert token_serial(softhsm.module, "smki-issuing") == header.manifest.serial
        with Pkcs11KeyStore(softhsm.module, lambda label: user_pin(activation, label)) as restored:
            for ca in ("smki-device-ca", "smki-org-ca"):
                key_id = next(view.key_id for view in result.cas if view.name == ca)
                signs_under(restored, key_id, certificate_of(result, ca))
            # The restored key is as unextractable as the original.
            for private in private_keys(softhsm.module, "smki-issuing", user_pin(activation, "smki-issuing")):
                assert private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE]
    finally:
        monkeypatch.setenv("SOFTHSM2_CONF", str(softhsm.conf))
        reset_module(softhsm.module)

    # A second restore there is refused: a restore never replaces a token.
    again = mpki(
        "keys", "restore", "smki-device-ca", "--from", str(backup), "--to-conf", str(replacement),
        *share_args(result, "backup", 2),
    )  # fmt: skip
    assert again.returncode == 1 and "already exists" in again.stderr
    assert actions(env)[-3:] == ["key.backed_up", "key.restored", "key.restore_failed"]


def test_an_altered_or_misdirected_token_backup_is_refused(
    env: dict[str, str], softhsm: SoftHsm, tmp_path: Path
) -> None:
    from mpki.keys.token_backups import backup_token, clone_token, restore_token

    softhsm.init_token("alpha", "so-pin-alpha", "user-pin-alpha")
    with Pkcs11KeyStore(softhsm.module, lambda label: "user-pin-alpha") as keystore:
        info = keystore.generate("k", KeyAlgorithm.EC_P256, "alpha")
    key = os.urandom(32)
    blob = backup_token(softhsm.module, "alpha", key, group="backup", conf=softhsm.conf)
    target = write_softhsm_conf(tmp_path / "target")
    document = json.loads(blob)

    altered = []
    renamed = json.loads(blob)
    renamed["header"]["manifest"]["token"] = "beta"  # the manifest is authenticated with the payload
    altered.append(renamed)
    flipped = json.loads(blob)
    sealed = bytearray(base64.b64decode(flipped["sealed"]))
    sealed[len(sealed) // 2] ^= 1
    flipped["sealed"] = base64.b64encode(bytes(sealed)).decode()
    altered.append(flipped)
    for document_ in altered:
        with pytest.raises(KeyStoreError, match="does not open"):
            restore_token(json.dumps(document_).encode(), key, target)
    with pytest.raises(KeyStoreError, match="does not open"):
        restore_token(blob, os.urandom(32), target)
    with pytest.raises(KeyStoreError, match="already exists"):  # this HSM still has the token
        restore_token(blob, key, softhsm.conf)
    with pytest.raises(KeyStoreError, match="another HSM"):
        clone_token(softhsm.module, "alpha", key, group="backup", conf=softhsm.conf, target_conf=softhsm.conf)
    assert token_directories(token_root(target)) == []
    assert document["header"]["manifest"]["keys"][0]["key_id"] == info.key_id

    cloned = clone_token(softhsm.module, "alpha", key, group="backup", conf=softhsm.conf, target_conf=target)
    assert cloned.label == "alpha" and [k.key_id for k in cloned.keys] == [info.key_id]
    assert sorted(p.name for p in cloned.directory.iterdir()) == sorted(
        p.name for p in find_token_directory(token_root(softhsm.conf), "alpha", cloned.serial).path.iterdir()
    )


def test_a_token_is_matched_to_its_directory_by_the_serial_pkcs11_reports(softhsm: SoftHsm, tmp_path: Path) -> None:
    for label in ("alpha", "beta"):
        softhsm.init_token(label, f"so-{label}-pin", f"user-{label}-pin")
    root = token_root(softhsm.conf)
    assert root == softhsm.tokens
    serials = {label: token_serial(softhsm.module, label) for label in ("alpha", "beta")}
    found = {label: find_token_directory(root, label, serial) for label, serial in serials.items()}
    assert found["alpha"].path != found["beta"].path
    # SoftHSM2 names the directory by a UUID that ends in the serial: the match agrees with it.
    for label, directory in found.items():
        assert directory.label == label
        assert directory.path.name.replace("-", "").endswith(directory.serial)
    with pytest.raises(KeyStoreError, match="no directory"):
        find_token_directory(root, "alpha", token_serial(softhsm.module, "beta"))
    # A stray copy of a token's directory makes the match ambiguous: refused rather than guessed.
    shutil.copytree(found["alpha"].path, root / "stray-copy")
    with pytest.raises(KeyStoreError, match="2 directories"):
        find_token_directory(root, "alpha", found["alpha"].serial)


# --- software keys: the sealed file, sealed again --------------------------------------------------------


def test_software_backups_need_neither_the_kek_nor_activation(env: dict[str, str], tmp_path: Path) -> None:
    result = software_ceremony(env, tmp_path)
    keys_dir = load_settings(env).keys_dir
    root = next(view for view in result.cas if view.name == "smki-root")
    key = backup_key(secret(result, "backup"))
    blob = backup_software_key(keys_dir, root.key_id, key, group="backup")  # the store is not even opened

    elsewhere = tmp_path / "new-home-keys"
    info, written = restore_software_key(blob, key, elsewhere)
    assert written and info.key_id == root.key_id
    assert (elsewhere / f"{root.key_id}.key.json").read_bytes() == (keys_dir / f"{root.key_id}.key.json").read_bytes()
    # Laid back, it is the same sealed key: the activation secret opens it there, and nothing less.
    signing = SoftwareKeyStore.open_with_secret(elsewhere, secret(result, "ca-keys")).signing_key(root.key_id)
    public = certificate_of(result, "smki-root").public_key()
    assert isinstance(signing, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signing.sign(b"m", ec.ECDSA(hashes.SHA256())), b"m", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(KeyStoreError, match="does not unlock"):
        SoftwareKeyStore.open_with_secret(elsewhere, secret(result, "backup"))

    other = tmp_path / "other-keystore"
    SoftwareKeyStore.create(other, "another passphrase")
    with pytest.raises(KeyStoreError, match="another keystore"):
        restore_software_key(blob, key, other)
    assert list(other.glob("*.key.json")) == []
    activation = secret(result, "ca-keys")
    for wrong in (activation, software_kek(activation), backup_key(activation)):
        with pytest.raises(KeyStoreError, match="does not open"):
            restore_software_key(blob, wrong, tmp_path / "never")
    assert not (tmp_path / "never").exists()


# --- groups stay apart --------------------------------------------------------------------------------


def test_backup_shares_do_not_activate_and_activation_shares_do_not_back_up(  # type: ignore[no-untyped-def]
    mpki, env: dict[str, str], tmp_path: Path
) -> None:
    result = software_ceremony(env, tmp_path)
    settings = load_settings(env)
    mpki("keys", "deactivate", check=True)
    done = mpki("keys", "activate", *share_args(result, "backup", 2))
    assert done.returncode == 1
    assert "has the backup role; activating keys needs shares of the activation group" in done.stderr
    assert not (settings.run_dir / "active" / "backup.secret").exists()
    assert actions(env)[-1] == "keys.activation_failed"

    registry = CustodyRegistry(settings.keys_dir)
    assert registry.recognises("backup", secret(result, "backup"), GroupRole.BACKUP)
    assert not registry.recognises("backup", secret(result, "ca-keys"), GroupRole.BACKUP)
    with pytest.raises(QuorumError, match="activation role"):
        registry.recognises("ca-keys", secret(result, "ca-keys"), GroupRole.BACKUP)
    with pytest.raises(QuorumError, match="backup role"):
        registry.recognises("backup", secret(result, "backup"))


def _run_with(env: dict[str, str], tmp_path: Path) -> None:
    run_ceremony(CeremonySpec.load(SOFTWARE), env, tmp_path / "shares", tmp_path / "record.json")


def test_a_ceremony_refuses_one_secret_in_two_groups(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed = os.urandom(32)
    monkeypatch.setattr("mpki.ceremony.runner.new_secret", lambda: fixed)
    with pytest.raises(InvalidRequest, match="ca-keys and backup have the same secret"):
        _run_with(env, tmp_path)
    assert not Path(env["MPKI_HOME"]).exists() and not (tmp_path / "shares").exists()


def test_a_ceremony_refuses_one_share_in_two_groups(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mpki.keys.quorum import split as genuine

    made: list[CustodianShare] = []

    def reuse_a_share(secret_: bytes, policy: Any, ceremony: str, custodians: Sequence[str], *rest: Any) -> Any:
        shares_ = genuine(secret_, policy, ceremony, custodians, *rest)
        if made:  # the backup group: its first custodian is handed Ann's share of ca-keys, relabelled
            shares_[0] = dataclasses.replace(made[0], group=policy.group, custodian=custodians[0])
        made.extend(shares_)
        return shares_

    monkeypatch.setattr("mpki.ceremony.runner.split", reuse_a_share)
    with pytest.raises(InvalidRequest, match="share of group backup is also a share of group ca-keys"):
        _run_with(env, tmp_path)
    assert not Path(env["MPKI_HOME"]).exists() and not (tmp_path / "shares").exists()


def test_backup_custodians_type_their_words(mpki, env: dict[str, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mpki.keys.quorum import share_words

    mpki("init", "--dev", check=True)
    home = Path(env["MPKI_HOME"])
    every = [read_share(path) for path in sorted((home / "dev-shares").iterdir())]
    words = {s.custodian: share_words(s) for s in every if s.group in ("backup", "ca-keys")}
    out = tmp_path / "root.backup"

    # The CA keys' custodians typing their words as the backup group's: refused, audited, nothing written.
    typed = f"dev-custodian-1\n{words['dev-custodian-1']}\ndev-custodian-2\n{words['dev-custodian-2']}\n\n"
    done = mpki("keys", "backup", "smki-root", "-o", str(out), "--interactive", input=typed.encode())
    assert done.returncode == 1 and "does not belong to group 'backup'" in done.stderr
    assert not out.exists() and actions(env)[-1] == "key.backup_failed"

    typed = (
        f"dev-backup-custodian-3\n{words['dev-backup-custodian-3']}\n"
        f"dev-backup-custodian-1\n{words['dev-backup-custodian-1']}\n\n"
    )
    done = mpki("keys", "backup", "smki-root", "-o", str(out), "--interactive", input=typed.encode())
    assert done.returncode == 0, done.stderr
    assert read_header(out.read_bytes()).group == "backup" and actions(env)[-1] == "key.backed_up"
