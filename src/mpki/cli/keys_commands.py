"""`mpki keys …`: quorum activation, status; backup, restore and clone (the backup group's shares);
new tokens (the token-admin group's shares)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from mpki.ca.custody import KeyCustody, Refusal
from mpki.ca.runtime import open_database, open_keystore
from mpki.cli.context import clean_errors, console, fail, settings
from mpki.domain import NotFound
from mpki.keys.quorum import CustodianShare, QuorumError, read_share, share_from_words
from mpki.keys.registry import GroupRole

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


def _read_presented(
    keeper: KeyCustody,
    files: list[Path],
    interactive: bool,
    group: str,
    ask_passphrases: bool,
    refused: Callable[[Exception, list[str], int], None],
) -> tuple[list[CustodianShare], dict[str, str]]:
    """The shares presented (files, or each custodian's words typed in) and the sealed ones' passphrases.

    A refusal before the shares could be combined (a mistyped word, an unreadable file) goes to `refused`
    all the same, then propagates."""
    typed: list[CustodianShare] = []
    try:
        if interactive:
            record = keeper.registry.group(group)
            presented = _prompted_shares(group, record.ceremony, record.shares, typed)
        else:
            presented = [read_share(path) for path in files]
    except (QuorumError, NotFound) as error:
        refused(error, sorted({share.custodian for share in typed}), len(typed) if interactive else len(files))
        raise
    passphrases = {}
    if ask_passphrases:
        for share in presented:
            if share.sealed is not None:
                passphrases[share.custodian] = getpass.getpass(f"passphrase of {share.custodian}: ")
    return presented, passphrases


def _fresh_shares(
    keeper: KeyCustody,
    role: GroupRole,
    refusal: Refusal,
    files: list[Path],
    interactive: bool,
    group: str | None,
    ask_passphrases: bool,
    **subject: str,
) -> tuple[list[CustodianShare], dict[str, str]]:
    """Shares of the installation's `role` group presented for this one command; none: refused and audited."""

    def refused(error: Exception, custodians: list[str], presented: int) -> None:
        keeper.custody_refused(refusal, error, custodians, presented, actor=_actor(), **subject)

    if not files and not interactive:
        error = QuorumError(
            f"{role.task} needs fresh shares of the {role.value} group: give --share FILE for each of its"
            " custodians present, or --interactive"
        )
        refused(error, [], 0)
        raise fail(str(error))
    try:
        name = group or keeper.registry.only_group(role).group
    except NotFound as error:
        refused(error, [], 0)
        raise
    return _read_presented(keeper, files, interactive, name, ask_passphrases, refused)


_SHARES = typer.Option([], "--share", help="A custodian's share file of the group; repeat for each custodian.")
_INTERACTIVE = typer.Option(False, "--interactive", help="Prompt each custodian for their words.")
_ASK = typer.Option(False, "--ask-passphrases", help="Prompt for sealed shares' passphrases.")


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

    def refused(error: Exception, custodians: list[str], presented: int) -> None:
        keeper.activation_refused(error, custodians, presented, actor=_actor())

    presented, passphrases = _read_presented(keeper, shares, interactive, group, ask_passphrases, refused)
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
    table = Table("group", "role", "quorum", "ceremony", "active")
    for g in groups:
        table.add_row(g.group, g.role, f"{g.threshold} of {g.shares}", g.ceremony, "yes" if g.active else "no")
    console.print(table)
    keys_table = Table("CA", "backend", "key id", "group", "active")
    for k in keys:
        keys_table.add_row(k.ca, k.backend, k.key_id, k.group or "(passphrase)", "yes" if k.active else "no")
    console.print(keys_table)


def vars_of(item: object) -> dict[str, object]:
    return {name: getattr(item, name) for name in getattr(item, "__slots__", ())}


_BACKUP_GROUP = typer.Option(None, "--group", help="Backup group, for --interactive (default: the one).")


@app.command("backup")
@clean_errors
def backup(
    ca: str = typer.Argument(..., help="CA whose key to back up (on a token: the whole token holding it)."),
    out: Path = typer.Option(..., "--out", "-o", help="Backup file (sealed under the backup group's key)."),
    shares: list[Path] = _SHARES,
    interactive: bool = _INTERACTIVE,
    group: str | None = _BACKUP_GROUP,
    ask_passphrases: bool = _ASK,
) -> None:
    """Back up a CA key with fresh shares of the backup group: its protected form, sealed again."""
    keeper = custody()
    presented, passphrases = _fresh_shares(
        keeper, GroupRole.BACKUP, Refusal.BACKUP, shares, interactive, group, ask_passphrases, ca=ca
    )
    written = keeper.backup(ca, out, presented, passphrases, actor=_actor())
    held = f"token {written.token} ({len(written.key_ids)} keys)" if written.token else "its key file"
    console.print(
        f"backup of {ca} ({held}) written to {out} (sha256 {written.sha256}), sealed for group {written.group}"
    )


@app.command("restore")
@clean_errors
def restore(
    ca: str = typer.Argument(..., help="CA whose key the backup holds."),
    backup_file: Path = typer.Option(..., "--from", help="Backup file written by `mpki keys backup`."),
    target_conf: Path | None = typer.Option(
        None, "--to-conf", help="PKCS#11: the replacement HSM's SOFTHSM2_CONF (default: this HSM's)."
    ),
    shares: list[Path] = _SHARES,
    interactive: bool = _INTERACTIVE,
    group: str | None = _BACKUP_GROUP,
    ask_passphrases: bool = _ASK,
) -> None:
    """Lay a backup back with fresh shares of the backup group, and prove the key signs where it can."""
    if not backup_file.is_file():
        raise fail(f"no such backup file: {backup_file}")
    keeper = custody()
    presented, passphrases = _fresh_shares(
        keeper, GroupRole.BACKUP, Refusal.RESTORE, shares, interactive, group, ask_passphrases, ca=ca
    )
    restored = keeper.restore(ca, backup_file, presented, passphrases, actor=_actor(), target_conf=target_conf)
    console.print(f"restored key {restored.key_id} for {ca} into {restored.where}")
    if restored.not_proven is None:
        console.print(f"{ca}: its signatures verify under the CA certificate")
    else:
        console.print(f"{ca}: {restored.not_proven}")


@app.command("clone")
@clean_errors
def clone(
    token: str = typer.Argument(..., help="Token to clone (e.g. contingency)."),
    target_conf: Path = typer.Option(..., "--to-conf", help="The backup HSM's SOFTHSM2_CONF (its token directory)."),
    shares: list[Path] = _SHARES,
    interactive: bool = _INTERACTIVE,
    group: str | None = _BACKUP_GROUP,
    ask_passphrases: bool = _ASK,
) -> None:
    """Copy a whole token to another HSM in one step, with fresh shares of the backup group."""
    keeper = custody()
    presented, passphrases = _fresh_shares(
        keeper, GroupRole.BACKUP, Refusal.CLONE, shares, interactive, group, ask_passphrases, token=token
    )
    cloned = keeper.clone(token, target_conf, presented, passphrases, actor=_actor())
    console.print(f"token {cloned.token} (serial {cloned.serial}, {len(cloned.key_ids)} keys) cloned to {cloned.where}")


@app.command("init-token")
@clean_errors
def init_token(
    label: str = typer.Argument(..., help="Label of the new token."),
    group: str = typer.Option("ca-keys", "--group", help="Activation group whose secret derives its user PIN."),
    shares: list[Path] = _SHARES,
    interactive: bool = _INTERACTIVE,
    admin_group: str | None = typer.Option(
        None, "--admin-group", help="Token-admin group, for --interactive (default: the one)."
    ),
    ask_passphrases: bool = _ASK,
    activation_shares: list[Path] = typer.Option(
        [], "--activation-share", help="A share of the activation group (the user PIN); needed in production."
    ),
) -> None:
    """Initialise another token: SO PIN from fresh token-admin shares, user PIN from the activation group
    (its shares, or in development its activation in the run directory)."""
    keeper = custody()
    presented, passphrases = _fresh_shares(
        keeper,
        GroupRole.TOKEN_ADMIN,
        Refusal.INIT_TOKEN,
        shares,
        interactive,
        admin_group,
        ask_passphrases,
        token=label,
    )
    activation = [read_share(path) for path in activation_shares]
    admin = keeper.add_token(label, group, presented, passphrases, actor=_actor(), activation_shares=activation)
    console.print(f"token {label} initialised: user PIN of quorum group {group}, SO PIN of quorum group {admin}")


@app.command("record-purposes")
@clean_errors
def record_purposes() -> None:
    """Once, on an installation made before keys carried purposes: CA keys may sign what CAs sign, current
    OCSP responder keys OCSP responses only (the signer refuses a key with no recorded purposes)."""
    recorded = custody().record_missing_purposes(actor=_actor())
    for key_id, purposes in recorded.items():
        console.print(f"{key_id}: {', '.join(purposes)}")
    console.print(f"{len(recorded)} keys given their purposes" if recorded else "every key has its purposes already")
