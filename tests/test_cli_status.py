"""Certificate status through the real `mpki` command: revoke, release-hold, crl generate|show, status maintain,
and CA revocation under dual control; bad input leaves the database as it was."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import create_engine, text

from tests.csr_factory import org_csr, random_eui64, tls_server_csr

OPERATOR = "service-admin:operator@localhost"


def _error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _openssl_crl(path: Path, *, der: bool) -> str:
    form = ["-inform", "DER"] if der else []
    done = subprocess.run(
        ["openssl", "crl", *form, "-in", str(path), "-noout", "-text"], capture_output=True, text=True, check=True
    )
    return done.stdout


def _audit(mpki) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    run = mpki("audit", "export", check=True)
    return [json.loads(line) for line in run.stdout.splitlines()]


def _state(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    """Everything a status command may write: audit events, CRLs, revocations, proposals, responders."""
    queries = {
        "audit": "SELECT count(*) FROM audit_events",
        "crls": "SELECT count(*), coalesce(max(number), 0) FROM crls",
        "revoked": "SELECT count(*) FROM certificates WHERE revoked_at IS NOT NULL",
        "released": "SELECT count(*) FROM certificates WHERE hold_released_at IS NOT NULL",
        "proposals": "SELECT status, count(*) FROM ca_revocations GROUP BY status ORDER BY status",
        "cas": "SELECT name, status FROM cas ORDER BY name",
        "responders": "SELECT count(*) FROM ocsp_responders",
    }
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {key: [tuple(row) for row in connection.execute(text(sql)).all()] for key, sql in queries.items()}
    finally:
        engine.dispose()


def _issue(mpki, tmp_path: Path, profile: str, csr: bytes) -> str:  # type: ignore[no-untyped-def]
    """Issue through `mpki issue`; returns the serial as mpki prints it."""
    number = len(list(tmp_path.glob("*.csr")))
    csr_path = tmp_path / f"{profile}-{number}.csr"
    csr_path.write_bytes(csr)
    run = mpki("issue", "-p", profile, "--csr", str(csr_path), "-o", str(tmp_path / f"{profile}-{number}.pem"))
    assert run.returncode == 0, run.stderr
    found = re.search(r"serial ([0-9a-f]+) by", run.stdout)
    assert found, run.stdout
    return found.group(1)


def _org_cert(mpki, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    return _issue(mpki, tmp_path, "smki-org", org_csr(random_eui64(), pem=True))


def _tls_cert(mpki, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    return _issue(mpki, tmp_path, "tls-server", tls_server_csr(pem=True))


def _latest(mpki, ca: str, *extra: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    run = mpki("crl", "show", ca, "--json", "--entries", "1000", *extra, check=True)
    found: dict[str, Any] = json.loads(run.stdout)
    return found


def test_revoke_publishes_crl_and_audits(mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    key, csr = tmp_path / "k.pem", tmp_path / "c.csr"
    mpki(
        "csr", "org", "--eui64", "0011223344556677", "--role", "supplier", "--key-out", str(key), "-o", str(csr),
        check=True,
    )  # fmt: skip
    run = mpki("issue", "-p", "smki-org", "--csr", str(csr), "-o", str(tmp_path / "cert.pem"), check=True)
    serial = run.stdout.split("serial ")[1].split()[0]
    openssl_serial = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes()).serial_number

    # The dashed spelling of the reason, and the serial as openssl prints it (upper case, colons accepted).
    colon_serial = ":".join(re.findall("..", f"{openssl_serial:040X}"))
    run = mpki("revoke", colon_serial, "--reason", "key-compromise")
    assert run.returncode == 0, run.stderr
    assert f"revoked {serial} reason keyCompromise at " in run.stdout
    assert f"by {OPERATOR}" in run.stdout
    assert re.search(r"re-published: smki-org-ca#\d+\(full\), smki-org-ca#\d+\(delta\)", run.stdout), run.stdout

    # The full CRL lists it: mpki's own view, then openssl on the DER and the PEM files.
    crl = _latest(mpki, "smki-org-ca")
    assert crl["label"] == "CRL" and crl["kind"] == "full" and crl["entries"] == 1
    assert crl["listed"] == [
        {"serial": serial, "revoked_at": crl["listed"][0]["revoked_at"], "reason": "keyCompromise"}
    ]
    run = mpki("crl", "show", "smki-org-ca", "--out", str(tmp_path / "crl.der"), "--der", check=True)
    assert f"smki-org-ca: CRL #{crl['number']}, 1 entry, next update " in run.stdout
    assert serial in run.stdout and "keyCompromise" in run.stdout
    listing = _openssl_crl(tmp_path / "crl.der", der=True)
    # openssl prints whole octets: an odd number of hex digits gets a leading zero.
    serial_hex = f"{openssl_serial:X}"
    assert f"SERIAL NUMBER: {serial_hex.zfill(len(serial_hex) + len(serial_hex) % 2)}" in listing.upper()
    assert "Key Compromise" in listing
    assert f"X509v3 CRL Number: \n                {crl['number']}" in listing
    mpki("crl", "show", "smki-org-ca", "-o", str(tmp_path / "crl.pem"), check=True)
    assert (tmp_path / "crl.pem").read_text().startswith("-----BEGIN X509 CRL-----")
    assert "Key Compromise" in _openssl_crl(tmp_path / "crl.pem", der=False)
    # `--out -` writes only the CRL, for a pipe.
    piped = mpki("crl", "show", "smki-org-ca", "--out", "-", check=True)
    assert piped.stdout == (tmp_path / "crl.pem").read_text()
    delta = _latest(mpki, "smki-org-ca", "--delta")
    assert delta["label"] == "delta CRL" and delta["base_number"] == crl["number"]
    assert [entry["serial"] for entry in delta["listed"]] == [serial]

    # A second certificate revoked by a registered RA agent, by the reason's number, as JSON.
    mpki("user", "create", "agent@example.test", "--role", "ra-agent", check=True)
    second = _org_cert(mpki, tmp_path)
    run = mpki("revoke", second, "--reason", "4", "--by", "agent@example.test", "--ca", "smki-org-ca", "--json")
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout)
    assert outcome["serials"] == [second] and outcome["reason"] == "superseded"
    assert outcome["actor"] == "ra-agent:agent@example.test" and len(outcome["crls_published"]) == 2
    assert outcome["warnings"] == []

    revoked = [event for event in _audit(mpki) if event["action"] == "certificate.revoked"]
    assert [(e["serial"], e["actor"], e["details"]["reason"]) for e in revoked] == [
        (serial, OPERATOR, "keyCompromise"),
        (second, "ra-agent:agent@example.test", "superseded"),
    ]
    for event in revoked:
        assert event["ca"] == "smki-org-ca" and event["at"].startswith(event["details"]["revoked_at"][:19])
    mpki("audit", "verify", check=True)


def test_hold_and_release_on_tls(mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    serial = _tls_cert(mpki, tmp_path)
    run = mpki("revoke", serial, "--reason", "certificateHold")
    assert run.returncode == 0, run.stderr
    assert f"revoked {serial} reason certificateHold" in run.stdout
    mpki("crl", "show", "tls-issuing", "--der", "-o", str(tmp_path / "hold.der"), check=True)
    assert "Certificate Hold" in _openssl_crl(tmp_path / "hold.der", der=True)

    run = mpki("release-hold", serial)
    assert run.returncode == 0, run.stderr
    assert f"released hold on {serial} reason removeFromCRL" in run.stdout
    full = _latest(mpki, "tls-issuing")
    assert full["entries"] == 0 and full["listed"] == []
    mpki("crl", "show", "tls-issuing", "--delta", "--der", "-o", str(tmp_path / "delta.der"), check=True)
    listing = _openssl_crl(tmp_path / "delta.der", der=True)
    assert "Remove From CRL" in listing and "Delta CRL Indicator" in listing
    actions = [(e["action"], e["serial"]) for e in _audit(mpki) if e["action"].startswith("certificate.")]
    assert actions[-2:] == [("certificate.revoked", serial), ("certificate.hold_released", serial)]

    # Good again, it can be revoked for good.
    run = mpki("revoke", serial, "--reason", "cessationOfOperation", check=True)
    assert "reason cessationOfOperation" in run.stdout


def test_crl_generate_show_and_maintain(mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    serials = [_org_cert(mpki, tmp_path) for _ in range(3)]
    for serial in serials:
        mpki("revoke", serial, "--reason", "superseded", check=True)

    run = mpki("crl", "generate", "--json")
    assert run.returncode == 0, run.stderr
    published = {crl["ca"]: crl for crl in json.loads(run.stdout)}
    assert set(published) == {"smki-root", "smki-org-ca", "smki-device-ca", "tls-root", "tls-issuing"}
    assert {published[name]["label"] for name in ("smki-root", "tls-root")} == {"ARL"}
    assert published["smki-org-ca"]["label"] == "CRL" and published["smki-org-ca"]["entries"] == 3
    assert all(crl["kind"] == "full" for crl in published.values())

    run = mpki("crl", "generate", "smki-org-ca")
    assert run.returncode == 0, run.stderr
    number = published["smki-org-ca"]["number"] + 1
    assert re.fullmatch(rf"smki-org-ca: CRL #{number}, 3 entries, next update \S+\n", run.stdout), run.stdout
    run = mpki("crl", "generate", "smki-root", "--delta", check=True)
    assert f"smki-root: delta ARL #{published['smki-root']['number'] + 1} (base #" in run.stdout

    run = mpki("crl", "show", "smki-org-ca", "--entries", "2", check=True)
    assert f"smki-org-ca: CRL #{number}, 3 entries" in run.stdout
    assert sum(serial in run.stdout for serial in serials) == 2
    assert "(1 more entry not listed" in run.stdout
    assert "this update: " in run.stdout and "next update: " in run.stdout
    run = mpki("crl", "show", "smki-root", check=True)
    assert "smki-root: ARL #" in run.stdout

    # One upkeep round: responder certificates for every CA, the CRLs due, the OCSP responses.
    run = mpki("status", "maintain", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["responses_signed"] >= len(serials)
    assert {(crl["ca"], crl["kind"]) for crl in report["crls_published"]} >= {("smki-device-ca", "delta")}
    # Nothing is due straight after.
    run = mpki("status", "maintain", check=True)
    assert "OCSP responder certificates issued: none" in run.stdout
    assert "CRLs published: 0" in run.stdout and "OCSP responses pre-signed: 0" in run.stdout
    published_events = [e for e in _audit(mpki) if e["action"] == "crl.published"]
    assert all(e["actor"] == OPERATOR for e in published_events[-len(report["crls_published"]) :])


def test_ca_revocation_under_dual_control(mpki, tmp_path: Path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    for person in ("alice", "bob"):
        mpki("user", "create", f"{person}@example.test", "--role", "service-admin", check=True)
    before = _state(database_url)

    run = mpki("ca", "revoke", "tls-issuing", "--reason", "cACompromise", "--by", "alice@example.test")
    assert run.returncode == 0, run.stderr
    found = re.search(r"proposal (\d+): revoke CA tls-issuing reason cACompromise, pending", run.stdout)
    assert found, run.stdout
    proposal = found.group(1)
    assert f"mpki ca revoke-approve {proposal} --by " in run.stdout
    after = _state(database_url)
    assert after["cas"] == before["cas"] and after["crls"] == before["crls"]  # nothing revoked yet

    run = mpki("ca", "revocations", "--json", check=True)
    [pending] = json.loads(run.stdout)
    assert (pending["id"], pending["ca"], pending["requested_by"]) == (
        int(proposal),
        "tls-issuing",
        "service-admin:alice@example.test",
    )
    run = mpki("ca", "revocations", check=True)
    assert "tls-issuing" in run.stdout and "cACompromise" in run.stdout

    # Alice cannot approve her own proposal; Bob can.
    run = mpki("ca", "revoke-approve", proposal, "--by", "alice@example.test")
    assert run.returncode == 1
    assert "dual control" in _error_line(run.stderr)
    assert _state(database_url) == after
    run = mpki("ca", "revoke-approve", proposal, "--by", "bob@example.test")
    assert run.returncode == 0, run.stderr
    assert "revoked CA tls-issuing, serial " in run.stdout and "reason cACompromise" in run.stdout
    assert re.search(r"re-published: tls-root#\d+\(full\), tls-root#\d+\(delta\)", run.stdout), run.stdout
    assert ("tls-issuing", "revoked") in _state(database_url)["cas"]
    assert mpki("ca", "revocations", check=True).stdout.startswith("no CA revocation is waiting")

    # The root's ARL lists it.
    arl = _latest(mpki, "tls-root")
    assert arl["label"] == "ARL" and [entry["reason"] for entry in arl["listed"]] == ["cACompromise"]
    mpki("crl", "show", "tls-root", "--der", "-o", str(tmp_path / "arl.der"), check=True)
    listing = _openssl_crl(tmp_path / "arl.der", der=True)
    assert "Only CA Certificates" in listing and "CA Compromise" in listing

    events = _audit(mpki)
    [proposed] = [e for e in events if e["action"] == "ca.revocation_proposed"]
    [revoked] = [e for e in events if e["action"] == "ca.revoked"]
    assert proposed["actor"] == "service-admin:alice@example.test" and proposed["ca"] == "tls-issuing"
    assert revoked["actor"] == "service-admin:bob@example.test"
    assert revoked["details"]["proposed_by"] == "service-admin:alice@example.test"
    assert revoked["details"]["reason"] == "cACompromise" and revoked["details"]["revoked_at"]

    # A revoked CA publishes no more; `crl generate` for all skips it.
    run = mpki("crl", "generate", "tls-issuing")
    assert run.returncode == 1 and "is revoked" in _error_line(run.stderr)
    run = mpki("crl", "generate", "--json", check=True)
    assert "tls-issuing" not in {crl["ca"] for crl in json.loads(run.stdout)}

    # A proposal withdrawn by anyone with the role; then it cannot be approved.
    run = mpki("ca", "revoke", "smki-device-ca", "-r", "superseded", "--by", "bob@example.test", check=True)
    second = re.search(r"proposal (\d+):", run.stdout).group(1)  # type: ignore[union-attr]
    run = mpki("ca", "revoke-withdraw", second, "--by", "alice@example.test", check=True)
    assert f"proposal {second}: revoke CA smki-device-ca reason superseded, withdrawn" in run.stdout
    run = mpki("ca", "revoke-approve", second, "--by", "alice@example.test")
    assert run.returncode == 1 and f"CA revocation {second} is withdrawn, not pending" in _error_line(run.stderr)
    assert [e["action"] for e in _audit(mpki)][-1] == "ca.revocation_withdrawn"
    assert ("smki-device-ca", "active") in _state(database_url)["cas"]


def _refused(mpki, database_url: str, cases: list[tuple[tuple[str, ...], str]]) -> None:  # type: ignore[no-untyped-def]
    """Each command exits 1 with one error line containing the message, and the database is as it was."""
    before = _state(database_url)
    for args, message in cases:
        run = mpki(*args)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert message in _error_line(run.stderr), (args, run.stderr)
        assert _state(database_url) == before, args


def test_bad_certificate_revocations_write_nothing(mpki, tmp_path: Path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    mpki("org", "create", "acme", "--eui64", "00000000000000a1", "--roles", "supplier", check=True)
    mpki("user", "create", "sub@example.test", "--role", "authorised-subscriber", "--org", "acme", check=True)
    smki = _org_cert(mpki, tmp_path)
    tls = _tls_cert(mpki, tmp_path)
    gone = _org_cert(mpki, tmp_path)
    mpki("revoke", gone, "--reason", "keyCompromise", check=True)
    _refused(
        mpki,
        database_url,
        [
            (("revoke", "0abc123", "--reason", "keyCompromise"), "no certificate with serial abc123"),
            (("revoke", "not-hex", "--reason", "keyCompromise"), "is not hexadecimal"),
            (("revoke", smki, "--reason", "compromised"), "unknown revocation reason 'compromised'; use one of"),
            (("revoke", smki, "--reason", "cACompromise"), "cACompromise is not a reason for an end-entity"),
            (("revoke", smki, "--reason", "removeFromCRL"), "removeFromCRL is not a reason for an end-entity"),
            (("revoke", smki, "--reason", "certificateHold"), "profile smki-org does not allow certificateHold"),
            (("revoke", gone, "--reason", "superseded"), f"certificate {gone} is already revoked"),
            (("revoke", smki, "-r", "superseded", "--ca", "no-such-ca"), "no CA named 'no-such-ca'"),
            (("revoke", smki, "-r", "superseded", "--ca", "tls-issuing"), f"no certificate with serial {smki}"),
            (("revoke", smki, "-r", "superseded", "--by", "nobody@example.test"), "no person 'nobody@example.test'"),
            (("revoke", smki, "-r", "superseded", "--by", ""), "no person ''"),
            (("revoke", smki, "-r", "superseded", "--by", "sub@example.test"), "only for its own organisation"),
            (("release-hold", tls), f"certificate {tls} is not on hold"),
            (("release-hold", "ffff"), "no certificate with serial ffff"),
        ],
    )
    # Usage errors (typer's exit 2): --reason is required.
    before = _state(database_url)
    run = mpki("revoke", smki)
    assert run.returncode == 2 and "--reason" in run.stderr and "Traceback" not in run.stderr
    assert _state(database_url) == before


def test_bad_ca_revocations_and_crl_commands_write_nothing(mpki, tmp_path: Path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    for email, role in (("alice", "service-admin"), ("bob", "service-admin"), ("agent", "ra-agent")):
        mpki("user", "create", f"{email}@example.test", "--role", role, check=True)
    mpki("crl", "generate", check=True)
    run = mpki("ca", "revoke", "smki-org-ca", "--reason", "superseded", "--by", "alice@example.test", check=True)
    proposal = re.search(r"proposal (\d+):", run.stdout).group(1)  # type: ignore[union-attr]
    missing_dir = str(tmp_path / "no-such-dir" / "crl.pem")
    ca_revoke = ("ca", "revoke", "tls-issuing", "--reason")
    _refused(
        mpki,
        database_url,
        [
            (("crl", "generate", "no-such-ca"), "no CA named 'no-such-ca'"),
            (("crl", "show", "no-such-ca"), "no CA named 'no-such-ca'"),
            (("crl", "show", "smki-org-ca", "-o", missing_dir), "no such directory"),
            (("ca", "revoke", "smki-root", "--reason", "keyCompromise", "--by", "alice@example.test"), "is a root"),
            ((*ca_revoke, "certificateHold", "--by", "alice@example.test"), "certificateHold is not a reason for a CA"),
            ((*ca_revoke, "keyCompromise", "--by", "agent@example.test"), "ra-agent may not"),
            ((*ca_revoke, "keyCompromise", "--by", "nobody@example.test"), "no person 'nobody@example.test'"),
            (("ca", "revoke", "no-such-ca", "--reason", "keyCompromise", "--by", "bob@example.test"), "no CA named"),
            (("ca", "revoke", "smki-org-ca", "-r", "keyCompromise", "--by", "bob@example.test"), "already waiting"),
            (("ca", "revoke-approve", proposal, "--by", "alice@example.test"), "dual control"),
            (("ca", "revoke-approve", proposal, "--by", "agent@example.test"), "ra-agent may not"),
            (("ca", "revoke-approve", "999", "--by", "bob@example.test"), "no CA revocation proposal 999"),
            (("ca", "revoke-withdraw", proposal, "--by", "agent@example.test"), "ra-agent may not"),
        ],
    )
    assert not (tmp_path / "no-such-dir").exists()
    # Usage error: dual control needs --by.
    before = _state(database_url)
    run = mpki(*ca_revoke, "keyCompromise")
    assert run.returncode == 2 and "--by" in run.stderr and "Traceback" not in run.stderr
    assert _state(database_url) == before
    # The proposal is still there, and still pending.
    pending = json.loads(mpki("ca", "revocations", "--json", check=True).stdout)
    assert [(view["id"], view["status"]) for view in pending] == [(int(proposal), "pending")]


def test_inactive_keystore_revokes_and_warns(mpki, tmp_path: Path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    """With the CA keys deactivated the revocation still stands; the CLI says the CRL is not re-published yet,
    and the commands that must sign refuse."""
    mpki("init", "--dev", check=True)
    serial = _org_cert(mpki, tmp_path)
    mpki("crl", "generate", "smki-org-ca", check=True)
    mpki("keys", "deactivate", check=True)
    number = _latest(mpki, "smki-org-ca")["number"]

    run = mpki("revoke", serial, "--reason", "superseded")
    assert run.returncode == 0, run.stderr
    assert "re-published: nothing" in run.stdout
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "CRL for smki-org-ca not re-published yet" in warnings[0], run.stderr
    assert "the keystore is not active" in warnings[0]
    assert run.stderr.count("not re-published yet") == 1  # not repeated by the library's log
    assert _latest(mpki, "smki-org-ca")["number"] == number

    before = _state(database_url)
    for args in (("crl", "generate", "smki-org-ca"), ("status", "maintain")):
        run = mpki(*args)
        assert run.returncode == 1 and "keystore is not active" in _error_line(run.stderr), args
        assert _state(database_url) == before, args  # refused up front: not even a cRLNumber reserved
