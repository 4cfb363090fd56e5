"""`mpki keys activate --interactive`, and `mpki ceremony verify` against the installation it describes."""

from __future__ import annotations

from pathlib import Path

from mpki.keys.quorum import read_share, share_words


def _words(home: Path) -> list[str]:
    """The CA keys' shares in custodian order (the contingency key's shares lie beside them)."""
    shares = [read_share(path) for path in sorted((home / "dev-shares").iterdir())]
    return [share_words(share) for share in shares if share.group == "ca-keys"]


def test_custodians_type_their_words(mpki, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    mpki("keys", "deactivate", check=True)
    words = _words(Path(env["MPKI_HOME"]))

    one = f"dev-custodian-1\n{words[0]}\n\n".encode()
    refused = mpki("keys", "activate", "--interactive", input=one)
    assert refused.returncode == 1
    assert "1 of 2 required shares" in refused.stderr

    changed = words[2].split()
    changed[5] = "academic" if changed[5] != "academic" else "acid"
    typo = f"dev-custodian-1\n{words[0]}\ndev-custodian-3\n{' '.join(changed)}\n\n".encode()
    assert mpki("keys", "activate", "--interactive", input=typo).returncode == 1

    good = f"dev-custodian-1\n{words[0]}\ndev-custodian-3\n{words[2]}\n\n".encode()
    activated = mpki("keys", "activate", "--interactive", input=good)
    assert activated.returncode == 0, activated.stderr
    assert "ca-keys is active (2 shares presented)" in activated.stdout


def test_a_record_is_checked_against_the_installation(mpki, env: dict[str, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    record = Path(env["MPKI_HOME"]) / "dev-ceremony-record.json"
    assert mpki("ceremony", "verify", str(record)).returncode == 0

    other = dict(env, MPKI_HOME=str(tmp_path / "other"), MPKI_DATABASE_URL=f"sqlite:///{tmp_path / 'other.db'}")
    env.update(other)
    mpki("init", "--dev", check=True)  # another installation with CAs of the same names
    foreign = mpki("ceremony", "verify", str(record))
    assert foreign.returncode == 1
    assert "not this installation's CA" in foreign.stderr
