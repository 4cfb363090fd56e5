"""`mpki keys …`: quorum activation, status, backup and restore of CA keys."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer
from rich.table import Table

from mpki.ca.custody import KeyCustody
from mpki.ca.runtime import open_database, open_keystore
from mpki.cli.context import clean_errors, console, fail, settings
from mpki.domain import NotFound
from mpki.keys.quorum import CustodianShare, QuorumError, read_share, share_from_words

app = typer.Typer(help="CA key custody: activate with M of N custodian shares, back up, restore.", no_args_is_help=True)


def custody() -> KeyCustody:
    current = settings()
    return KeyCustody(current, open_database(current), open_keystore(current))


def _actor() -> str:
    return f"operator:{getpass.getuser()}"


def _prompted_shares(group: str, ceremony: str, total: int, shares: list[CustodianShare]) -> list[CustodianShare]:
    """One custodian at a time types their words into `shares`; an empty name ends the round."""
    while True:
        custodian = typer.prompt("custodian name (empty to finish)", default="", show_default=False)
        if not custodian:
            return shares
        words = getpass.getpass(f"{custodian}, type your share's words: ")
        shares.append(share_from_words(words, group, ceremony, custodian, shares=total))


@app.command("activate")
@clean_errors
def activate(
    shares: list[Path] = typer.Option([], "--share", help="A custodian's share file; repeat for each custodian."),
    interactive: bool = typer.Option(False, "--interactive", help="Prompt each custodian for their words."),
    group: str = typer.Option("ca-keys", "--group", help="Quorum group, for --interactive."),
    ask_passphrases: bool = typer.Option(False, "--ask-passphrases", help="Prompt for sealed shares' passphrases."),
) -> None:
    """Rebuild the quorum secret from M of N shares and activate the keys it unlocks."""
    keeper = custody()
    if not interactive and not shares:
        raise fail("give --share FILE for each custodian present, or --interactive")
    typed: list[CustodianShare] = []
    try:
        if interactive:
            record = keeper.registry.group(group)
            presented = _prompted_shares(group, record.ceremony, record.shares, typed)
        else:
            presented = [read_share(path) for path in shares]
    except (QuorumError, NotFound) as error:
        # Refused before the shares could be combined (a mistyped word, an unreadable file): audited all the same.
        custodians = sorted({share.custodian for share in typed})
        keeper.activation_refused(error, custodians, len(typed) if interactive else len(shares), actor=_actor())
        raise
    passphrases = {}
    if ask_passphrases:
        for share in presented:
            if share.sealed is not None:
                passphrases[share.custodian] = getpass.getpass(f"passphrase of {share.custodian}: ")
    activated = keeper.activate(presented, passphrases, actor=_actor())
    console.print(f"quorum group {activated} is active ({len(presented)} shares presented)")


@app.command("deactivate")
@clean_errors
def deactivate(group: str | None = typer.Option(None, "--group", help="Only this group (default: all).")) -> None:
    """Forget the activated quorum secrets: keys stop signing until a quorum presents its shares again."""
    removed = custody().deactivate(actor=_actor(), group=group)
    console.print(f"deactivated: {', '.join(removed) if removed else 'nothing was active'}")


@app.command("status")
@clean_errors
def status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Which quorum groups and CA keys are active."""
    groups, keys = custody().status()
    if as_json:
        print(json.dumps({"groups": [vars_of(g) for g in groups], "keys": [vars_of(k) for k in keys]}, indent=2))
        return
    table = Table("group", "quorum", "ceremony", "active")
    for g in groups:
        table.add_row(g.group, f"{g.threshold} of {g.shares}", g.ceremony, "yes" if g.active else "no")
    console.print(table)
    keys_table = Table("CA", "backend", "key id", "group", "active")
    for k in keys:
        keys_table.add_row(k.ca, k.backend, k.key_id, k.group or "(passphrase)", "yes" if k.active else "no")
    console.print(keys_table)


def vars_of(item: object) -> dict[str, object]:
    return {name: getattr(item, name) for name in getattr(item, "__slots__", ())}


@app.command("backup")
@clean_errors
def backup(
    ca: str = typer.Argument(..., help="CA whose key to back up."),
    out: Path = typer.Option(..., "--out", "-o", help="Backup file (the key wrapped under the quorum's backup key)."),
) -> None:
    """Wrap a CA key under the backup key (needs the quorum active) and write it to a file."""
    digest = custody().backup(ca, out, actor=_actor())
    console.print(f"backup of {ca} written to {out} (sha256 {digest})")


@app.command("restore")
@clean_errors
def restore(
    ca: str = typer.Argument(..., help="CA whose key the backup holds."),
    backup_file: Path = typer.Option(..., "--from", help="Backup file written by `mpki keys backup`."),
    token: str | None = typer.Option(None, "--token", help="PKCS#11 token to restore onto."),
    use: bool = typer.Option(False, "--use", help="Sign with the restored key from now on."),
) -> None:
    """Unwrap a backup into the keystore and prove the key signs under the CA certificate."""
    if not backup_file.is_file():
        raise fail(f"no such backup file: {backup_file}")
    key_id = custody().restore(ca, backup_file, actor=_actor(), token=token, use=use)
    console.print(f"restored key {key_id} for {ca}; its signatures verify under the CA certificate")
    if use:
        console.print(f"{ca} now signs with {key_id}")


@app.command("init-token")
@clean_errors
def init_token(
    label: str = typer.Argument(..., help="Label of the new token (a backup or replacement HSM)."),
    group: str = typer.Option("ca-keys", "--group", help="Quorum group whose secret derives its PINs."),
) -> None:
    """Initialise another token under an active quorum, with the trusted backup key installed."""
    custody().add_token(label, group, actor=_actor())
    console.print(f"token {label} initialised for quorum group {group}")
