"""Quorum custody: SLIP-39 M-of-N shares per custodian, sealed files, combine's refusals, activation."""

from __future__ import annotations

import dataclasses
import itertools
import json
import stat
from pathlib import Path

import pytest
from shamir_mnemonic import Share  # type: ignore[import-untyped]
from shamir_mnemonic.wordlist import WORDLIST  # type: ignore[import-untyped]

from mpki.domain import InvalidRequest, KeyStoreError
from mpki.keys.activation import ActivationStore
from mpki.keys.quorum import (
    CustodianShare,
    QuorumError,
    QuorumPolicy,
    combine,
    new_secret,
    read_share,
    share_from_words,
    share_words,
    split,
    write_share,
)

CUSTODIANS = ["alice", "bob", "carol", "dave", "erin"]
POLICY = QuorumPolicy(group="ca-keys", threshold=3, shares=5)


@pytest.fixture(scope="module")
def secret() -> bytes:
    return new_secret()


@pytest.fixture(scope="module")
def shares(secret: bytes) -> list[CustodianShare]:
    return split(secret, POLICY, "ceremony-1", CUSTODIANS)


def _words_of(share: CustodianShare) -> list[str]:
    assert share.mnemonic is not None
    return share.mnemonic.split()


def _assert_no_words(message: str, *shares: CustodianShare) -> None:
    """An error may name custodians, never the words of a share (SLIP-39's own errors quote the first ones)."""
    for share in shares:
        if share.mnemonic is not None:
            words = _words_of(share)
            for start in range(len(words) - 1):
                assert " ".join(words[start : start + 2]) not in message


# --- splitting and rebuilding ------------------------------------------------------------------------


def test_split_gives_one_share_per_custodian(shares: list[CustodianShare], secret: bytes) -> None:
    assert len(secret) == 32 and new_secret() != secret
    assert [s.custodian for s in shares] == CUSTODIANS
    assert [s.index for s in shares] == [1, 2, 3, 4, 5]
    assert {(s.group, s.ceremony, s.threshold, s.shares) for s in shares} == {("ca-keys", "ceremony-1", 3, 5)}
    assert all(s.sealed is None and s.mnemonic is not None for s in shares)
    assert len({s.mnemonic for s in shares}) == 5
    assert all(len(_words_of(s)) == 33 for s in shares)  # 32-byte secret: 26 value words + 7 metadata words
    assert all(" ".join(_words_of(s)[:2]) not in repr(s) for s in shares)


def test_any_three_of_five_rebuild_the_secret(shares: list[CustodianShare], secret: bytes) -> None:
    for trio in itertools.combinations(shares, 3):
        assert combine(trio) == ("ca-keys", secret)
    assert combine([shares[4], shares[0], shares[2]]) == ("ca-keys", secret)


def test_more_than_the_threshold_is_fine(shares: list[CustodianShare], secret: bytes) -> None:
    assert combine(shares[:4]) == ("ca-keys", secret)
    assert combine(shares) == ("ca-keys", secret)


@pytest.mark.parametrize(("threshold", "count"), [(1, 1), (1, 3), (2, 2), (2, 3), (5, 16), (16, 16)])
def test_edge_policies_round_trip(threshold: int, count: int) -> None:
    secret = new_secret()
    names = [f"custodian {i}" for i in range(count)]
    made = split(secret, QuorumPolicy("apex", threshold, count), "c", names)
    assert combine(made[-threshold:]) == ("apex", secret)
    assert combine(made[:threshold]) == ("apex", secret)
    if threshold > 1:
        with pytest.raises(QuorumError, match=f"^{threshold - 1} of {threshold} required shares presented for group"):
            combine(made[: threshold - 1])


# --- combine's refusals ------------------------------------------------------------------------------


def test_too_few_shares_are_refused(shares: list[CustodianShare]) -> None:
    with pytest.raises(QuorumError, match=r"^2 of 3 required shares presented for group ca-keys$"):
        combine(shares[:2])
    with pytest.raises(QuorumError, match="no shares presented"):
        combine([])


def test_one_changed_word_is_caught_by_the_checksum(shares: list[CustodianShare]) -> None:
    words = _words_of(shares[1])
    position = 12  # inside the share value
    words[position] = next(w for w in WORDLIST if w != words[position])
    altered = dataclasses.replace(shares[1], mnemonic=" ".join(words))
    with pytest.raises(QuorumError) as refused:
        combine([shares[0], altered, shares[2]])
    message = str(refused.value)
    assert message == "the share of custodian bob does not check out (a word is wrong or missing)"
    assert refused.value.__cause__ is None and refused.value.__context__ is None
    _assert_no_words(message, shares[1], altered)


def test_missing_or_unknown_words_are_caught(shares: list[CustodianShare]) -> None:
    words = _words_of(shares[0])
    for mnemonic in (" ".join(words[:-1]), " ".join([*words[:-1], "xyzzy"]), ""):
        broken = dataclasses.replace(shares[0], mnemonic=mnemonic)
        with pytest.raises(QuorumError, match=r"^the share of custodian alice does not check out"):
            combine([broken, shares[1], shares[2]])


def _other_split() -> list[CustodianShare]:
    """A second 3-of-5 split with the same labels, whose SLIP-39 identifier differs from the first."""
    return split(new_secret(), POLICY, "ceremony-1", CUSTODIANS)


def _forge(share: CustodianShare, like: CustodianShare) -> CustodianShare:
    """`share`'s value under `like`'s SLIP-39 identifier, with a valid checksum: only the digest can tell."""
    assert share.mnemonic is not None and like.mnemonic is not None
    mine, theirs = Share.from_mnemonic(share.mnemonic), Share.from_mnemonic(like.mnemonic)
    forged = dataclasses.replace(mine, identifier=theirs.identifier, extendable=theirs.extendable)
    return dataclasses.replace(share, mnemonic=forged.mnemonic())


def test_a_share_from_another_ceremony_is_refused(shares: list[CustodianShare]) -> None:
    other = split(new_secret(), POLICY, "ceremony-2", CUSTODIANS)
    with pytest.raises(QuorumError, match="different ceremonies"):
        combine([shares[0], shares[1], other[2]])

    # Relabelled to look like this ceremony: the SLIP-39 identifier in the words gives it away.
    forged = _other_split()[2]
    while Share.from_mnemonic(forged.mnemonic).identifier == Share.from_mnemonic(shares[0].mnemonic).identifier:
        forged = _other_split()[2]  # 1 in 32768
    with pytest.raises(
        QuorumError, match=r"^custodian carol's share is from a different ceremony than custodian alice's"
    ):
        combine([shares[0], shares[1], forged])

    # Same identifier too (a collision, or a forgery): SLIP-39's digest of the secret catches it.
    with pytest.raises(QuorumError, match=r"^the shares presented for group ca-keys do not fit together") as refused:
        combine([shares[0], shares[1], _forge(_other_split()[2], like=shares[0])])
    _assert_no_words(str(refused.value), *shares)


def test_every_share_beyond_the_threshold_is_checked(shares: list[CustodianShare], secret: bytes) -> None:
    assert combine([*shares[:3], shares[4]]) == ("ca-keys", secret)
    with pytest.raises(QuorumError, match=r"^custodian dave's share does not fit with the others"):
        combine([*shares[:3], _forge(_other_split()[3], like=shares[0])])


def test_a_share_from_another_group_is_refused(shares: list[CustodianShare]) -> None:
    other = split(new_secret(), QuorumPolicy("apex", 3, 5), "ceremony-1", CUSTODIANS)
    with pytest.raises(QuorumError, match=r"different quorum groups \(apex, ca-keys\)"):
        combine([shares[0], shares[1], other[2]])


def test_the_same_share_twice_is_refused(shares: list[CustodianShare]) -> None:
    with pytest.raises(QuorumError, match=r"^custodian alice's share was presented twice$"):
        combine([shares[0], shares[0], shares[1]])
    # The same words under another name are still the same share.
    renamed = dataclasses.replace(shares[0], custodian="mallory")
    with pytest.raises(QuorumError, match=r"^custodians alice and mallory presented the same share"):
        combine([shares[0], renamed, shares[1]])


def test_relabelled_share_metadata_is_refused(shares: list[CustodianShare]) -> None:
    relabelled = [dataclasses.replace(s, threshold=2) for s in shares[:2]]
    with pytest.raises(QuorumError, match="does not match its own labels"):
        combine(relabelled)
    moved = dataclasses.replace(shares[2], index=4)
    with pytest.raises(QuorumError, match="carol does not match its own labels"):
        combine([shares[0], shares[1], moved])


# --- sealed shares -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed(secret: bytes) -> list[CustodianShare]:
    return split(secret, POLICY, "ceremony-1", CUSTODIANS, {"alice": "alice's passphrase", "bob": "bob's secret!"})


def test_sealed_shares_need_their_own_passphrases(sealed: list[CustodianShare], secret: bytes) -> None:
    assert sealed[0].sealed is not None and sealed[0].mnemonic is None
    assert sealed[2].sealed is None and sealed[2].mnemonic is not None
    right = {"alice": "alice's passphrase", "bob": "bob's secret!"}
    assert combine(sealed[:3], right) == ("ca-keys", secret)
    assert combine(sealed[:3], {**right, "erin": "ignored for unsealed"}) == ("ca-keys", secret)

    with pytest.raises(QuorumError, match=r"^wrong passphrase for custodian bob's share") as refused:
        combine(sealed[:3], {"alice": "alice's passphrase", "bob": "alice's passphrase"})
    assert refused.value.__context__ is None
    with pytest.raises(QuorumError, match=r"^custodian alice's share is sealed and no passphrase was given"):
        combine(sealed[:3], {"bob": "bob's secret!"})
    with pytest.raises(QuorumError, match="custodian alice's share is sealed"):
        combine(sealed[:3])


def test_a_sealed_share_cannot_be_relabelled(sealed: list[CustodianShare]) -> None:
    # Moving bob's sealed words to another custodian's name or index breaks the seal.
    relabelled = dataclasses.replace(sealed[1], custodian="carl")
    with pytest.raises(QuorumError, match="wrong passphrase for custodian carl's share"):
        share_words(relabelled, "bob's secret!")


def test_split_validates_its_inputs(secret: bytes) -> None:
    with pytest.raises(InvalidRequest, match="5 shares but 4 custodians"):
        split(secret, POLICY, "c", CUSTODIANS[:4])
    with pytest.raises(InvalidRequest, match="bob is named twice"):
        split(secret, POLICY, "c", ["alice", "bob", "bob", "dave", "erin"])
    with pytest.raises(InvalidRequest, match="zoe, who is not a custodian"):
        split(secret, POLICY, "c", CUSTODIANS, {"zoe": "long enough passphrase"})
    with pytest.raises(InvalidRequest, match="at least 8 characters"):
        split(secret, POLICY, "c", CUSTODIANS, {"alice": "short"})
    with pytest.raises(InvalidRequest, match="32 bytes"):
        split(secret[:16], POLICY, "c", CUSTODIANS)
    with pytest.raises(InvalidRequest, match="custodian"):
        split(secret, POLICY, "c", ["alice", " bob", "carol", "dave", "erin"])


@pytest.mark.parametrize(
    ("group", "threshold", "count"),
    [("ca-keys", 0, 5), ("ca-keys", 6, 5), ("ca-keys", 3, 17), ("CA keys", 3, 5), ("", 1, 1), ("x" * 32, 1, 1)],
)
def test_policy_validation(group: str, threshold: int, count: int) -> None:
    with pytest.raises(InvalidRequest):
        QuorumPolicy(group, threshold, count)


# --- share files -------------------------------------------------------------------------------------


def test_share_files_are_private_and_never_overwritten(
    tmp_path: Path, shares: list[CustodianShare], sealed: list[CustodianShare]
) -> None:
    path = tmp_path / "alice.json"
    write_share(shares[0], path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    with pytest.raises(QuorumError, match="already exists"):
        write_share(shares[1], path)
    assert path.read_bytes() == before
    assert read_share(path) == shares[0]

    sealed_path = tmp_path / "bob.json"
    write_share(sealed[1], sealed_path)
    text = sealed_path.read_text()
    assert read_share(sealed_path) == sealed[1]
    words = share_words(sealed[1], "bob's secret!").split()
    assert '"mnemonic"' not in text and " ".join(words[4:6]) not in text
    assert share_words(read_share(sealed_path), "bob's secret!") == share_words(sealed[1], "bob's secret!")


def test_files_that_are_not_shares_are_refused(tmp_path: Path, shares: list[CustodianShare]) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(QuorumError, match="is not an mpki quorum share file"):
        read_share(garbage)
    other_json = tmp_path / "other.json"
    other_json.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(QuorumError, match="is not an mpki quorum share file"):
        read_share(other_json)
    with pytest.raises(QuorumError, match="no share file"):
        read_share(tmp_path / "missing.json")

    good = tmp_path / "good.json"
    write_share(shares[0], good)
    data = json.loads(good.read_text())
    changes: list[dict[str, object]] = [{"threshold": 9}, {"mnemonic": None}, {"sealed": {}}, {"group": "../etc"}]
    for change in changes:
        bad = tmp_path / f"bad-{len(list(tmp_path.iterdir()))}.json"
        bad.write_text(json.dumps({**data, **change}))
        with pytest.raises(QuorumError, match="damaged share file"):
            read_share(bad)
    del data["custodian"]
    missing = tmp_path / "missing-field.json"
    missing.write_text(json.dumps(data))
    with pytest.raises(QuorumError, match="damaged share file"):
        read_share(missing)


# --- words -------------------------------------------------------------------------------------------


def test_words_round_trip(sealed: list[CustodianShare], secret: bytes) -> None:
    words = share_words(sealed[0], "alice's passphrase")
    assert words.split() == words.split(" ") and len(words.split()) == 33
    typed = share_from_words(words, "ca-keys", "ceremony-1", "alice")
    assert (typed.index, typed.threshold, typed.shares, typed.mnemonic) == (1, 3, None, words)
    assert share_from_words(words, "ca-keys", "ceremony-1", "alice", shares=5).shares == 5

    # Custodians type in upper case, with odd spacing, or only the first four letters of each word.
    shouted = "\n  ".join(w.upper() for w in share_words(sealed[3]).split())
    short = " ".join(w[:4] for w in share_words(sealed[4]).split())
    rebuilt = combine(
        [
            typed,
            share_from_words(shouted, "ca-keys", "ceremony-1", "dave"),
            share_from_words(short, "ca-keys", "ceremony-1", "erin"),
        ]
    )
    assert rebuilt == ("ca-keys", secret)

    with pytest.raises(QuorumError, match="wrong passphrase for custodian alice's share"):
        share_words(sealed[0], "not alice's passphrase")
    with pytest.raises(QuorumError, match="sealed and no passphrase"):
        share_words(sealed[0])
    wrong = words.split()
    wrong[20] = next(w for w in WORDLIST if w != wrong[20])
    with pytest.raises(QuorumError, match=r"^the share of custodian alice does not check out") as refused:
        share_from_words(" ".join(wrong), "ca-keys", "ceremony-1", "alice")
    _assert_no_words(str(refused.value), typed)


def test_words_of_a_one_of_n_split_say_how_many_shares_there_are() -> None:
    made = split(new_secret(), QuorumPolicy("apex", 1, 3), "c", ["a", "b", "c"])
    typed = share_from_words(share_words(made[1]), "apex", "c", "b")
    assert (typed.index, typed.threshold, typed.shares) == (2, 1, 3)
    with pytest.raises(QuorumError, match="one of 3, not of 4"):
        share_from_words(share_words(made[1]), "apex", "c", "b", shares=4)


# --- activation --------------------------------------------------------------------------------------


def test_activation_store_round_trip(tmp_path: Path, secret: bytes) -> None:
    run_dir = tmp_path / "run"
    store = ActivationStore(run_dir)
    assert store.active_groups() == [] and store.secret("ca-keys") is None
    assert store.deactivate() == []

    store.activate("ca-keys", secret)
    other = new_secret()
    store.activate("apex", other)
    path = run_dir / "active" / "ca-keys.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["apex.secret", "ca-keys.secret"]

    later = ActivationStore(run_dir)  # another CLI process
    assert later.active_groups() == ["apex", "ca-keys"]
    assert later.secret("ca-keys") == secret and later.secret("apex") == other

    replacement = new_secret()
    later.activate("apex", replacement)
    assert store.secret("apex") == replacement

    assert store.deactivate("apex") == ["apex"]
    assert store.deactivate("apex") == []
    assert store.secret("apex") is None and store.active_groups() == ["ca-keys"]
    store.activate("apex", other)
    assert store.deactivate() == ["apex", "ca-keys"]
    assert store.active_groups() == [] and not path.exists()


def test_activation_store_refuses_bad_input(tmp_path: Path, secret: bytes) -> None:
    store = ActivationStore(tmp_path)
    with pytest.raises(KeyStoreError, match="32 bytes"):
        store.activate("ca-keys", secret[:31])
    with pytest.raises(InvalidRequest):
        store.activate("../escape", secret)
    store.activate("ca-keys", secret)
    (tmp_path / "active" / "ca-keys.secret").write_bytes(secret[:10])
    with pytest.raises(KeyStoreError, match="damaged"):
        store.secret("ca-keys")
