"""TAMP through the real `mpki` command: messages signed by the development hierarchy's apex (the SMKI root),
numbered per signer across runs, read by `openssl cms`; the reference store applies them, refuses replayed,
tampered and wrongly signed ones with their RFC 5934 status code (exit 1), and bad input writes nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mpki.asn1.tamp import (
    CommunityUpdate,
    CommunityUpdateConfirm,
    SequenceNumberAdjust,
    SequenceNumberAdjustConfirm,
    StatusCode,
    StatusQuery,
    StatusResponse,
    TampUpdate,
    TampUpdateConfirm,
)
from mpki.config import Settings
from mpki.store import Database
from mpki.tams import parse, parse_verified
from mpki.tams.sequence import SequenceNumbers
from tests.support.tams import self_signed_ca


def _error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _self_signed_ca(path: Path, name: str) -> x509.Certificate:
    """A new root CA certificate, as DER, that the installation knows nothing of."""
    certificate = self_signed_ca(ec.generate_private_key(ec.SECP256R1()), name)
    path.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    return certificate


def _openssl_print(path: Path) -> str:
    done = subprocess.run(
        ["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _openssl_verify(path: Path, signer_pem: Path) -> None:
    """The signature holds for openssl too, with the signer found by subjectKeyIdentifier."""
    command = ["openssl", "cms", "-verify", "-noverify", "-binary", "-inform", "DER", "-in", str(path)]
    subprocess.run(
        [*command, "-certfile", str(signer_pem), "-out", "/dev/null"],
        capture_output=True,
        check=True,
    )


def _show(mpki, *extra: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return json.loads(mpki("tams", "endpoint", "show", "--json", *extra, check=True).stdout)  # type: ignore[no-any-return]


def _audit_actions(mpki) -> list[str]:  # type: ignore[no-untyped-def]
    run = mpki("audit", "export", check=True)
    return [json.loads(line)["action"] for line in run.stdout.splitlines()]


def _counters(settings: Settings) -> dict[str, int]:
    """The installation's sequence counters, by CA, as the database holds them."""
    database = Database(settings.resolved_database_url)
    try:
        return {c.ca: c.last for c in SequenceNumbers(database).all()}
    finally:
        database.dispose()


def _store_key(home: Path) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_private_key((home / "tams/endpoint/endpoint-key.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.public_key()


def _flip_content_byte(message: Path, tampered: Path) -> None:
    """Change the last octet of the signed content (inside the added certificate's signature): the message
    still decodes, but its message-digest no longer matches."""
    der = message.read_bytes()
    content = parse(der)[1].parts.content
    at = der.index(content) + len(content) - 1
    tampered.write_bytes(der[:at] + bytes([der[at] ^ 0x01]) + der[at + 1 :])


def test_update_status_query_and_refusals(mpki, env: dict[str, str], settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = Path(env["MPKI_HOME"])
    mpki("init", "--dev", check=True)
    mpki("ca", "export", "smki-root", "-o", str(tmp_path / "smki-root.pem"), check=True)
    mpki("ca", "export", "tls-root", "-o", str(tmp_path / "tls-root.pem"), check=True)
    root = x509.load_pem_x509_certificate((tmp_path / "smki-root.pem").read_bytes())
    root_key_id = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()

    run = mpki("tams", "endpoint", "init", check=True)
    assert "CN=mpki Dev SMKI Root" in run.stdout and root_key_id in run.stdout
    key_file = home / "tams/endpoint/endpoint-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    shown = _show(mpki)
    assert shown["apex"]["key_id"] == root_key_id and shown["trust_anchors"] == []

    # A new root (DER) and the TLS root (PEM) added in one update, signed by the apex.
    new_root = _self_signed_ca(tmp_path / "new-root.der", "Next SMKI Root")
    update = tmp_path / "update.der"
    run = mpki(
        "tams", "build", "update", "--add", str(tmp_path / "new-root.der"), "--add", str(tmp_path / "tls-root.pem"),
        "--out", str(update), check=True,
    )  # fmt: skip
    assert f"TAMPUpdate seq 1 signed by smki-root (key id {root_key_id}) -> {update}" in run.stdout
    printed = _openssl_print(update)
    assert "eContentType: undefined (2.16.840.1.101.2.1.2.77.3)" in printed and "subjectKeyIdentifier" in printed
    _openssl_verify(update, tmp_path / "smki-root.pem")
    message, signer = parse_verified(update.read_bytes(), root.public_key())  # type: ignore[arg-type]
    assert isinstance(message, TampUpdate) and message.msg_ref.seq_num == 1 and signer.key_id.hex() == root_key_id

    run = mpki("tams", "endpoint", "process", str(update))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("accepted TAMPUpdate seq 1: TAMPUpdateConfirm [success, success]")
    answer, _ = parse_verified((tmp_path / "update.answer.der").read_bytes(), _store_key(home))
    assert isinstance(answer, TampUpdateConfirm)
    shown = _show(mpki)
    subjects = {a["subject"]: a for a in shown["trust_anchors"]}
    assert set(subjects) == {"CN=Next SMKI Root", "CN=mpki Dev TLS Root"}
    new_key_id = new_root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    assert subjects["CN=Next SMKI Root"]["key_id"] == new_key_id and subjects["CN=Next SMKI Root"]["permitted"] == []
    assert shown["sequence_numbers"] == [{"key_id": root_key_id, "seq_num": 1, "signer": "CN=mpki Dev SMKI Root,OU=00"}]
    text = mpki("tams", "endpoint", "show", check=True).stdout
    assert "CN=Next SMKI Root" in text and f"{root_key_id} CN=mpki Dev SMKI Root,OU=00: 1" in text

    # The same file again is a replay.
    before = (home / "tams/endpoint/store.json").read_bytes()
    run = mpki("tams", "endpoint", "process", str(update), "--out", str(tmp_path / "replay.der"))
    assert run.returncode == 1 and "refused TAMPUpdate seq 1: seqNumFailure (21)" in run.stdout, run
    assert (home / "tams/endpoint/store.json").read_bytes() == before

    # One flipped octet of the content: refused, with its status code.
    removal = tmp_path / "remove.der"
    run = mpki("tams", "build", "update", "--remove", str(tmp_path / "tls-root.pem"), "--out", str(removal), check=True)
    assert "TAMPUpdate seq 2 " in run.stdout
    _flip_content_byte(removal, tmp_path / "tampered.der")
    run = mpki("tams", "endpoint", "process", str(tmp_path / "tampered.der"))
    assert run.returncode == 1 and "refused TAMPUpdate seq 2: signatureFailure (16)" in run.stdout, run
    assert (home / "tams/endpoint/store.json").read_bytes() == before

    # The untouched removal still applies (the tampered copy spent no sequence number).
    run = mpki("tams", "endpoint", "process", str(removal))
    assert run.returncode == 0 and "accepted TAMPUpdate seq 2" in run.stdout, run
    assert [a["subject"] for a in _show(mpki)["trust_anchors"]] == ["CN=Next SMKI Root"]

    # Signed by a key that is not the apex: the TLS root is no longer an anchor at all; the new root is one,
    # but only for path validation (it may sign nothing).
    wrong = tmp_path / "wrong.der"
    run = mpki(
        "tams", "build", "update", "--add", str(tmp_path / "tls-root.pem"), "--signer", "tls-root", "--out", str(wrong)
    )
    assert run.returncode == 0 and "seq 1 signed by tls-root" in run.stdout, run
    run = mpki("tams", "endpoint", "process", str(wrong))
    assert run.returncode == 1 and "refused TAMPUpdate seq 1: noTrustAnchor (10)" in run.stdout, run
    mpki(
        "tams",
        "build",
        "update",
        "--add",
        str(tmp_path / "tls-root.pem"),
        "--out",
        str(tmp_path / "again.der"),
        check=True,
    )
    mpki("tams", "endpoint", "process", str(tmp_path / "again.der"), check=True)
    wrong = tmp_path / "wrong2.der"
    run = mpki(
        "tams",
        "build",
        "update",
        "--remove",
        str(tmp_path / "new-root.der"),
        "--signer",
        "tls-root",
        "--out",
        str(wrong),
    )
    assert "seq 2 signed by tls-root" in run.stdout
    run = mpki("tams", "endpoint", "process", str(wrong))
    assert run.returncode == 1 and "refused TAMPUpdate seq 2: notAuthorized (11)" in run.stdout, run

    # A status query: answered with the store's state, signed by the store.
    query = tmp_path / "query.der"
    run = mpki("tams", "build", "status-query", "--out", str(query), check=True)
    assert "TAMPStatusQuery seq 4 signed by smki-root" in run.stdout
    assert "2.16.840.1.101.2.1.2.77.1" in _openssl_print(query)
    _openssl_verify(query, tmp_path / "smki-root.pem")
    assert isinstance(parse(query.read_bytes())[0], StatusQuery)
    run = mpki("tams", "endpoint", "process", str(query), "-o", str(tmp_path / "status.der"))
    assert run.returncode == 0 and "TAMPStatusResponse, 3 trust anchors" in run.stdout, run
    response, _ = parse_verified((tmp_path / "status.der").read_bytes(), _store_key(home))
    assert isinstance(response, StatusResponse) and not response.terse
    assert {a.key_id.hex() for a in response.trust_anchors} >= {root_key_id, new_key_id}
    assert {(n.key_id.hex(), n.seq_num) for n in response.seq_numbers or ()} >= {(root_key_id, 4)}
    assert "2.16.840.1.101.2.1.2.77.2" in _openssl_print(tmp_path / "status.der")

    run = mpki("tams", "build", "status-query", "--terse", "--out", str(query), check=False)
    assert run.returncode == 1 and f"output {query} already exists" in _error_line(run.stderr)  # never overwritten
    query = tmp_path / "query-terse.der"
    run = mpki("tams", "build", "status-query", "--terse", "--out", str(query), check=True)
    assert "seq 5" in run.stdout
    mpki("tams", "endpoint", "process", str(query), "-o", str(tmp_path / "terse.der"), check=True)
    terse, _ = parse((tmp_path / "terse.der").read_bytes())
    assert isinstance(terse, StatusResponse) and terse.terse and len(terse.ta_key_ids) == 3

    # Every signature by a CA key is audited; the counters are kept per signer.
    assert _audit_actions(mpki).count("tams.message.signed") == 7
    assert _counters(settings) == {"smki-root": 5, "tls-root": 2}


def test_bad_input_writes_nothing(mpki, env: dict[str, str], settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = Path(env["MPKI_HOME"])
    # Before anything exists: no hierarchy, no store.
    assert "mpki init --dev" in _error_line(mpki("tams", "endpoint", "init").stderr)
    assert not (home / "tams").exists()
    mpki("init", "--dev", check=True)
    mpki("ca", "export", "tls-root", "-o", str(tmp_path / "tls-root.pem"), check=True)
    pem = str(tmp_path / "tls-root.pem")
    (tmp_path / "notes.txt").write_text("not a certificate\n")
    (tmp_path / "message.pem").write_text("-----BEGIN CMS-----\nMAA=\n-----END CMS-----\n")
    (tmp_path / "trailing.der").write_bytes(bytes.fromhex("3000") + b"x")
    out = tmp_path / "out.der"

    for args, expected in [
        (("tams", "endpoint", "show"), "no trust-anchor store"),
        (("tams", "endpoint", "process", pem), "no trust-anchor store"),
    ]:
        run = mpki(*args)
        assert run.returncode == 1 and expected in _error_line(run.stderr), run

    mpki("tams", "endpoint", "init", check=True)
    store = home / "tams/endpoint/store.json"
    snapshot = store.read_bytes()
    audit = _audit_actions(mpki)
    build = ("tams", "build", "update", "--out", str(out))
    cases: list[tuple[tuple[str, ...], str]] = [
        ((*build, "--add", str(tmp_path / "missing.pem")), "cannot read certificate"),
        ((*build, "--add", str(tmp_path)), "cannot read certificate"),
        ((*build, "--add", str(tmp_path / "notes.txt")), "is not a certificate"),
        ((*build, "--add", pem, "--signer", "no-such-ca"), "no CA named 'no-such-ca'"),
        ((*build,), "at least one --add"),
        ((*build, "--add", pem, "--target", "uri:https://example"), "neither 'all' nor"),
        ((*build, "--add", pem, "--target", "community:not-an-oid"), "not an object identifier"),
        (("tams", "build", "update", "--add", pem, "--out", str(tmp_path / "no" / "dir.der")), "does not exist"),
        (("tams", "build", "status-query", "--out", str(tmp_path)), "is a directory"),
        (("tams", "endpoint", "process", str(tmp_path / "missing.der")), "cannot read message"),
        (("tams", "endpoint", "process", str(tmp_path / "message.pem")), "is not a DER message"),
        (("tams", "endpoint", "process", str(tmp_path / "trailing.der")), "is not a DER message"),
        (("tams", "endpoint", "process", str(tmp_path / "notes.txt")), "is not a DER message"),
        (("tams", "endpoint", "show", "--dir", str(tmp_path / "elsewhere")), "no trust-anchor store"),
        (("tams", "endpoint", "init"), "already exists"),
    ]
    for args, expected in cases:
        run = mpki(*args)
        assert run.returncode == 1, (args, run)
        assert expected in _error_line(run.stderr), (args, run.stderr)
        assert run.stdout == "", (args, run.stdout)
    assert not out.exists() and not list(tmp_path.glob("*.answer.der"))
    assert _counters(settings) == {}
    assert store.read_bytes() == snapshot
    assert _audit_actions(mpki) == audit

    # A DER message that is not TAMP reaches the store, which answers with a TAMPError.
    (tmp_path / "empty.der").write_bytes(bytes.fromhex("3000"))
    run = mpki("tams", "endpoint", "process", str(tmp_path / "empty.der"))
    assert run.returncode == 1 and run.stdout.startswith("refused message: decodeFailure (1)"), run
    assert (tmp_path / "empty.answer.der").exists()
    assert store.read_bytes() == snapshot

    # Signing needs the keystore active, as any signature does.
    mpki("keys", "deactivate", check=True)
    run = mpki("tams", "build", "status-query", "--out", str(out))
    assert run.returncode == 1 and "not active" in _error_line(run.stderr) and not out.exists()
    assert _counters(settings) == {}


def test_endpoint_in_its_own_directory(mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    where = tmp_path / "device"
    mpki("tams", "endpoint", "init", "--dir", str(where), check=True)
    assert (where / "store.json").is_file() and (where / "endpoint-key.pem").stat().st_mode & 0o777 == 0o600
    query = tmp_path / "q.der"
    mpki("tams", "build", "status-query", "--target", "community:1.3.6.1.4.1.99999.1", "--out", str(query), check=True)
    run = mpki("tams", "endpoint", "process", str(query), "--dir", str(where))
    assert run.returncode == 1 and "incorrectTarget (23)" in run.stdout, run
    query = tmp_path / "q2.der"
    mpki("tams", "build", "status-query", "--out", str(query), check=True)
    run = mpki("tams", "endpoint", "process", str(query), "--dir", str(where))
    assert run.returncode == 0 and "answered TAMPStatusQuery seq 2" in run.stdout, run
    assert _show(mpki, "--dir", str(where))["sequence_numbers"][0]["seq_num"] == 2


def test_community_update_and_sequence_adjust(mpki, env: dict[str, str], settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = Path(env["MPKI_HOME"])
    mpki("init", "--dev", check=True)
    mpki("ca", "export", "smki-root", "-o", str(tmp_path / "smki-root.pem"), check=True)
    root = x509.load_pem_x509_certificate((tmp_path / "smki-root.pem").read_bytes())
    mpki("tams", "endpoint", "init", check=True)
    north, south = "1.3.6.1.4.1.99999.1.1", "1.3.6.1.4.1.99999.1.2"

    # Join two communities: accepted, shown, checked by openssl and by the signer's certificate.
    join = tmp_path / "join.der"
    run = mpki("tams", "build", "community-update", "--add", north, "--add", south, "--out", str(join), check=True)
    assert "TAMPCommunityUpdate seq 1 signed by smki-root" in run.stdout and f"add community {south}" in run.stdout
    assert "eContentType: undefined (2.16.840.1.101.2.1.2.77.7)" in _openssl_print(join)
    _openssl_verify(join, tmp_path / "smki-root.pem")
    message, _ = parse_verified(join.read_bytes(), root.public_key())  # type: ignore[arg-type]
    assert isinstance(message, CommunityUpdate) and message.add == (north, south) and message.remove is None
    run = mpki("tams", "endpoint", "process", str(join))
    assert run.returncode == 0, run
    assert run.stdout.startswith("accepted TAMPCommunityUpdate seq 1: TAMPCommunityUpdateConfirm success"), run
    answer, _ = parse_verified((tmp_path / "join.answer.der").read_bytes(), _store_key(home))
    assert isinstance(answer, CommunityUpdateConfirm) and answer.communities == (north, south)
    assert _show(mpki)["communities"] == [north, south]

    # The same file again is a replay; nothing changes.
    before = (home / "tams/endpoint/store.json").read_bytes()
    run = mpki("tams", "endpoint", "process", str(join), "--out", str(tmp_path / "replay.der"))
    assert run.returncode == 1 and "refused TAMPCommunityUpdate seq 1: seqNumFailure (21)" in run.stdout, run
    assert (home / "tams/endpoint/store.json").read_bytes() == before

    # A message for one of its communities now reaches the store; leaving a community it is not in fails
    # the whole update (exit 1), and leaving one it is in works.
    query = tmp_path / "query.der"
    mpki("tams", "build", "status-query", "--target", f"community:{south}", "--out", str(query), check=True)
    mpki("tams", "endpoint", "process", str(query), check=True)
    leave = tmp_path / "leave.der"
    mpki(
        "tams", "build", "community-update", "--remove", "1.3.6.1.4.1.99999.1.3", "--remove", north,
        "--out", str(leave), check=True,
    )  # fmt: skip
    run = mpki("tams", "endpoint", "process", str(leave))
    assert run.returncode == 1 and "refused TAMPCommunityUpdate seq 3: TAMPCommunityUpdateConfirm" in run.stdout, run
    assert "communityUpdateFailed" in run.stdout and _show(mpki)["communities"] == [north, south]
    leave2 = tmp_path / "leave2.der"
    mpki("tams", "build", "community-update", "--remove", north, "--out", str(leave2), check=True)
    mpki("tams", "endpoint", "process", str(leave2), check=True)
    assert _show(mpki)["communities"] == [south]

    # A status query signed now but delivered late...
    late = tmp_path / "late.der"
    run = mpki("tams", "build", "status-query", "--out", str(late), check=True)
    assert "seq 5 " in run.stdout
    # ...is refused once a SequenceNumberAdjust has told the store the signer's current number.
    adjust = tmp_path / "adjust.der"
    run = mpki("tams", "build", "seq-adjust", "--out", str(adjust), check=True)
    assert "SequenceNumberAdjust seq 6 signed by smki-root" in run.stdout, run
    assert "eContentType: undefined (2.16.840.1.101.2.1.2.77.10)" in _openssl_print(adjust)
    _openssl_verify(adjust, tmp_path / "smki-root.pem")
    message, _ = parse_verified(adjust.read_bytes(), root.public_key())  # type: ignore[arg-type]
    assert isinstance(message, SequenceNumberAdjust) and message.msg_ref.seq_num == 6
    run = mpki("tams", "endpoint", "process", str(adjust))
    assert run.returncode == 0, run
    assert run.stdout.startswith("accepted SequenceNumberAdjust seq 6: SequenceNumberAdjustConfirm success"), run
    answer, _ = parse_verified((tmp_path / "adjust.answer.der").read_bytes(), _store_key(home))
    assert isinstance(answer, SequenceNumberAdjustConfirm) and answer.status == StatusCode.success
    assert _show(mpki)["sequence_numbers"][0]["seq_num"] == 6
    run = mpki("tams", "endpoint", "process", str(late))
    assert run.returncode == 1 and "refused TAMPStatusQuery seq 5: seqNumFailure (21)" in run.stdout, run
    run = mpki("tams", "endpoint", "process", str(adjust), "--out", str(tmp_path / "again.der"))
    assert run.returncode == 1 and "refused SequenceNumberAdjust seq 6: seqNumFailure (21)" in run.stdout, run

    # --above moves the counter past a number a store reports (say, after a restore lost the counter).
    skip = tmp_path / "skip.der"
    run = mpki("tams", "build", "seq-adjust", "--above", "100", "--out", str(skip), "--target", "all", check=True)
    assert "SequenceNumberAdjust seq 101 " in run.stdout
    run = mpki("tams", "build", "seq-adjust", "--above", "50", "--out", str(tmp_path / "adjust2.der"), check=True)
    assert "SequenceNumberAdjust seq 102 " in run.stdout  # never lowered
    mpki("tams", "endpoint", "process", str(tmp_path / "adjust2.der"), check=True)
    run = mpki("tams", "endpoint", "process", str(skip))
    assert run.returncode == 1 and "seqNumFailure (21)" in run.stdout, run

    assert _counters(settings) == {"smki-root": 102}
    listing = json.loads(mpki("tams", "sequence-numbers", "--json", check=True).stdout)
    root_key_id = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    assert listing == [{"ca": "smki-root", "key_id": root_key_id, "last": 102}]
    assert f"smki-root (key id {root_key_id}): 102" in mpki("tams", "sequence-numbers", check=True).stdout
    assert _audit_actions(mpki).count("tams.message.signed") == 8


def test_new_build_commands_refuse_bad_input(mpki, env: dict[str, str], settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    out = tmp_path / "out.der"
    out.write_bytes(b"keep")
    audit = _audit_actions(mpki)
    community = ("tams", "build", "community-update")
    adjust = ("tams", "build", "seq-adjust")
    fresh = str(tmp_path / "fresh.der")
    cases: list[tuple[tuple[str, ...], str]] = [
        ((*community, "--out", fresh), "at least one --add OID or --remove OID"),
        ((*community, "--add", "north", "--out", fresh), "--add 'north' is not an object identifier"),
        ((*community, "--remove", "1.2.x", "--out", fresh), "--remove '1.2.x' is not an object identifier"),
        ((*community, "--add", "1.2.3", "--remove", "1.2.3", "--out", fresh), "1.2.3 is both added and removed"),
        ((*community, "--add", "1.2.3", "--target", "uri:x", "--out", fresh), "neither 'all' nor"),
        ((*community, "--add", "1.2.3", "--signer", "no-such-ca", "--out", fresh), "no CA named 'no-such-ca'"),
        ((*community, "--add", "1.2.3", "--out", str(tmp_path)), "is a directory"),
        ((*community, "--add", "1.2.3", "--out", str(out)), "already exists"),
        ((*adjust, "--out", str(out)), "already exists"),
        ((*adjust, "--out", str(tmp_path / "no" / "dir.der")), "does not exist"),
        ((*adjust, "--above", "-1", "--out", fresh), "--above takes a sequence number, not -1"),
        ((*adjust, "--target", "community:", "--out", fresh), "neither 'all' nor"),
        ((*adjust, "--signer", "no-such-ca", "--out", fresh), "no CA named 'no-such-ca'"),
    ]
    for args, expected in cases:
        run = mpki(*args)
        assert run.returncode == 1, (args, run)
        assert expected in _error_line(run.stderr), (args, run.stderr)
        assert run.stdout == "", (args, run.stdout)
    assert out.read_bytes() == b"keep" and not Path(fresh).exists()
    assert _counters(settings) == {}
    assert _audit_actions(mpki) == audit


def test_old_counter_file_is_taken_over(mpki, env: dict[str, str], settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = Path(env["MPKI_HOME"])
    mpki("init", "--dev", check=True)
    mpki("ca", "export", "smki-root", "-o", str(tmp_path / "smki-root.pem"), check=True)
    root = x509.load_pem_x509_certificate((tmp_path / "smki-root.pem").read_bytes())
    key_id = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    legacy = home / "tams/sequence-numbers.json"
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text(json.dumps({"format": 1, "signers": {key_id: {"ca": "smki-root", "last": 41}}}))
    run = mpki("tams", "build", "seq-adjust", "--out", str(tmp_path / "adjust.der"), check=True)
    assert "SequenceNumberAdjust seq 42 " in run.stdout  # after the file's 41, never one it gave out
    assert not legacy.exists() and (home / "tams/sequence-numbers.json.imported").exists()
    assert _counters(settings) == {"smki-root": 42}
