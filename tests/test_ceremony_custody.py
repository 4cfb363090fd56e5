"""Key custody on the software keystore: quorum activation, ceremonies and their signed records,
backup and restore (with the backup group's shares), bootstrap and reinitialise, and every event of
them in the audit chain.

The CLI path of each command is run once as a real `mpki` subprocess; the variations run in-process.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mpki.audit import export_jsonl, verify_chain
from mpki.ca.custody import KeyCustody, prove_signs_for
from mpki.ca.runtime import open_database, open_keystore
from mpki.ceremony import CeremonyResult, CeremonySpec, run_ceremony, verify_record
from mpki.ceremony.lifecycle import bootstrap, reinitialise
from mpki.ceremony.record import canonical
from mpki.config import load_settings
from mpki.domain import InvalidRequest, KeyStoreError, MpkiError, NotFound
from mpki.keys.purposes import Purpose
from mpki.keys.quorum import (
    CustodianShare,
    QuorumError,
    QuorumPolicy,
    combine,
    new_secret,
    read_share,
    split,
    write_share,
)
from mpki.keys.secrets import backup_key, software_kek
from tests.csr_factory import device_csr, random_eui64

CEREMONY_FILE = Path(__file__).parent / "ceremonies" / "software-3of5.yaml"
CEREMONY_ID = "test-software-2026"
CUSTODIANS = ["Ann Custodian", "Bob Custodian", "Cat Custodian", "Dan Custodian", "Eve Custodian"]
EXPECTED_STEPS = [
    "ceremony.opened",
    "quorum.split",
    "quorum.tested",
    "quorum.split",  # the backup group
    "quorum.tested",
    "keystore.initialised",
    "keys.activated",
    "key.generated",
    "ca.certificate_signed",
    "key.generated",
    "ca.certificate_signed",
    "ceremony.closed",
]
FIRST_CERTIFICATE = EXPECTED_STEPS.index("ca.certificate_signed")
BACKUP_CUSTODIANS = ["Ann Custodian", "Fred Backup", "Gail Backup"]
KEY_AND_CEREMONY_EVENTS = {
    "key.generated",
    "keys.activated",
    "keys.activation_failed",
    "keys.deactivated",
    "ca.created",
    "key.backed_up",
    "key.restored",
    "ceremony.step",
    "ceremony.completed",
}


# --- helpers -----------------------------------------------------------------------------------------


def ceremony_file(tmp_path: Path, name: str = "ceremony.yaml", **changes: Any) -> Path:
    """The fixture ceremony with some top-level keys changed, written beside the test."""
    raw = yaml.safe_load(CEREMONY_FILE.read_text())
    raw.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run(env: dict[str, str], tmp_path: Path, tag: str = "main", **changes: Any) -> CeremonyResult:
    """Run a ceremony in-process, its shares and record under tmp_path/<tag>."""
    spec = CeremonySpec.load(ceremony_file(tmp_path, f"{tag}.yaml", **changes))
    return run_ceremony(spec, env, tmp_path / tag / "shares", tmp_path / tag / "record.json")


def other_env(tmp_path: Path, env: dict[str, str], tag: str = "other") -> dict[str, str]:
    """A second, separate installation (its own home and SQLite database)."""
    home = tmp_path / f"{tag}-home"
    return env | {"MPKI_HOME": str(home), "MPKI_DATABASE_URL": f"sqlite:///{tmp_path / f'{tag}.sqlite3'}"}


@contextmanager
def custody(env: dict[str, str]) -> Iterator[KeyCustody]:
    settings = load_settings(env)
    database = open_database(settings)
    try:
        yield KeyCustody(settings, database, open_keystore(settings))
    finally:
        database.dispose()


def events(env: dict[str, str]) -> list[dict[str, Any]]:
    database = open_database(load_settings(env))
    try:
        out = io.StringIO()
        export_jsonl(database, out)
    finally:
        database.dispose()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def actions(env: dict[str, str]) -> list[str]:
    return [event["action"] for event in events(env)]


def chain_ok(env: dict[str, str]) -> bool:
    database = open_database(load_settings(env))
    try:
        return verify_chain(database).ok
    finally:
        database.dispose()


def shares_of(result: CeremonyResult, group: str = "ca-keys") -> list[CustodianShare]:
    """The shares of one group (the CA keys' activation group unless told)."""
    files = result.shares_by_group.get(group)
    if files is None:  # a result rebuilt by a test from a shares directory
        return [share for share in map(read_share, result.share_files) if share.group == group]
    return [read_share(path) for path in files]


def backup_shares(result: CeremonyResult) -> list[CustodianShare]:
    return shares_of(result, "backup")


def quorum_secret(result: CeremonyResult, group: str = "ca-keys") -> bytes:
    shares = shares_of(result, group)
    return combine(shares[: shares[0].threshold])[1]


def is_active(env: dict[str, str]) -> bool:
    return open_keystore(load_settings(env)).is_active()


def error_line(stderr: str, prompted: bool = False) -> str:
    """A refusal is exactly one line starting with `error:`, never a traceback (after any prompts)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    if prompted:
        assert sum(line.startswith("error") for line in lines) == 1, stderr
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def word_runs(share: CustodianShare, length: int = 3, start: int = 0) -> list[str]:
    """Runs of consecutive words of a share. The first three words of SLIP-39 shares of one set are the
    same (identifier and group parameters); a run from `start=1` on includes this share's own index."""
    assert share.mnemonic is not None
    words = share.mnemonic.split()
    return [" ".join(words[i : i + length]) for i in range(start, len(words) - length + 1)]


def secret_forms(secret: bytes) -> list[str]:
    """A quorum secret and everything derived from it, as they could leak into text."""
    forms = []
    for value in (secret, software_kek(secret), backup_key(secret)):
        forms += [value.hex(), value.hex().upper(), base64.b64encode(value).decode(), base64.b32encode(value).decode()]
    return forms


def assert_no_secrets(text: str, result: CeremonyResult) -> None:
    for group in ("ca-keys", "backup"):
        shares = shares_of(result, group)
        for share in shares:
            for run_of_words in word_runs(share):
                assert run_of_words not in text, f"words of {share.custodian}'s share of {group} leaked"
        if len(shares) >= shares[0].threshold:
            for form in secret_forms(quorum_secret(result, group)):
                assert form not in text, f"the {group} secret (or a key derived from it) leaked"
    assert "mnemonic" not in text


def corrupt_one_word(share: CustodianShare, position: int = 7) -> CustodianShare:
    """Change exactly one word of the share for another valid SLIP-39 word."""
    assert share.mnemonic is not None
    words = share.mnemonic.split()
    words[position] = "acid" if words[position] != "acid" else "acne"
    return dataclasses.replace(share, mnemonic=" ".join(words))


def foreign_shares(tmp_path: Path, ceremony: str = "another-ceremony-2026") -> list[Path]:
    """A genuine 3-of-5 set for the same group name from another ceremony, one file per custodian."""
    directory = tmp_path / "foreign-shares"
    directory.mkdir()
    paths = []
    for share in split(new_secret(), QuorumPolicy("ca-keys", 3, 5), ceremony, CUSTODIANS):
        path = directory / f"foreign-{share.index}.json"
        write_share(share, path)
        paths.append(path)
    return paths


def write(tmp_path: Path, name: str, share: CustodianShare) -> Path:
    path = tmp_path / name
    write_share(share, path)
    return path


# --- the ceremony and its record ----------------------------------------------------------------------


def test_ceremony_run_writes_one_share_per_custodian_and_a_signed_record(  # type: ignore[no-untyped-def]
    mpki, env: dict[str, str], tmp_path: Path
) -> None:
    shares_dir, record = tmp_path / "shares", tmp_path / "record.json"
    done = mpki("ceremony", "run", str(CEREMONY_FILE), "--shares-dir", str(shares_dir), "--record", str(record))
    assert done.returncode == 0, done.stderr
    home = Path(env["MPKI_HOME"])

    # One file per custodian and group, private to its owner, each holding that custodian's words and
    # nobody else's; the backup group's files are named apart from the activation group's.
    every = sorted(shares_dir.iterdir())
    backup_files = [path for path in every if read_share(path).group == "backup"]
    files = [path for path in every if path not in backup_files]
    assert len(files) == 5 and len(backup_files) == 3 and len(every) == 8
    assert all("-backup-share-" in path.name for path in backup_files)
    assert not any("backup" in path.name for path in files)
    assert sorted(read_share(path).custodian for path in backup_files) == BACKUP_CUSTODIANS
    assert {(read_share(path).threshold, read_share(path).shares) for path in backup_files} == {(2, 3)}
    shares = [read_share(path) for path in files]
    assert sorted(share.custodian for share in shares) == sorted(CUSTODIANS)
    assert sorted(share.index for share in shares) == [1, 2, 3, 4, 5]
    for path, share in zip(files, shares, strict=True):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = json.loads(path.read_text())
        assert data["custodian"] == share.custodian and data["ceremony"] == CEREMONY_ID
        assert (data["threshold"], data["shares"], data["group"]) == (3, 5, "ca-keys")
        assert isinstance(data["mnemonic"], str) and len(data["mnemonic"].split()) >= 20
        text = path.read_text()
        for other in shares:
            if other is not share:
                assert other.custodian not in text
                assert all(words not in text for words in word_runs(other, start=1))
    assert "share file for one custodian" in done.stdout

    # The record: every step with time, actor, inputs and outputs, signed by the root it made.
    body = json.loads(record.read_bytes())
    assert [step["step"] for step in body["steps"]] == EXPECTED_STEPS
    assert [step["n"] for step in body["steps"]] == list(range(1, len(EXPECTED_STEPS) + 1))
    for step in body["steps"]:
        assert set(step) == {"n", "step", "at", "actor", "inputs", "outputs"}
        assert step["actor"] in ("Kim Keymanager", "Ada Auditor")
    assert body["ceremony"] == CEREMONY_ID and body["environment"] == "test"
    assert body["ceremony_file_sha256"] == hashlib.sha256(CEREMONY_FILE.read_bytes()).hexdigest()
    assert body["signer"]["ca"] == "smki-root"
    holders = body["steps"][1]["outputs"]["holders"]
    assert [h["custodian"] for h in holders] == CUSTODIANS
    assert {h["file"] for h in holders} == {path.name for path in files}
    assert body["steps"][3]["inputs"] == {"group": "backup", "role": "backup", "threshold": 2, "shares": 3}
    assert {h["file"] for h in body["steps"][3]["outputs"]["holders"]} == {path.name for path in backup_files}

    verified = mpki("ceremony", "verify", str(record))
    assert verified.returncode == 0, verified.stderr
    assert f"ceremony record OK: {CEREMONY_ID} (test), {len(EXPECTED_STEPS)} steps, signed by smki-root" in (
        verified.stdout
    )
    assert verify_record(record.read_bytes()).steps == len(EXPECTED_STEPS)

    # The installation is bound, activated (in MPKI_HOME/run) and its status says so.
    assert 'environment = "test"' in (home / "mpki.toml").read_text()
    assert (home / "run" / "active" / "ca-keys.secret").is_file()
    # The backup group's secret is never kept: not in the run directory, not active.
    assert sorted(p.name for p in (home / "run" / "active").iterdir()) == ["ca-keys.secret"]
    status = mpki("keys", "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["groups"] == [
        {"group": "backup", "threshold": 2, "shares": 3, "ceremony": CEREMONY_ID, "active": False, "role": "backup"},
        {
            "group": "ca-keys",
            "threshold": 3,
            "shares": 5,
            "ceremony": CEREMONY_ID,
            "active": True,
            "role": "activation",
        },
    ]
    roles = json.loads((home / "keys" / "custody.json").read_text())["groups"]
    assert {name: group["role"] for name, group in roles.items()} == {"ca-keys": "activation", "backup": "backup"}
    assert {(k["ca"], k["backend"], k["group"], k["active"]) for k in report["keys"]} == {
        ("smki-root", "software", "ca-keys", True),
        ("smki-device-ca", "software", "ca-keys", True),
    }

    # The audit chain holds each step and the completion, which names the record by its hash.
    log = events(env)
    steps = [e for e in log if e["action"] == "ceremony.step"]
    assert [e["details"]["step"] for e in steps] == EXPECTED_STEPS
    assert [e["details"]["outputs"] for e in steps] == [s["outputs"] for s in body["steps"]]
    (completed,) = [e for e in log if e["action"] == "ceremony.completed"]
    assert completed["details"]["record_sha256"] == hashlib.sha256(record.read_bytes()).hexdigest()
    assert completed["details"]["steps"] == len(EXPECTED_STEPS)
    assert [e["ca"] for e in log if e["action"] == "key.generated"] == ["smki-root", "smki-device-ca"]
    assert [e["ca"] for e in log if e["action"] == "ca.created"] == ["smki-root", "smki-device-ca"]

    # Never a secret: no share words, no quorum secret or derived key, in the record or the audit export.
    result = CeremonyResult(record, completed["details"]["record_sha256"], tuple(every), ())
    exported = mpki("audit", "export")
    assert exported.returncode == 0, exported.stderr
    assert "ceremony.completed" in exported.stdout
    assert_no_secrets(record.read_text(), result)
    assert_no_secrets(exported.stdout, result)
    assert_no_secrets(done.stdout + done.stderr, result)
    assert mpki("audit", "verify").returncode == 0


def test_a_ceremony_refuses_to_mix_or_overwrite(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, tmp_path)
    before = actions(env)
    spec = CeremonySpec.load(ceremony_file(tmp_path, "again.yaml", ceremony="second-2026"))
    # Shares of two ceremonies never share a directory; a record is never overwritten; a group is made once.
    with pytest.raises(InvalidRequest, match="not empty"):
        run_ceremony(spec, env, result.share_files[0].parent, tmp_path / "new-record.json")
    with pytest.raises(InvalidRequest, match="never overwritten"):
        run_ceremony(spec, env, tmp_path / "new-shares", result.record_path)
    with pytest.raises(InvalidRequest, match="already exists"):
        run_ceremony(spec, env, tmp_path / "new-shares", tmp_path / "new-record.json")
    assert not (tmp_path / "new-shares").exists() and not (tmp_path / "new-record.json").exists()
    assert actions(env) == before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"environment": "prod"}, "environment"),
        ({"quorum": {"group": "ca-keys", "threshold": 3, "shares": 4}}, "4 shares but 5 custodians"),
        ({"quorum": {"group": "ca-keys", "threshold": 6, "shares": 5}}, "not possible"),
        ({"cas": [{"name": "x", "profile": "smki-root", "common_name": "X", "token": "t"}]}, "only applies"),
        ({"record_signer": "nobody"}, "record_signer"),
        # The backup group is a group of its own, not the old `backup: true`; M >= 2; names never repeat.
        ({"backup": True}, "the backup group: give its custodians and threshold"),
        ({"backup": None}, "`backup` must give the backup group"),
        ({"backup": {"custodians": ["Ann Custodian", "Fred Backup"], "threshold": 1}}, "threshold 1 needs 2 to 2"),
        ({"backup": {"group": "ca-keys", "custodians": ["A", "B"]}}, "two quorum groups are named 'ca-keys'"),
        ({"backup": {"custodians": ["A", "B"], "shares": 3}}, "3 shares but 2 custodians"),
        ({"token_admin": {"group": "backup", "custodians": ["A", "B"]}}, "two quorum groups are named 'backup'"),
        (
            {
                "backend": "pkcs11",
                "tokens": ["t"],
                "cas": [{"name": "r", "profile": "smki-root", "common_name": "R", "token": "t"}],
                "record_signer": "r",
            },
            "a pkcs11 ceremony needs `token_admin`",
        ),
        # What creating a CA would refuse halfway through is refused before the quorum is even split.
        ({"cas": [{"name": "r", "profile": "smki-root", "common_name": "Root & Co"}]}, "PrintableString"),
        ({"cas": [{"name": "r", "profile": "smki-root", "common_name": "R", "algorithm": "rsa-3072"}]}, "ec-p256"),
        ({"cas": [{"name": "i", "profile": "smki-issuing", "common_name": "I"}]}, "needs one"),
        (
            {
                "cas": [
                    {"name": "r", "profile": "smki-root", "common_name": "R"},
                    {"name": "s", "profile": "smki-root", "common_name": "S", "parent": "r"},
                ]
            },
            "has no parent",
        ),
    ],
)
def test_a_bad_ceremony_file_is_refused_before_anything_happens(
    env: dict[str, str], tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        run(env, tmp_path, **changes)
    assert not Path(env["MPKI_HOME"]).exists()


def test_a_ceremony_that_stops_halfway_leaves_its_steps_in_the_audit_chain(env: dict[str, str], tmp_path: Path) -> None:
    def interrupt(entry: dict[str, Any]) -> None:
        if entry["step"] == "ca.certificate_signed":
            raise KeyStoreError("the HSM was unplugged")

    spec = CeremonySpec.load(CEREMONY_FILE)
    with pytest.raises(KeyStoreError, match="unplugged"):
        run_ceremony(spec, env, tmp_path / "shares", tmp_path / "record.json", on_step=interrupt)
    assert not (tmp_path / "record.json").exists()
    log = events(env)
    steps = [e["details"]["step"] for e in log if e["action"] == "ceremony.step"]
    assert steps == EXPECTED_STEPS[: FIRST_CERTIFICATE + 1]
    (failed,) = [e for e in log if e["action"] == "ceremony.failed"]
    assert failed["details"] == {
        "ceremony": CEREMONY_ID,
        "steps": FIRST_CERTIFICATE + 1,
        "reason": "the HSM was unplugged",
    }
    assert "ceremony.completed" not in [e["action"] for e in log]
    assert chain_ok(env)
    result = CeremonyResult(tmp_path / "record.json", "", tuple(sorted((tmp_path / "shares").iterdir())), ())
    assert_no_secrets(json.dumps(log), result)


def test_a_ceremony_for_another_environment_is_refused_in_production(env: dict[str, str], tmp_path: Path) -> None:
    """Running a test ceremony where MPKI_ENVIRONMENT=production would unmark the installation."""
    production = env | {"MPKI_ENVIRONMENT": "production"}
    with pytest.raises(InvalidRequest, match="production"):
        run(production, tmp_path)
    assert not (Path(env["MPKI_HOME"]) / "keys").exists()
    assert not (Path(env["MPKI_HOME"]) / "mpki.toml").exists()


# --- tampered records ---------------------------------------------------------------------------------


def _edit(record: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    body = json.loads(record)
    change(body)
    return json.dumps(body, indent=2).encode()


def _swap(body: dict[str, Any], i: int, j: int) -> None:
    steps = body["steps"]
    steps[i], steps[j] = steps[j], steps[i]


def test_a_tampered_record_does_not_verify(  # type: ignore[no-untyped-def]
    mpki, env: dict[str, str], tmp_path: Path
) -> None:
    result = run(env, tmp_path)
    record = result.record_path.read_bytes()
    assert verify_record(record).signer == "smki-root"
    # Formatting is not content: the same record re-serialised still verifies.
    assert verify_record(_edit(record, lambda body: None)).steps == len(EXPECTED_STEPS)

    mine = {view.name: view for view in result.cas}
    other_home = other_env(tmp_path, env)
    other = run(other_home, tmp_path, tag="other", ceremony="other-2026")
    theirs = {view.name: view for view in other.cas}

    def pem(view: Any) -> str:
        return x509.load_der_x509_certificate(view.certificate_der).public_bytes(serialization.Encoding.PEM).decode()

    def set_output(step: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
        return lambda body: body["steps"][step]["outputs"].__setitem__(key, value)

    def set_signer_certificate(certificate: str) -> Callable[[dict[str, Any]], None]:
        return lambda body: body["signer"].__setitem__("certificate", certificate)

    def forge_with_other_root(body: dict[str, Any]) -> None:
        """Re-sign everything with another ceremony's root: a valid signature, but not by a CA made here."""
        body.pop("signature")
        body["signer"]["certificate"] = pem(theirs["smki-root"])
        key = open_keystore(load_settings(other_home)).signing_key(theirs["smki-root"].key_id, Purpose.RECORD)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        value = key.sign(canonical(body), ec.ECDSA(hashes.SHA256()))
        body["signature"] = {"algorithm": "sha256", "value": base64.b64encode(value).decode()}

    # The forgery's signature really is good: only the "produced by this ceremony" check stops it.
    forged = json.loads(_edit(record, forge_with_other_root))
    forged_signature = base64.b64decode(forged.pop("signature")["value"])
    forger = x509.load_pem_x509_certificate(forged["signer"]["certificate"].encode()).public_key()
    assert isinstance(forger, ec.EllipticCurvePublicKey)
    forger.verify(forged_signature, canonical(forged), ec.ECDSA(hashes.SHA256()))

    device_cert_step = EXPECTED_STEPS.index("ca.certificate_signed", FIRST_CERTIFICATE + 1)
    first_key_step = EXPECTED_STEPS.index("key.generated")
    tampers: dict[str, Callable[[dict[str, Any]], None]] = {
        "an output value": set_output(device_cert_step, "certificate_sha256", "00" * 32),
        "a key id": set_output(first_key_step, "key_id", "0" * 32),
        "a quorum output": set_output(2, "rebuilt", False),
        "an input": lambda body: body["steps"][1]["inputs"].__setitem__("threshold", 2),
        "a step's time": lambda body: body["steps"][0].__setitem__("at", "2020-01-01T00:00:00+00:00"),
        "the actor": lambda body: body["steps"][-1].__setitem__("actor", "Mallory"),
        "two steps reordered": lambda body: _swap(body, 5, 7),
        "steps reversed": lambda body: body["steps"].reverse(),
        "a step removed": lambda body: body["steps"].pop(3),
        "the people present": lambda body: body["people"]["witnesses"].append("Mallory"),
        "the signer's name": lambda body: body["signer"].__setitem__("ca", "smki-device-ca"),
        "signer certificate from this ceremony": set_signer_certificate(pem(mine["smki-device-ca"])),
        "signer certificate from another ceremony": set_signer_certificate(pem(theirs["smki-root"])),
        "re-signed by another ceremony's root": forge_with_other_root,
        "the signature": lambda body: body["signature"].__setitem__(
            "value", base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()
        ),
        "no signature": lambda body: body.pop("signature"),
    }
    for what, change in tampers.items():
        with pytest.raises(InvalidRequest) as refused:
            verify_record(_edit(record, change))
        assert "\n" not in str(refused.value), what

    # And through the CLI: one line, non-zero exit.
    for what in ("an output value", "two steps reordered", "signer certificate from another ceremony"):
        path = tmp_path / f"tampered-{what.replace(' ', '-')}.json"
        path.write_bytes(_edit(record, tampers[what]))
        done = mpki("ceremony", "verify", str(path))
        assert done.returncode != 0, what
        assert "ceremony record OK" not in done.stdout
        error_line(done.stderr)


# --- quorum activation --------------------------------------------------------------------------------


def test_keys_cannot_sign_until_a_quorum_activates_them(  # type: ignore[no-untyped-def]
    mpki, env: dict[str, str], tmp_path: Path
) -> None:
    result = run(env, tmp_path)
    files = list(result.share_files)
    csr = tmp_path / "device.csr"
    csr.write_bytes(device_csr(random_eui64(), pem=True))
    issue = ("issue", "--profile", "smki-device", "--csr", str(csr), "--out", str(tmp_path / "device.pem"))

    done = mpki("keys", "deactivate")
    assert done.returncode == 0, done.stderr
    assert "deactivated: ca-keys" in done.stdout
    assert not list((Path(env["MPKI_HOME"]) / "run" / "active").iterdir())
    assert not is_active(env)

    done = mpki(*issue)
    assert done.returncode != 0
    assert "not active" in error_line(done.stderr)
    assert not (tmp_path / "device.pem").exists()

    bad = write(tmp_path, "bad.json", corrupt_one_word(read_share(files[2])))
    foreign = foreign_shares(tmp_path)
    not_a_share = tmp_path / "notes.json"
    not_a_share.write_text('{"hello": "world"}')
    refusals = {
        "fewer than M": (files[:2], "2 of 3 required shares"),
        "one changed word": ([files[0], files[1], bad], "does not check out"),
        "another ceremony's shares": (foreign[:3], "does not belong to group"),
        "a file that is not a share": ([files[0], files[1], not_a_share], "is not an mpki quorum share file"),
    }
    for what, (presented, reason) in refusals.items():
        done = mpki("keys", "activate", *[arg for path in presented for arg in ("--share", str(path))])
        assert done.returncode != 0, what
        line = error_line(done.stderr)
        assert reason in line, (what, line)
        for share in [read_share(path) for path in presented if path != not_a_share]:
            assert all(words not in line for words in word_runs(share))
        assert not is_active(env), what

    # A custodian who types their share with one word changed is refused (and audited) too.
    words = [read_share(path).mnemonic or "" for path in files]
    typo = corrupt_one_word(read_share(files[1]), 11).mnemonic
    typed = f"Ann Custodian\n{words[0]}\nBob Custodian\n{typo}\nCat Custodian\n{words[2]}\n\n"
    done = mpki("keys", "activate", "--interactive", input=typed.encode())
    assert done.returncode != 0
    assert "the share of custodian Bob Custodian does not check out" in error_line(done.stderr, prompted=True)
    assert not is_active(env)

    failures = [e for e in events(env) if e["action"] == "keys.activation_failed"]
    assert [f["details"]["shares_presented"] for f in failures] == [2, 3, 3, 3, 1]
    for failure, reason in zip(failures, [*[r for _, r in refusals.values()], "Bob Custodian"], strict=True):
        assert reason in failure["details"]["reason"]
    assert failures[-1]["details"]["custodians"] == ["Ann Custodian"]
    assert_no_secrets(done.stdout + done.stderr + json.dumps(failures), result)

    done = mpki("keys", "activate", "--share", str(files[4]), "--share", str(files[0]), "--share", str(files[3]))
    assert done.returncode == 0, done.stderr
    assert "quorum group ca-keys is active (3 shares presented)" in done.stdout
    assert is_active(env)
    (activated,) = [e for e in events(env) if e["action"] == "keys.activated"]
    assert activated["details"]["custodians"] == ["Ann Custodian", "Dan Custodian", "Eve Custodian"]

    done = mpki(*issue)
    assert done.returncode == 0, done.stderr
    leaf = x509.load_pem_x509_certificate((tmp_path / "device.pem").read_bytes())
    device_ca = next(view for view in result.cas if view.name == "smki-device-ca")
    leaf.verify_directly_issued_by(x509.load_der_x509_certificate(device_ca.certificate_der))
    assert chain_ok(env)


def test_every_refused_activation_is_audited_and_leaves_the_keys_inactive(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, tmp_path)
    shares = shares_of(result)
    foreign = read_share(foreign_shares(tmp_path)[2])
    relabelled = dataclasses.replace(foreign, ceremony=CEREMONY_ID, custodian="Cat Custodian")
    with custody(env) as keeper:
        keeper.deactivate(actor="test")
    refusals: dict[str, tuple[list[CustodianShare], str]] = {
        "none": ([], "no shares"),
        "fewer than M": (shares[3:], "2 of 3"),
        "a changed word, first share": ([corrupt_one_word(shares[0], 0), *shares[1:3]], "does not check out"),
        "a changed word, last word": ([*shares[:2], corrupt_one_word(shares[2], -1)], "does not check out"),
        "a changed word beyond M": ([*shares[:3], corrupt_one_word(shares[3], 12)], "does not check out"),
        "another ceremony's share": ([*shares[:2], foreign], "different ceremonies"),
        "another ceremony's share, relabelled": ([*shares[:2], relabelled], "different ceremony"),
        "the same custodian twice": ([shares[0], shares[0], shares[1]], "presented twice"),
        "unknown group": ([dataclasses.replace(s, group="tls-keys") for s in shares[:3]], "no quorum group"),
        # The backup group's shares rebuild a genuine secret of this installation, but not one that activates.
        "the backup group's shares": (backup_shares(result)[:2], "activating keys needs shares of the activation"),
    }
    for what, (presented, reason) in refusals.items():
        with custody(env) as keeper, pytest.raises(QuorumError if what != "unknown group" else MpkiError) as e:
            keeper.activate(presented, None, actor="test")
        message = str(e.value)
        assert reason in message, (what, message)
        assert "\n" not in message
        for share in shares:
            assert all(words not in message for words in word_runs(share)), what
        assert not is_active(env), what
    failures = [e for e in events(env) if e["action"] == "keys.activation_failed"]
    assert len(failures) == len(refusals)
    assert all(not any(words in json.dumps(f) for s in shares for words in word_runs(s)) for f in failures)

    # Any M of the N activate, and more than M is fine when every share fits.
    for chosen in ([0, 1, 2], [2, 3, 4], [0, 2, 4], [0, 1, 2, 3, 4]):
        with custody(env) as keeper:
            assert keeper.activate([shares[i] for i in chosen], None, actor="test") == "ca-keys"
            assert is_active(env)
            keeper.deactivate(actor="test")
    assert not is_active(env)
    assert chain_ok(env)


def test_init_dev_is_a_two_of_three_ceremony_left_active(  # type: ignore[no-untyped-def]
    mpki, env: dict[str, str]
) -> None:
    done = mpki("init", "--dev")
    assert done.returncode == 0, done.stderr
    assert "INSECURE" in done.stderr
    home = Path(env["MPKI_HOME"])
    files = sorted((home / "dev-shares").iterdir())
    every_share = [read_share(path) for path in files]
    shares = [s for s in every_share if s.group == "ca-keys"]
    contingency = [s for s in every_share if s.group == "contingency"]
    assert len(shares) == 3 and len({s.custodian for s in shares}) == 3
    assert {(s.threshold, s.shares) for s in shares} == {(2, 3)}
    # The backup and token-admin groups are made too, 2 of 3 each, their files named apart.
    for role in ("backup", "token-admin"):
        group = [(s, path) for s, path in zip(every_share, files, strict=True) if s.group == role]
        assert len(group) == 3 and {(s.threshold, s.shares) for s, _ in group} == {(2, 3)}
        assert all(f"-{role}-share-" in path.name for _, path in group)
        assert not (home / "run" / "active" / f"{role}.secret").exists()
    assert len(files) == 3 + 5 + 3 + 3
    # The apex contingency key has its own 3-of-5 quorum, held by other people, and is never left active.
    assert len(contingency) == 5 and {(s.threshold, s.shares) for s in contingency} == {(3, 5)}
    assert not {s.custodian for s in contingency} & {s.custodian for s in shares}
    assert not (home / "run" / "active" / "contingency.secret").exists()
    assert (home / "dev-contingency-unwrap-key.json").is_file()
    verified = verify_record((home / "dev-ceremony-record.json").read_bytes())
    assert (verified.environment, verified.signer) == ("development", "smki-root")
    assert (home / "run" / "active" / "ca-keys.secret").is_file()
    with custody(env) as keeper:
        groups, keys = keeper.status()
        assert sorted((g.group, g.threshold, g.shares, g.active) for g in groups) == [
            ("backup", 2, 3, False),
            ("ca-keys", 2, 3, True),
            ("contingency", 3, 5, False),
            ("token-admin", 2, 3, False),
        ]
        assert len(keys) == 5 and all(k.active for k in keys)
        keeper.deactivate(actor="test")
        with pytest.raises(QuorumError):
            keeper.activate(shares[:1], None, actor="test")
        assert not is_active(env)
        keeper.activate([shares[2], shares[0]], None, actor="test")
    assert is_active(env)
    assert KEY_AND_CEREMONY_EVENTS - {"key.backed_up", "key.restored"} <= set(actions(env))
    assert chain_ok(env)


# --- backup and restore -------------------------------------------------------------------------------


def _private_pkcs8(env: dict[str, str], key_id: str, secret: bytes) -> bytes:
    """The key's PKCS#8 DER, unsealed from its key file with the quorum's KEK (what must not leak)."""
    data = json.loads((Path(env["MPKI_HOME"]) / "keys" / f"{key_id}.key.json").read_text())
    blob = base64.b64decode(data["sealed_private_key"])
    return AESGCM(software_kek(secret)).decrypt(blob[:12], blob[12:], key_id.encode())


def _share_args(shares: list[CustodianShare], tmp_path: Path, tag: str) -> list[str]:
    """`--share FILE` for each share, written to files of their own under tmp_path."""
    args = []
    for n, share in enumerate(shares):
        args += ["--share", str(write(tmp_path, f"{tag}-{n}.json", share))]
    return args


def test_backup_and_restore_of_a_lost_key(  # type: ignore[no-untyped-def]
    mpki, env: dict[str, str], tmp_path: Path
) -> None:
    result = run(env, tmp_path)
    secret = quorum_secret(result)
    device_ca = next(view for view in result.cas if view.name == "smki-device-ca")
    key_file = Path(env["MPKI_HOME"]) / "keys" / f"{device_ca.key_id}.key.json"
    backup = tmp_path / "device-ca.backup"
    backup_args = _share_args(backup_shares(result)[:2], tmp_path, "backup")
    activation_args = _share_args(shares_of(result)[:3], tmp_path, "activation")

    # Backup needs fresh shares of the backup group: none, or the activation group's, are refused.
    done = mpki("keys", "backup", "smki-device-ca", "--out", str(backup))
    assert done.returncode != 0
    assert "needs fresh shares of the backup group" in error_line(done.stderr)
    done = mpki("keys", "backup", "smki-device-ca", "--out", str(backup), *activation_args)
    assert done.returncode != 0
    assert "has the activation role" in error_line(done.stderr)
    done = mpki("keys", "backup", "smki-device-ca", "--out", str(backup), *backup_args[:2])
    assert done.returncode != 0
    assert "1 of 2 required shares" in error_line(done.stderr)
    assert not backup.exists()
    refused = [e for e in events(env) if e["action"] == "key.backup_failed"]
    assert [e["details"]["shares_presented"] for e in refused] == [0, 3, 1]
    assert "key.backed_up" not in actions(env)

    # ... and needs no activation: with the CA keys deactivated, the backup group alone backs up.
    with custody(env) as keeper:
        keeper.deactivate(actor="test")
    done = mpki("keys", "backup", "smki-device-ca", "--out", str(backup), *backup_args)
    assert done.returncode == 0, done.stderr
    assert "sealed for group backup" in done.stdout
    blob = backup.read_bytes()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600

    # No plaintext private key in the backup, in any encoding; not even the KEK-sealed key file in the clear.
    pkcs8 = _private_pkcs8(env, device_ca.key_id, secret)
    private = serialization.load_der_private_key(pkcs8, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    scalar = private.private_numbers().private_value.to_bytes(32, "big")
    pem_body = "".join(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
        .splitlines()[1:-1]
    )
    text = blob.decode()
    for leak in (pkcs8.hex(), base64.b64encode(pkcs8).decode(), pem_body[:40], scalar.hex(), scalar.hex().upper()):
        assert leak not in text
    assert base64.b64encode(scalar).decode() not in text
    assert pkcs8 not in blob and scalar not in blob
    assert "PRIVATE KEY" not in text
    assert json.loads(key_file.read_text())["sealed_private_key"] not in text

    # The key file is lost: the CA cannot sign.
    original = key_file.read_bytes()
    key_file.unlink()
    with custody(env) as keeper:
        keeper.activate(shares_of(result)[:3], None, actor="test")
    csr = tmp_path / "device.csr"
    csr.write_bytes(device_csr(random_eui64(), pem=True))
    with pytest.raises(NotFound):
        open_keystore(load_settings(env)).signing_key(device_ca.key_id, Purpose.CERTIFICATE)

    # Restore needs the backup group's shares too; without them nothing is laid back.
    done = mpki("keys", "restore", "smki-device-ca", "--from", str(backup))
    assert done.returncode != 0
    assert "needs fresh shares of the backup group" in error_line(done.stderr)
    with custody(env) as keeper, pytest.raises(QuorumError, match="activation role"):
        keeper.restore("smki-device-ca", backup, shares_of(result)[:3], None, actor="test")
    assert not key_file.exists()
    assert [e["details"]["shares_presented"] for e in events(env) if e["action"] == "key.restore_failed"] == [0, 3]

    done = mpki("keys", "restore", "smki-device-ca", "--from", str(backup), *backup_args)
    assert done.returncode == 0, done.stderr
    assert "its signatures verify under the CA certificate" in done.stdout
    assert key_file.read_bytes() == original
    assert _private_pkcs8(env, device_ca.key_id, secret) == pkcs8
    certificate = x509.load_der_x509_certificate(device_ca.certificate_der)
    prove_signs_for(open_keystore(load_settings(env)), device_ca.key_id, certificate)

    # ... and the restored key issues under the CA certificate again.
    done = mpki("issue", "--profile", "smki-device", "--csr", str(csr), "--out", str(tmp_path / "leaf.pem"))
    assert done.returncode == 0, done.stderr
    leaf = x509.load_pem_x509_certificate((tmp_path / "leaf.pem").read_bytes())
    leaf.verify_directly_issued_by(certificate)

    # The same key already in place is left as it is; a different file under its name is never overwritten.
    done = mpki("keys", "restore", "smki-device-ca", "--from", str(backup), *backup_args)
    assert done.returncode == 0, done.stderr
    key_file.write_text(json.dumps(json.loads(original)))  # the same key, other bytes
    changed = key_file.read_bytes()
    done = mpki("keys", "restore", "smki-device-ca", "--from", str(backup), *backup_args)
    assert done.returncode != 0
    assert "refusing to overwrite" in error_line(done.stderr)
    assert key_file.read_bytes() == changed

    log = events(env)
    (backed_up,) = [e for e in log if e["action"] == "key.backed_up"]
    assert backed_up["ca"] == "smki-device-ca"
    assert backed_up["details"]["backup_sha256"] == hashlib.sha256(blob).hexdigest()
    assert backed_up["details"]["group"] == "backup"
    assert backed_up["details"]["custodians"] == sorted(s.custodian for s in backup_shares(result)[:2])
    restored = [e for e in log if e["action"] == "key.restored"]
    assert len(restored) == 2 and restored[0]["ca"] == "smki-device-ca"
    assert restored[0]["details"]["key_id"] == device_ca.key_id
    assert restored[0]["details"]["proof"] == "signature verified under the CA certificate"
    assert_no_secrets(json.dumps(log), result)
    done = mpki("audit", "verify")
    assert done.returncode == 0, done.stderr


def test_a_restore_while_the_keys_are_inactive_is_laid_back_but_not_proven(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, tmp_path)
    root = next(view for view in result.cas if view.name == "smki-root")
    key_file = Path(env["MPKI_HOME"]) / "keys" / f"{root.key_id}.key.json"
    with custody(env) as keeper:
        keeper.backup("smki-root", tmp_path / "root.backup", backup_shares(result)[1:], None, actor="test")
        keeper.deactivate(actor="test")
    key_file.unlink()
    with custody(env) as keeper:
        restored = keeper.restore("smki-root", tmp_path / "root.backup", backup_shares(result)[:2], None, actor="test")
    assert key_file.is_file() and restored.not_proven is not None and "activate group ca-keys" in restored.not_proven
    (event,) = [e for e in events(env) if e["action"] == "key.restored"]
    assert event["details"]["proof"] == restored.not_proven


def test_a_backup_restores_only_as_its_own_ca(env: dict[str, str], tmp_path: Path) -> None:
    """A root's backup presented as the device CA's is refused before it touches the keystore."""
    result = run(env, tmp_path)
    views = {view.name: view for view in result.cas}
    keys = Path(env["MPKI_HOME"]) / "keys"
    backup = tmp_path / "root.backup"
    fresh = backup_shares(result)[:2]
    with custody(env) as keeper:
        keeper.backup("smki-root", backup, fresh, None, actor="test")
    (keys / f"{views['smki-root'].key_id}.key.json").unlink()
    (keys / f"{views['smki-device-ca'].key_id}.key.json").unlink()
    with custody(env) as keeper, pytest.raises(KeyStoreError, match="smki-device-ca"):
        keeper.restore("smki-device-ca", backup, fresh, None, actor="test")
    assert not (keys / f"{views['smki-root'].key_id}.key.json").exists()
    assert "key.restored" not in actions(env)
    with custody(env) as keeper:
        assert keeper.restore("smki-root", backup, fresh, None, actor="test").key_id == views["smki-root"].key_id


def test_a_backup_does_not_open_under_another_quorum(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, tmp_path)
    root = next(view for view in result.cas if view.name == "smki-root")
    backup = tmp_path / "root.backup"
    with custody(env) as keeper:
        keeper.backup("smki-root", backup, backup_shares(result)[:2], None, actor="test")
        with pytest.raises(KeyStoreError, match="refusing to overwrite"):
            keeper.backup("smki-root", backup, backup_shares(result)[:2], None, actor="test")
    # Another installation's backup group (same group name, other ceremony) does not open our backup.
    theirs = other_env(tmp_path, env)
    other = run(theirs, tmp_path, tag="other", ceremony="other-2026")
    key_file = Path(env["MPKI_HOME"]) / "keys" / f"{root.key_id}.key.json"
    key_file.unlink()
    with custody(env) as keeper, pytest.raises(QuorumError, match="does not belong to group 'backup'"):
        keeper.restore("smki-root", backup, backup_shares(other)[:2], None, actor="test")
    assert not key_file.exists()
    # And their backup key, had they rebuilt it, does not open it either.
    from mpki.keys.software_backups import restore_software_key

    with pytest.raises(KeyStoreError, match="does not open"):
        restore_software_key(backup.read_bytes(), backup_key(quorum_secret(other, "backup")), key_file.parent)
    assert not key_file.exists()


# --- bootstrap and reinitialise -----------------------------------------------------------------------


def test_bootstrap_reinitialise_and_bootstrap_again(  # type: ignore[no-untyped-def]
    mpki, env: dict[str, str], tmp_path: Path
) -> None:
    home = Path(env["MPKI_HOME"])
    home.mkdir(parents=True)
    (home / "mpki.toml").write_text('public_url = "https://pki.example.test"\n')

    def boot(tag: str) -> Any:
        return mpki(
            "bootstrap",
            str(CEREMONY_FILE),
            "--shares-dir",
            str(tmp_path / tag / "shares"),
            "--record",
            str(tmp_path / tag / "record.json"),
        )

    done = boot("first")
    assert done.returncode == 0, done.stderr
    assert "check: smki-root: key signs under its certificate" in done.stdout
    assert "check: audit chain verifies" in done.stdout
    first_record = verify_record((tmp_path / "first" / "record.json").read_bytes())

    done = boot("second")
    assert done.returncode != 0
    assert "bootstrapped already" in error_line(done.stderr)
    assert not (tmp_path / "second").exists()

    done = mpki("reinitialise")
    assert done.returncode != 0
    assert "--yes" in error_line(done.stderr)
    env["MPKI_ENVIRONMENT"] = "production"
    try:
        done = mpki("reinitialise", "--yes")
    finally:
        del env["MPKI_ENVIRONMENT"]
    assert done.returncode != 0
    assert "production" in error_line(done.stderr)
    assert (home / "keys").is_dir() and (home / "run").is_dir()
    history = events(env)
    assert "ceremony.completed" in [e["action"] for e in history]

    done = mpki("reinitialise", "--yes")
    assert done.returncode == 0, done.stderr
    (archive,) = (home / "archive").iterdir()
    archived = [json.loads(line) for line in archive.read_text().splitlines()]
    assert archived == history
    assert not (home / "keys").exists() and not (home / "run").exists()
    assert events(env) == []
    # The operator's own settings survive; only what the ceremony bound is undone.
    config = (home / "mpki.toml").read_text()
    assert 'public_url = "https://pki.example.test"' in config
    assert "keystore" not in config and "environment" not in config

    done = boot("third")
    assert done.returncode == 0, done.stderr
    third_record = verify_record((tmp_path / "third" / "record.json").read_bytes())
    assert third_record.signer_fingerprint != first_record.signer_fingerprint
    assert [e["action"] for e in events(env)].count("ceremony.completed") == 1
    assert load_settings(env).public_url == "https://pki.example.test"
    done = mpki("audit", "verify")
    assert done.returncode == 0, done.stderr

    # Two reinitialisations in quick succession keep both archives.
    reinitialise(env)
    reinitialise(env)
    assert len(list((home / "archive").iterdir())) == 3


def test_an_installation_bound_to_production_is_never_reinitialised(  # type: ignore[no-untyped-def]
    mpki, env: dict[str, str], tmp_path: Path
) -> None:
    result = run(env, tmp_path, environment="production", ceremony="prod-2026")
    home = Path(env["MPKI_HOME"])
    assert 'environment = "production"' in (home / "mpki.toml").read_text()
    assert load_settings(env).environment.value == "production"
    before = actions(env)

    done = mpki("reinitialise", "--yes")
    assert done.returncode != 0
    assert "production" in error_line(done.stderr)
    # Not even when the shell claims otherwise: the binding wins.
    with pytest.raises(InvalidRequest, match="production"):
        reinitialise(env | {"MPKI_ENVIRONMENT": "test"})
    assert actions(env) == before
    assert not (home / "archive").exists()
    assert all((home / "keys" / f"{view.key_id}.key.json").is_file() for view in result.cas)
    # A test ceremony cannot rebind it either.
    with pytest.raises(InvalidRequest, match="bound"):
        run(env | {"MPKI_ENVIRONMENT": "test"}, tmp_path, tag="rebind", ceremony="sneaky-2026")
    with pytest.raises(InvalidRequest, match="bootstrapped already"):
        bootstrap(
            CeremonySpec.load(ceremony_file(tmp_path, "b.yaml", environment="production")),
            env,
            tmp_path / "b-shares",
            tmp_path / "b-record.json",
        )
    assert chain_ok(env)


def test_the_whole_lifecycle_leaves_every_event_in_a_verifying_chain(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, tmp_path)
    shares = shares_of(result)
    root = next(view for view in result.cas if view.name == "smki-root")
    with custody(env) as keeper:
        keeper.deactivate(actor="test")
        with pytest.raises(QuorumError):
            keeper.activate(shares[:2], None, actor="test")
        keeper.activate(shares[2:], None, actor="test")
        keeper.backup("smki-root", tmp_path / "root.backup", backup_shares(result)[:2], None, actor="test")
    (Path(env["MPKI_HOME"]) / "keys" / f"{root.key_id}.key.json").unlink()
    with custody(env) as keeper:
        keeper.restore("smki-root", tmp_path / "root.backup", backup_shares(result)[1:], None, actor="test")
    seen = actions(env)
    assert set(seen) >= KEY_AND_CEREMONY_EVENTS
    assert seen.count("ceremony.step") == len(EXPECTED_STEPS)
    assert chain_ok(env)
    assert_no_secrets(json.dumps(events(env)), result)
