"""M-of-N custody of a quorum secret: SLIP-39 shares, one per named custodian, optionally sealed.

A ceremony makes a random 32-byte secret per quorum group and splits it with SLIP-39 (a single group,
member threshold M of N) so that any M custodians rebuild it and fewer learn nothing. SLIP-39 cannot
make 1-of-N member shares, so a 1-of-N policy uses N one-member groups with group threshold 1 instead.

SLIP-39's own passphrase covers the whole secret, so it is left empty; a custodian who wants their share
protected at rest gets it sealed under a passphrase of their own (scrypt + AES-256-GCM, with the share's
metadata as associated data, so a sealed file cannot be relabelled). Words and secrets never appear in
an error message, a repr or an exception chain.
"""

from __future__ import annotations

import base64
import json
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from shamir_mnemonic import (  # type: ignore[import-untyped]
    MnemonicError,
    Share,
    decode_mnemonics,
    generate_mnemonics,
    recover_ems,
)
from shamir_mnemonic.wordlist import WORDLIST  # type: ignore[import-untyped]

from mpki.domain import InvalidRequest, KeyStoreError
from mpki.keys.secrets import SECRET_BYTES

MAX_SHARES = 16  # SLIP-39's limit
SHARE_FORMAT = "mpki-quorum-share"
SHARE_VERSION = 1
MIN_PASSPHRASE_LENGTH = 8

_GROUP = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")
_MAX_NAME = 128
_MAX_SHARE_FILE = 64 * 1024
_SCRYPT_N = 2**15
_SCRYPT_MAX_N = 2**18  # bounds the memory a hostile share file can make us spend (128 * n * r bytes)
_WORDS: frozenset[str] = frozenset(str(w) for w in WORDLIST)


class QuorumError(KeyStoreError):
    """A set of shares was refused: too few, mixed, altered, or sealed under another passphrase."""


def validate_group(group: object) -> str:
    """A quorum group name: lower-case letters, digits and dashes, at most 31 characters."""
    if not isinstance(group, str) or not _GROUP.fullmatch(group):
        raise InvalidRequest(
            f"quorum group {group!r}: use lower-case letters, digits and dashes, starting with a letter or digit"
            " (max 31)"
        )
    return group


def _validate_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{what} must be a non-empty name")
    if value != value.strip() or len(value) > _MAX_NAME or not value.isprintable():
        raise InvalidRequest(
            f"{what} {value[:_MAX_NAME]!r}: printable characters only, no surrounding spaces, at most {_MAX_NAME}"
        )
    return value


@dataclass(frozen=True)
class QuorumPolicy:
    """Which group a secret belongs to and how many of how many custodians must present shares."""

    group: str
    threshold: int
    shares: int

    def __post_init__(self) -> None:
        validate_group(self.group)
        for name in ("threshold", "shares"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidRequest(f"quorum {self.group}: {name} must be a whole number")
        if not 1 <= self.threshold <= self.shares <= MAX_SHARES:
            raise InvalidRequest(
                f"quorum {self.group}: {self.threshold} of {self.shares} is not possible;"
                f" need 1 <= threshold <= shares <= {MAX_SHARES}"
            )


@dataclass(frozen=True)
class CustodianShare:
    """One custodian's share of one group's secret, as written to their file.

    Exactly one of `mnemonic` (the SLIP-39 words) and `sealed` (kdf parameters and AES-GCM ciphertext of
    the words, base64) is set. `shares` (N) is None only for a share typed in as words without N given:
    SLIP-39 words record M and the share's index, not N.
    """

    group: str
    ceremony: str
    custodian: str
    index: int
    threshold: int
    shares: int | None
    mnemonic: str | None = field(default=None, repr=False)
    sealed: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        validate_group(self.group)
        _validate_name(self.ceremony, "ceremony id")
        _validate_name(self.custodian, "custodian")
        for name in ("index", "threshold"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidRequest(f"share of custodian {self.custodian}: {name} must be a whole number")
        if self.shares is not None and (not isinstance(self.shares, int) or isinstance(self.shares, bool)):
            raise InvalidRequest(f"share of custodian {self.custodian}: shares must be a whole number")
        top = MAX_SHARES if self.shares is None else self.shares
        if not (1 <= self.threshold <= top <= MAX_SHARES and 1 <= self.index <= top):
            raise InvalidRequest(
                f"share of custodian {self.custodian}: index {self.index}, threshold {self.threshold},"
                f" shares {self.shares} do not fit together"
            )
        if (self.mnemonic is None) == (self.sealed is None):
            raise InvalidRequest(f"share of custodian {self.custodian}: needs either its words or its sealed words")
        if self.mnemonic is not None and not isinstance(self.mnemonic, str):
            raise InvalidRequest(f"share of custodian {self.custodian}: its words must be text")
        if self.sealed is not None and not isinstance(self.sealed, dict):
            raise InvalidRequest(f"share of custodian {self.custodian}: its sealed words must be an object")

    @property
    def is_sealed(self) -> bool:
        return self.sealed is not None


def new_secret() -> bytes:
    """A fresh quorum secret: 32 random bytes from the operating system."""
    return os.urandom(SECRET_BYTES)


# --- sealing under a custodian's own passphrase -----------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _normalise_passphrase(passphrase: str) -> bytes:
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _aad(share: CustodianShare) -> bytes:
    """The metadata a sealed share is bound to: relabelling any of it makes unsealing fail."""
    fields = [SHARE_FORMAT, SHARE_VERSION, share.group, share.ceremony, share.custodian]
    fields += [share.index, share.threshold, share.shares]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _seal(unsealed: CustodianShare, passphrase: str) -> dict[str, Any]:
    assert unsealed.mnemonic is not None
    salt = os.urandom(16)
    kek = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=8, p=1).derive(_normalise_passphrase(passphrase))
    nonce = os.urandom(12)
    ciphertext = AESGCM(kek).encrypt(nonce, unsealed.mnemonic.encode("ascii"), _aad(unsealed))
    return {
        "kdf": {"name": "scrypt", "salt": _b64(salt), "n": _SCRYPT_N, "r": 8, "p": 1},
        "cipher": "aes-256-gcm",
        "ciphertext": _b64(nonce + ciphertext),
    }


def _unseal(share: CustodianShare, passphrase: str | None) -> str:
    """The share's words; refuses a missing or wrong passphrase in one line, naming only the custodian."""
    if share.mnemonic is not None:
        return share.mnemonic
    if passphrase is None:
        raise QuorumError(f"custodian {share.custodian}'s share is sealed and no passphrase was given for it")
    sealed = share.sealed or {}
    damaged = QuorumError(f"the sealed share of custodian {share.custodian} is damaged")
    kdf = sealed.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt" or sealed.get("cipher") != "aes-256-gcm":
        raise damaged
    try:
        salt = base64.b64decode(kdf["salt"], validate=True)
        blob = base64.b64decode(sealed["ciphertext"], validate=True)
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    except (KeyError, TypeError, ValueError):
        raise damaged from None
    if n < 2**14 or n > _SCRYPT_MAX_N or n & (n - 1) or r != 8 or p != 1 or len(salt) < 16 or len(blob) < 12 + 16:
        raise damaged
    kek = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(_normalise_passphrase(passphrase))
    try:
        words = AESGCM(kek).decrypt(blob[:12], blob[12:], _aad(share))
    except InvalidTag:
        words = None
    if words is None:
        # Raised outside the except block, so nothing chains to it.
        raise QuorumError(f"wrong passphrase for custodian {share.custodian}'s share (or its file was altered)")
    try:
        return words.decode("ascii")
    except UnicodeDecodeError:
        raise damaged from None


# --- SLIP-39 words ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """What the words themselves say about a share, in mpki's numbering."""

    index: int
    threshold: int
    shares: int | None


def _decode(mnemonic: str) -> Share | None:
    """The SLIP-39 share, or None when the words fail (bad word, length or checksum)."""
    try:
        return Share.from_mnemonic(mnemonic)
    except (MnemonicError, ValueError, TypeError):
        return None


def _layout(share: Share) -> _Layout | None:
    """mpki writes two SLIP-39 layouts: one group M-of-N (M >= 2, or 1-of-1), or N one-member groups 1-of-N."""
    if share.group_threshold != 1:
        return None
    if share.group_count == 1 and share.group_index == 0:
        member_threshold = int(share.member_threshold)
        return _Layout(int(share.index) + 1, member_threshold, 1 if member_threshold == 1 else None)
    if share.member_threshold == 1 and share.index == 0:
        return _Layout(int(share.group_index) + 1, 1, int(share.group_count))
    return None


def _normalise_words(words: str) -> str:
    """Lower-case, single-spaced; a unique prefix of four or more letters stands for its word."""
    out = []
    for token in words.lower().split():
        if token not in _WORDS and len(token) >= 4:
            matches = [w for w in _WORDS if w.startswith(token)]
            if len(matches) == 1:
                token = matches[0]
        out.append(token)
    return " ".join(out)


def _check_out(mnemonic: str, custodian: str) -> tuple[Share, _Layout]:
    decoded = _decode(mnemonic)
    if decoded is None:
        raise QuorumError(f"the share of custodian {custodian} does not check out (a word is wrong or missing)")
    layout = _layout(decoded)
    if layout is None or len(decoded.value) != SECRET_BYTES:
        raise QuorumError(f"the share of custodian {custodian} is a SLIP-39 share, but not one mpki made")
    return decoded, layout


# --- the ceremony side ------------------------------------------------------------------------------


def split(
    secret: bytes,
    policy: QuorumPolicy,
    ceremony: str,
    custodians: Sequence[str],
    passphrases: Mapping[str, str] | None = None,
) -> list[CustodianShare]:
    """Split `secret` M-of-N, one share per custodian in order (index 1..N); seal those given a passphrase."""
    if not isinstance(secret, bytes) or len(secret) != SECRET_BYTES:
        raise InvalidRequest(f"a quorum secret is {SECRET_BYTES} bytes")
    _validate_name(ceremony, "ceremony id")
    names = [_validate_name(name, "custodian") for name in custodians]
    if len(names) != policy.shares:
        raise InvalidRequest(f"quorum {policy.group}: {policy.shares} shares but {len(names)} custodians named")
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise InvalidRequest(f"quorum {policy.group}: custodian {twice[0]} is named twice")
    passphrases = dict(passphrases or {})
    unknown = sorted(set(passphrases) - set(names))
    if unknown:
        raise InvalidRequest(f"quorum {policy.group}: a passphrase was given for {unknown[0]}, who is not a custodian")
    for name, passphrase in passphrases.items():
        if not isinstance(passphrase, str) or len(passphrase) < MIN_PASSPHRASE_LENGTH:
            raise InvalidRequest(f"custodian {name}'s passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters")

    if policy.threshold == 1 and policy.shares > 1:
        layout = [(1, 1)] * policy.shares  # SLIP-39 refuses 1-of-N members; N groups of one do the same
    else:
        layout = [(policy.threshold, policy.shares)]
    groups: list[list[str]] = generate_mnemonics(group_threshold=1, groups=layout, master_secret=secret)
    mnemonics = [str(m) for m in chain.from_iterable(groups)]

    result = []
    for index, (name, mnemonic) in enumerate(zip(names, mnemonics, strict=True), start=1):
        share = CustodianShare(
            group=policy.group,
            ceremony=ceremony,
            custodian=name,
            index=index,
            threshold=policy.threshold,
            shares=policy.shares,
            mnemonic=mnemonic,
        )
        if name in passphrases:
            share = CustodianShare(
                group=share.group,
                ceremony=share.ceremony,
                custodian=share.custodian,
                index=share.index,
                threshold=share.threshold,
                shares=share.shares,
                sealed=_seal(share, passphrases[name]),
            )
        result.append(share)
    return result


def share_words(share: CustodianShare, passphrase: str | None = None) -> str:
    """The share's SLIP-39 words (unsealed with the custodian's passphrase if needed), for showing once."""
    return _unseal(share, passphrase)


def share_from_words(
    words: str, group: str, ceremony: str, custodian: str, *, shares: int | None = None
) -> CustodianShare:
    """A share typed in by its custodian. Index and threshold come from the words; N from them or `shares`."""
    validate_group(group)
    _validate_name(ceremony, "ceremony id")
    _validate_name(custodian, "custodian")
    mnemonic = _normalise_words(words)
    _, layout = _check_out(mnemonic, custodian)
    if layout.shares is not None and shares is not None and shares != layout.shares:
        raise QuorumError(f"the share of custodian {custodian} is one of {layout.shares}, not of {shares}")
    return CustodianShare(
        group=group,
        ceremony=ceremony,
        custodian=custodian,
        index=layout.index,
        threshold=layout.threshold,
        shares=layout.shares if layout.shares is not None else shares,
        mnemonic=mnemonic,
    )


def refuse_shared_material(
    groups: Mapping[str, tuple[bytes, Sequence[CustodianShare]]], passphrases: Mapping[str, str] | None = None
) -> None:
    """Refuse (InvalidRequest) two groups with one secret, or one share (the same words) in two groups.

    Groups exist so that one group's custodians cannot do another group's task: a secret or a share
    common to two groups would undo that. The same custodian may hold a share in several groups.
    """
    passphrases = passphrases or {}
    secrets_seen: dict[bytes, str] = {}
    words_seen: dict[str, str] = {}
    for group, (secret, shares) in groups.items():
        if secret in secrets_seen:
            raise InvalidRequest(f"quorum groups {secrets_seen[secret]} and {group} have the same secret")
        secrets_seen[secret] = group
        for share in shares:
            words = _normalise_words(_unseal(share, passphrases.get(share.custodian)))
            other = words_seen.get(words)
            if other is not None and other != group:
                raise InvalidRequest(
                    f"custodian {share.custodian}'s share of group {group} is also a share of group {other}"
                )
            words_seen[words] = group


# --- share files ------------------------------------------------------------------------------------


def write_share(share: CustodianShare, path: Path) -> None:
    """Write one share as JSON, readable by its owner only; never replaces an existing file."""
    payload: dict[str, Any] = {
        "format": SHARE_FORMAT,
        "version": SHARE_VERSION,
        "scheme": "SLIP-39",
        "group": share.group,
        "ceremony": share.ceremony,
        "custodian": share.custodian,
        "index": share.index,
        "threshold": share.threshold,
        "shares": share.shares,
    }
    if share.sealed is not None:
        payload["sealed"] = share.sealed
    else:
        payload["mnemonic"] = share.mnemonic
    data = (json.dumps(payload, indent=2) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise QuorumError(f"{path} already exists; a share file is never overwritten") from None
    except OSError as error:
        raise QuorumError(f"cannot create {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def read_share(path: Path) -> CustodianShare:
    """Read a share file written by `write_share`; anything else is refused in one line."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_SHARE_FILE + 1)
    except FileNotFoundError:
        raise QuorumError(f"no share file at {path}") from None
    except OSError as error:
        raise QuorumError(f"cannot read share file {path}: {error.strerror}") from None
    not_a_share = QuorumError(f"{path} is not an mpki quorum share file")
    if len(raw) > _MAX_SHARE_FILE:
        raise not_a_share
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise not_a_share from None
    if not isinstance(data, dict) or data.get("format") != SHARE_FORMAT:
        raise not_a_share
    if data.get("version") != SHARE_VERSION:
        raise QuorumError(f"{path}: share file version {data.get('version')!r} is not supported")
    try:
        share = CustodianShare(
            group=data["group"],
            ceremony=data["ceremony"],
            custodian=data["custodian"],
            index=data["index"],
            threshold=data["threshold"],
            shares=data["shares"],
            mnemonic=data.get("mnemonic"),
            sealed=data.get("sealed"),
        )
    except KeyError as missing:
        raise QuorumError(f"{path} is a damaged share file (no {missing.args[0]!r})") from None
    except InvalidRequest as error:
        raise QuorumError(f"{path} is a damaged share file: {error}") from None
    return share


# --- activation side --------------------------------------------------------------------------------


def _one_of(values: set[str]) -> str:
    return ", ".join(sorted(values))


def combine(shares: Sequence[CustodianShare], passphrases: Mapping[str, str] | None = None) -> tuple[str, bytes]:
    """Rebuild a group's secret from at least M shares; returns (group, secret).

    Every refusal is a QuorumError of one line that names custodians, never words. More than M shares
    are accepted, and each extra share must agree with the first M.
    """
    if not shares:
        raise QuorumError("no shares presented")
    passphrases = passphrases or {}

    groups = {share.group for share in shares}
    if len(groups) > 1:
        raise QuorumError(f"the shares presented belong to different quorum groups ({_one_of(groups)})")
    group = shares[0].group
    ceremonies = {share.ceremony for share in shares}
    if len(ceremonies) > 1:
        raise QuorumError(f"the shares presented for group {group} come from different ceremonies")
    seen: set[str] = set()
    for share in shares:
        if share.custodian in seen:
            raise QuorumError(f"custodian {share.custodian}'s share was presented twice")
        seen.add(share.custodian)
    thresholds = {share.threshold for share in shares}
    if len(thresholds) > 1:
        raise QuorumError(f"the shares presented for group {group} disagree on the threshold; they are not one set")
    threshold = thresholds.pop()
    if len(shares) < threshold:
        raise QuorumError(f"{len(shares)} of {threshold} required shares presented for group {group}")

    mnemonics: list[str] = []
    decoded: list[Share] = []
    for share in shares:
        mnemonic = _unseal(share, passphrases.get(share.custodian))
        slip, layout = _check_out(mnemonic, share.custodian)
        known_n = layout.shares is None or share.shares is None or layout.shares == share.shares
        if layout.index != share.index or layout.threshold != share.threshold or not known_n:
            raise QuorumError(
                f"the share of custodian {share.custodian} does not match its own labels (index or threshold altered)"
            )
        mnemonics.append(mnemonic)
        decoded.append(slip)

    first = decoded[0]
    for share, slip in zip(shares, decoded, strict=True):
        if slip.common_parameters() != first.common_parameters():
            raise QuorumError(
                f"custodian {share.custodian}'s share is from a different ceremony than custodian"
                f" {shares[0].custodian}'s (their SLIP-39 identifiers differ)"
            )
    positions: dict[int, str] = {}
    for share in shares:
        if share.index in positions:
            raise QuorumError(
                f"custodians {positions[share.index]} and {share.custodian} presented the same share"
                f" (number {share.index})"
            )
        positions[share.index] = share.custodian

    ems = _recover(mnemonics[:threshold])
    if ems is None:
        raise QuorumError(
            f"the shares presented for group {group} do not fit together (one was altered or is from another ceremony)"
        )
    for share, mnemonic in zip(shares[threshold:], mnemonics[threshold:], strict=True):
        if _recover([*mnemonics[: threshold - 1], mnemonic]) != ems:
            raise QuorumError(
                f"custodian {share.custodian}'s share does not fit with the others for group {group}"
                " (altered, or from another ceremony)"
            )
    try:
        secret = bytes(ems.decrypt(b""))
    except (MnemonicError, ValueError):
        secret = b""
    if len(secret) != SECRET_BYTES:
        raise QuorumError(f"the shares for group {group} rebuild something that is not a {SECRET_BYTES}-byte secret")
    return group, secret


def _recover(mnemonics: Sequence[str]) -> Any:
    """The SLIP-39 encrypted master secret of exactly M shares, or None if they do not combine."""
    try:
        return recover_ems(decode_mnemonics(mnemonics))
    except (MnemonicError, ValueError):
        return None
