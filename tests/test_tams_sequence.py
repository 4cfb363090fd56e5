"""The TAMP sequence-number counters in the database: increasing per signer, never twice even when threads
(or nodes) reserve at once, never lowered, and an old `sequence-numbers.json` taken over once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from mpki.domain import InvalidRequest
from mpki.store import Database, upgrade
from mpki.tams.sequence import IMPORTED_SUFFIX, SequenceNumbers

ROOT = bytes.fromhex("0011223344556677")
TLS = b"\x01" * 20


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    upgrade(db)
    yield db
    db.dispose()


def _legacy(path: Path, signers: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "signers": signers}))
    return path


def test_numbers_increase_per_signer_and_persist(database: Database, database_url: str) -> None:
    numbers = SequenceNumbers(database)
    assert numbers.last(ROOT) is None and numbers.all() == []
    assert [numbers.reserve(ROOT, "smki-root") for _ in range(3)] == [1, 2, 3]
    assert numbers.reserve(TLS, "tls-root") == 1  # a counter per signer key
    assert numbers.last(ROOT) == 3
    # Another handle, another engine: the counter lives in the database, not in the object.
    other = Database(database_url)
    try:
        assert SequenceNumbers(other).reserve(ROOT, "smki-root") == 4
    finally:
        other.dispose()
    assert [(c.key_id, c.ca, c.last) for c in numbers.all()] == [(ROOT, "smki-root", 4), (TLS, "tls-root", 1)]
    with database.reader() as session:
        row = session.execute(text("SELECT key_id, ca, last FROM tamp_sequence_numbers WHERE ca = 'smki-root'")).one()
    assert tuple(row) == (ROOT.hex(), "smki-root", 4)


def test_concurrent_reservations_are_distinct_and_increasing(database: Database, database_url: str) -> None:
    threads, per_thread = 8, 15
    seen: list[list[int]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        # Each thread its own engine, as separate processes or nodes would have.
        db = database if index % 2 else Database(database_url)
        try:
            start.wait()
            for _ in range(per_thread):
                seen[index].append(SequenceNumbers(db).reserve(ROOT, "smki-root"))
        except BaseException as exc:  # reported below, the test fails on it
            errors.append(exc)
        finally:
            if db is not database:
                db.dispose()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    every = sorted(n for numbers in seen for n in numbers)
    assert every == list(range(1, threads * per_thread + 1))  # none twice, none lost
    assert all(numbers == sorted(numbers) and len(set(numbers)) == per_thread for numbers in seen)
    assert SequenceNumbers(database).last(ROOT) == threads * per_thread


def test_set_at_least_raises_but_never_lowers(database: Database) -> None:
    numbers = SequenceNumbers(database)
    assert numbers.set_at_least(ROOT, "smki-root", 41) == 41  # a signer never seen starts there
    assert numbers.reserve(ROOT, "smki-root") == 42
    assert numbers.set_at_least(ROOT, "smki-root", 10) == 42  # lower: unchanged
    assert numbers.reserve(ROOT, "smki-root") == 43
    assert numbers.set_at_least(ROOT, "smki-root", 100) == 100
    assert numbers.reserve(ROOT, "smki-root") == 101
    with pytest.raises(InvalidRequest, match="not negative"):
        numbers.set_at_least(ROOT, "smki-root", -1)
    assert numbers.last(ROOT) == 101


def test_legacy_file_is_imported_once_taking_the_larger(database: Database, tmp_path: Path) -> None:
    numbers = SequenceNumbers(database, tmp_path / "tams/sequence-numbers.json")
    numbers.set_at_least(TLS, "tls-root", 9)  # already further in the database than in the file
    legacy = _legacy(
        tmp_path / "tams/sequence-numbers.json",
        {ROOT.hex(): {"ca": "smki-root", "last": 5}, TLS.hex(): {"ca": "tls-root", "last": 2}},
    )
    assert numbers.reserve(ROOT, "smki-root") == 6  # continues after the file's 5: no number reused
    assert numbers.reserve(TLS, "tls-root") == 10  # the database's 9 was larger
    assert not legacy.exists() and legacy.with_name(legacy.name + IMPORTED_SUFFIX).exists()
    # Once only: a file that turns up again (a restored backup, say) would be imported again, and a
    # lower number in it changes nothing.
    _legacy(legacy, {ROOT.hex(): {"ca": "smki-root", "last": 1}})
    assert numbers.reserve(ROOT, "smki-root") == 7


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{broken", "not readable JSON"),
        (json.dumps({"format": 2, "signers": {}}), "not format 1"),
        (json.dumps(["format", 1]), "not format 1"),
        (json.dumps({"format": 1}), "damaged"),
        (json.dumps({"format": 1, "signers": {"zz": {"ca": "x", "last": 1}}}), "damaged"),
        (json.dumps({"format": 1, "signers": {"00": {"ca": "x"}}}), "damaged"),
        (json.dumps({"format": 1, "signers": {"00": {"ca": "x", "last": "many"}}}), "damaged"),
        (json.dumps({"format": 1, "signers": {"00": {"ca": "x", "last": -3}}}), "damaged"),
        (json.dumps({"format": 1, "signers": {"": {"ca": "x", "last": 3}}}), "damaged"),
    ],
)
def test_a_bad_legacy_file_is_refused_and_kept(database: Database, tmp_path: Path, content: str, message: str) -> None:
    legacy = tmp_path / "tams/sequence-numbers.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(content)
    numbers = SequenceNumbers(database, legacy)
    with pytest.raises(InvalidRequest, match=message):
        numbers.reserve(ROOT, "smki-root")
    assert legacy.read_text() == content  # left for a person to look at, not renamed away
    assert SequenceNumbers(database).all() == []  # and no number was handed out
