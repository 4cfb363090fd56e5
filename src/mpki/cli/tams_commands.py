"""`mpki tams …`: build signed TAMP messages (RFC 5934) with this installation's CA keys, and run the
reference trust-anchor store a device would hold.

`build update|status-query|community-update|seq-adjust` sign with a CA of this installation (default the
apex: the SMKI root) through the keystore, numbered by the per-signer counter in the database
(`tams.sequence`, listed by `sequence-numbers`), and record an audit event; they never overwrite a file.
`endpoint init|process|show` drive a `TrustAnchorStore` kept in a directory (default
`MPKI_HOME/tams/endpoint`): its JSON state and its own P-256 answer-signing key. `process` exits 1 whenever
the store refuses a message, so that a script (or a recovery drill) can tell.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mpki.asn1.der import encode_oid, read_tlv
from mpki.asn1.tamp import (
    AddAnchor,
    AllModules,
    ApexUpdateConfirm,
    CommunityTarget,
    CommunityUpdate,
    CommunityUpdateConfirm,
    Message,
    MsgRef,
    RemoveAnchor,
    SequenceNumberAdjust,
    SequenceNumberAdjustConfirm,
    StatusCode,
    StatusQuery,
    StatusResponse,
    TampError,
    TampUpdate,
    TampUpdateConfirm,
    Target,
    TrustAnchor,
    Update,
)
from mpki.ca import CertificationAuthority
from mpki.ca.model import CaView
from mpki.cli.context import authority, clean_errors, console, settings
from mpki.domain import InvalidRequest, KeyStoreError, NotFound
from mpki.keys import INACTIVE_MESSAGE
from mpki.keys.purposes import Purpose
from mpki.ra import OPERATOR
from mpki.recovery.roots import apex_name
from mpki.tams import TampRefused, TrustAnchorStore, parse, public_key_id
from mpki.tams.outbox import Signed, Signer, message_name
from mpki.tams.outbox import sign_numbered as sign_with
from mpki.tams.sequence import LEGACY_FILE, SequenceNumbers

app = typer.Typer(
    help="Trust Anchor Management Protocol (RFC 5934): build signed messages; run the reference trust-anchor store.",
    no_args_is_help=True,
)
build_app = typer.Typer(help="Build TAMP messages signed by a CA of this installation.", no_args_is_help=True)
endpoint_app = typer.Typer(help="The reference trust-anchor store: init, process, show.", no_args_is_help=True)
app.add_typer(build_app, name="build")
app.add_typer(endpoint_app, name="endpoint")

STATE_FILE = "store.json"
KEY_FILE = "endpoint-key.pem"


OUT_OPTION = typer.Option(..., "--out", "-o", help="File to write the signed message to (DER).")
SIGNER_OPTION = typer.Option(
    None, "--signer", help="CA of this installation whose key signs; default the apex (the SMKI root)."
)
TARGET_OPTION = typer.Option(
    "all", "--target", help="Which stores the message is for: 'all', or 'community:OID[,OID…]'."
)
DIR_OPTION = typer.Option(None, "--dir", help="The store's directory; default MPKI_HOME/tams/endpoint.")


def status_text(status: StatusCode) -> str:
    return f"{status.name} ({int(status)})"


# ----- reading input -------------------------------------------------------------------------------


def read_file(path: Path, what: str) -> bytes:
    """The file's bytes, or a one-line InvalidRequest (missing, a directory, unreadable)."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise InvalidRequest(f"cannot read {what} {path}: {error.strerror or error}") from None


def read_certificate(path: Path) -> x509.Certificate:
    """A certificate from a PEM or DER file."""
    data = read_file(path, "certificate")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise InvalidRequest(f"{path} is not a certificate (PEM or DER)") from None


def certificate_anchor(path: Path) -> TrustAnchor:
    return TrustAnchor.from_certificate(read_certificate(path).public_bytes(serialization.Encoding.DER))


def read_message(path: Path) -> bytes:
    """A message file must be one DER SEQUENCE (a ContentInfo); anything else is refused before the store
    sees it. Whether it is a good TAMP message is for the store to answer."""
    data = read_file(path, "message")
    try:
        tag, _, end = read_tlv(data, 0, f"message {path}")
    except InvalidRequest as error:
        raise InvalidRequest(f"{path} is not a DER message: {error}") from None
    if tag != 0x30 or end != len(data):
        raise InvalidRequest(f"{path} is not a DER message (one SEQUENCE, nothing after it)")
    return data


def parse_target(text: str) -> Target:
    if text == "all":
        return AllModules()
    kind, _, rest = text.partition(":")
    if kind == "community" and rest:
        communities = tuple(c.strip() for c in rest.split(",") if c.strip())
        for community in communities:
            encode_oid(community)  # refuses what is not an OID
        if communities:
            return CommunityTarget(communities)
    raise InvalidRequest(f"target {text!r} is neither 'all' nor 'community:OID[,OID…]'")


def check_out(path: Path) -> None:
    """Refuse an output path that cannot be written, before anything (a sequence number) is spent on it."""
    if path.is_dir():
        raise InvalidRequest(f"output {path} is a directory")
    if not path.parent.is_dir():
        raise InvalidRequest(f"output directory {path.parent} does not exist")


# ----- signing ---------------------------------------------------------------------------------------


def apex_ca(installation: CertificationAuthority) -> CaView:
    """The apex of this installation, as the recoveries know it: the contingency vault's, else the newest
    active SMKI root."""
    name = apex_name(settings(), installation)
    if name is None:
        raise NotFound("this installation has no active SMKI root CA (run `mpki init --dev` or a ceremony)")
    return installation.get_ca(name)


def signing_ca(installation: CertificationAuthority, name: str | None) -> CaView:
    view = apex_ca(installation) if name is None else installation.get_ca(name)
    if view.status != "active":
        raise InvalidRequest(f"CA {view.name} is {view.status}: it signs no TAMP message")
    if not installation.keystore.is_active():
        raise KeyStoreError(INACTIVE_MESSAGE)
    return view


def sequence_numbers(installation: CertificationAuthority) -> SequenceNumbers:
    """The installation's counters, in its database (taking over an old `sequence-numbers.json` once)."""
    return SequenceNumbers(installation.database, settings().home / LEGACY_FILE)


def sign_numbered(signer: str | None, out: Path, make: Callable[[int], Message], at_least: int | None = None) -> Signed:
    """Sign `make(next sequence number)` with the CA's key through `tams.outbox`. Every check that can
    refuse (the output path, the signer, its key) runs before the number is reserved."""
    check_out(out)
    installation = authority()
    view = signing_ca(installation, signer)
    anchor = TrustAnchor.from_certificate(view.certificate_der)
    # Fails now if the key is missing, not after reserving a number.
    key = installation.keystore.signing_key(view.key_id, Purpose.TAMP)
    # The signer is named by its certificate's subjectKeyIdentifier: that is how a store finds the anchor.
    identity = Signer(view.name, key, anchor.key_id, anchor, view.name)
    numbers = sequence_numbers(installation)
    return sign_with(installation.database, numbers, identity, make, out, actor=OPERATOR.actor, at_least=at_least)


def report_signed(message: Message, signed: Signed, out: Path) -> None:
    console.print(
        f"{message_name(message.content_type)} seq {signed.seq_num} signed by {signed.signer} "
        f"(key id {signed.key_id.hex()}) -> {out}"
    )


@build_app.command("update")
@clean_errors
def build_update(
    add: list[Path] = typer.Option([], "--add", help="Certificate (PEM or DER) to add as a trust anchor."),
    remove: list[Path] = typer.Option([], "--remove", help="Certificate whose key to remove as a trust anchor."),
    out: Path = OUT_OPTION,
    signer: str | None = SIGNER_OPTION,
    target: str = TARGET_OPTION,
) -> None:
    """A TAMPUpdate adding and/or removing trust anchors, signed by the apex (or --signer)."""
    if not add and not remove:
        raise InvalidRequest("give at least one --add CERT or --remove CERT")
    msg_target = parse_target(target)
    removed = [certificate_anchor(path) for path in remove]
    added = [certificate_anchor(path) for path in add]
    updates: list[Update] = [RemoveAnchor(anchor.public_key_info) for anchor in removed]
    updates += [AddAnchor(anchor) for anchor in added]
    update_list = tuple(updates)

    def make(seq_num: int) -> TampUpdate:
        return TampUpdate(MsgRef(msg_target, seq_num), update_list)

    signed = sign_numbered(signer, out, make)
    report_signed(make(signed.seq_num), signed, out)
    for anchor in removed:
        console.print(f"  remove {anchor_subject(anchor)} (key id {anchor.key_id.hex()})")
    for anchor in added:
        console.print(f"  add {anchor_subject(anchor)} (key id {anchor.key_id.hex()})")


@build_app.command("status-query")
@clean_errors
def build_status_query(
    out: Path = OUT_OPTION,
    terse: bool = typer.Option(False, "--terse/--verbose", help="Ask for key ids only, or the full state."),
    signer: str | None = SIGNER_OPTION,
    target: str = TARGET_OPTION,
) -> None:
    """A TAMPStatusQuery, signed by the apex (or --signer): a store answers with what it trusts."""
    msg_target = parse_target(target)

    def make(seq_num: int) -> StatusQuery:
        return StatusQuery(MsgRef(msg_target, seq_num), terse=terse)

    signed = sign_numbered(signer, out, make)
    report_signed(make(signed.seq_num), signed, out)


def parse_communities(values: list[str], option: str) -> tuple[str, ...]:
    """Community identifiers (OIDs) in the order given, each once; anything else is refused."""
    communities = tuple(dict.fromkeys(v.strip() for v in values))
    for community in communities:
        try:
            encode_oid(community)
        except InvalidRequest:
            raise InvalidRequest(f"{option} {community!r} is not an object identifier") from None
    return communities


@build_app.command("community-update")
@clean_errors
def build_community_update(
    add: list[str] = typer.Option([], "--add", help="Community (an OID) the stores join."),
    remove: list[str] = typer.Option([], "--remove", help="Community (an OID) the stores leave."),
    out: Path = OUT_OPTION,
    signer: str | None = SIGNER_OPTION,
    target: str = TARGET_OPTION,
) -> None:
    """A TAMPCommunityUpdate: stores leave the --remove communities, then join the --add ones."""
    if not add and not remove:
        raise InvalidRequest("give at least one --add OID or --remove OID")
    added, removed = parse_communities(add, "--add"), parse_communities(remove, "--remove")
    both = sorted(set(added) & set(removed))
    if both:
        raise InvalidRequest(f"community {both[0]} is both added and removed")
    msg_target = parse_target(target)

    def make(seq_num: int) -> CommunityUpdate:
        return CommunityUpdate(MsgRef(msg_target, seq_num), remove=removed or None, add=added or None)

    signed = sign_numbered(signer, out, make)
    report_signed(make(signed.seq_num), signed, out)
    for community in removed:
        console.print(f"  remove community {community}")
    for community in added:
        console.print(f"  add community {community}")


@build_app.command("seq-adjust")
@clean_errors
def build_seq_adjust(
    out: Path = OUT_OPTION,
    above: int | None = typer.Option(
        None,
        "--above",
        help="First raise the signer's counter to this number (say, the last a store reports it accepted), "
        "so the message carries a larger one.",
    ),
    signer: str | None = SIGNER_OPTION,
    target: str = TARGET_OPTION,
) -> None:
    """A SequenceNumberAdjust: tells stores the signer's current sequence number, so that any message it
    signed earlier and that is still on its way is refused as a replay."""
    if above is not None and above < 0:
        raise InvalidRequest(f"--above takes a sequence number, not {above}")
    msg_target = parse_target(target)

    def make(seq_num: int) -> SequenceNumberAdjust:
        return SequenceNumberAdjust(MsgRef(msg_target, seq_num))

    signed = sign_numbered(signer, out, make, at_least=above)
    report_signed(make(signed.seq_num), signed, out)


@app.command("sequence-numbers")
@clean_errors
def sequence_numbers_show(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text.")) -> None:
    """The last TAMP sequence number this installation gave out for each signer key."""
    counters = sequence_numbers(authority()).all()
    view = [{"ca": c.ca, "key_id": c.key_id.hex(), "last": c.last} for c in counters]
    if as_json:
        print(json.dumps(view, indent=2))
        return
    console.print(f"sequence numbers ({len(view)}):")
    for entry in view:
        console.print(f"  {entry['ca']} (key id {entry['key_id']}): {entry['last']}")


# ----- the reference store ---------------------------------------------------------------------------


def endpoint_dir(directory: Path | None) -> Path:
    return directory if directory is not None else settings().home / "tams" / "endpoint"


def open_store(directory: Path) -> TrustAnchorStore:
    state, key_file = directory / STATE_FILE, directory / KEY_FILE
    if not state.is_file() or not key_file.is_file():
        raise InvalidRequest(f"no trust-anchor store in {directory}: run `mpki tams endpoint init` first")
    try:
        key = serialization.load_pem_private_key(read_file(key_file, "store key"), password=None)
    except ValueError:
        raise InvalidRequest(f"{key_file} is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidRequest(f"{key_file} is not an EC private key")
    return TrustAnchorStore(state, key)


def anchor_subject(anchor: TrustAnchor) -> str:
    """Something a person recognises an anchor by: a certificate's subject, a TrustAnchorInfo's title."""
    if anchor.kind == "certificate":
        try:
            return x509.load_der_x509_certificate(anchor.der).subject.rfc4514_string()
        except ValueError:
            return "(unreadable certificate)"
    if anchor.kind == "taInfo":
        return anchor.title or "(untitled TrustAnchorInfo)"
    return "(TBSCertificate)"


@endpoint_app.command("init")
@clean_errors
def endpoint_init(
    directory: Path | None = DIR_OPTION,
    anchor: list[Path] = typer.Option(
        [], "--anchor", help="Also trust this certificate (PEM or DER) for path validation, e.g. the TLS root."
    ),
) -> None:
    """A new store trusting this installation's apex (its SMKI root), with its own P-256 key to sign answers;
    `--anchor` adds identity trust anchors, which validate certificates but sign no TAMP message."""
    where = endpoint_dir(directory)
    identities = [certificate_anchor(path) for path in anchor]  # a bad file is refused before anything is made
    state, key_file = where / STATE_FILE, where / KEY_FILE
    if state.exists() or key_file.exists():
        raise InvalidRequest(f"a trust-anchor store already exists in {where}")
    if where.exists() and not where.is_dir():
        raise InvalidRequest(f"{where} is not a directory")
    view = apex_ca(authority())
    apex = TrustAnchor.from_certificate(view.certificate_der)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    where.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        TrustAnchorStore.initialise(state, key, apex, management=[(identity, ()) for identity in identities])
    except BaseException:
        key_file.unlink(missing_ok=True)
        raise
    console.print(f"trust-anchor store {where}")
    console.print(f"apex: {anchor_subject(apex)} ({view.name}, key id {apex.key_id.hex()})")
    console.print(f"store key: {key_file} (P-256, key id {public_key_id(key.public_key()).hex()})")
    for identity in identities:
        console.print(f"identity anchor: {anchor_subject(identity)} (key id {identity.key_id.hex()})")


def answer_summary(answer: Message) -> tuple[bool, str]:
    """(accepted, what the store said) for the answer a store gave."""
    if isinstance(answer, TampError):
        seq = "" if answer.msg_ref is None else f" seq {answer.msg_ref.seq_num}"
        return False, f"refused {message_name(answer.msg_type)}{seq}: {status_text(answer.status)}"
    if isinstance(answer, StatusResponse):
        count = len(answer.ta_key_ids) if answer.terse else len(answer.trust_anchors)
        return True, f"answered TAMPStatusQuery seq {answer.query.seq_num}: TAMPStatusResponse, {count} trust anchors"
    if isinstance(answer, TampUpdateConfirm):
        ok = all(s == StatusCode.success for s in answer.statuses)
        statuses = ", ".join(s.name for s in answer.statuses)
        verb = "accepted" if ok else "refused"
        return ok, f"{verb} TAMPUpdate seq {answer.update.seq_num}: TAMPUpdateConfirm [{statuses}]"
    if isinstance(answer, ApexUpdateConfirm | CommunityUpdateConfirm | SequenceNumberAdjustConfirm):
        ref = (
            answer.apex_replace
            if isinstance(answer, ApexUpdateConfirm)
            else answer.update
            if isinstance(answer, CommunityUpdateConfirm)
            else answer.adjust
        )
        ok = answer.status == StatusCode.success
        request = message_name(answer.content_type).removesuffix("Confirm")
        verb = "accepted" if ok else "refused"
        return ok, f"{verb} {request} seq {ref.seq_num}: {message_name(answer.content_type)} {answer.status.name}"
    return False, f"unexpected answer {message_name(answer.content_type)}"


@endpoint_app.command("process")
@clean_errors
def endpoint_process(
    file: Path = typer.Argument(..., help="The signed TAMP message (DER)."),
    directory: Path | None = DIR_OPTION,
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Where to write the store's signed answer; default FILE with .answer.der."
    ),
) -> None:
    """Feed one message to the store and write its signed answer; exit 1 when the store refuses it."""
    store = open_store(endpoint_dir(directory))
    data = read_message(file)
    answer_path = out if out is not None else file.with_suffix(".answer.der")
    check_out(answer_path)
    try:
        signer: str | None = parse(data)[1].key_id.hex()
    except TampRefused:
        signer = None
    answer_der = store.process(data)
    answer_path.write_bytes(answer_der)
    answer, _ = parse(answer_der)
    accepted, summary = answer_summary(answer)
    by = f" (signer key id {signer})" if signer else ""
    console.print(f"{summary}{by} -> {answer_path}")
    if not accepted:
        raise typer.Exit(1)


def anchor_json(anchor: TrustAnchor, content_types: frozenset[str] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {"subject": anchor_subject(anchor), "kind": anchor.kind, "key_id": anchor.key_id.hex()}
    if content_types is not None:
        view["permitted"] = sorted(message_name(t) for t in content_types)
    return view


@endpoint_app.command("show")
@clean_errors
def endpoint_show(
    directory: Path | None = DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """What the store trusts: the apex, the other trust anchors and what each may sign, the sequence
    numbers accepted so far and the communities."""
    where = endpoint_dir(directory)
    store = open_store(where)
    state = store.state
    names = {state.apex.key_id: anchor_subject(state.apex)}
    names.update({r.anchor.key_id: anchor_subject(r.anchor) for r in state.anchors})
    apex = anchor_json(state.apex)
    view = {
        "directory": str(where),
        "apex": apex,
        "trust_anchors": [anchor_json(r.anchor, r.content_types) for r in state.anchors],
        "sequence_numbers": [
            {"key_id": key_id.hex(), "seq_num": n, "signer": names.get(key_id)}
            for key_id, n in sorted(state.seq_numbers.items())
        ],
        "communities": list(state.communities),
    }
    if as_json:
        print(json.dumps(view, indent=2))
        return
    console.print(f"store: {where}")
    console.print(f"apex: {apex['subject']} ({apex['kind']}, key id {apex['key_id']})")
    console.print(f"trust anchors ({len(state.anchors)}):")
    for record in state.anchors:
        may_sign = ", ".join(sorted(message_name(t) for t in record.content_types)) or "nothing (identity anchor)"
        console.print(
            f"  {anchor_subject(record.anchor)} ({record.anchor.kind}, key id {record.anchor.key_id.hex()}) "
            f"may sign: {may_sign}"
        )
    console.print(f"sequence numbers ({len(state.seq_numbers)}):")
    for key_id, number in sorted(state.seq_numbers.items()):
        console.print(f"  {key_id.hex()} {names.get(key_id, '(not a trust anchor)')}: {number}")
    console.print(f"communities: {', '.join(state.communities) or 'none'}")
