"""`cm voicemail`: mailboxes and their messages (docs/voicemail.md). Every verb calls the `voicemail.*` method of the
same meaning; `cm rpc voicemail.box_update id=3 key=value` reaches every setting."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Optional

import typer

from .common import _area, console, rpc, show

voicemail = _area("voicemail", "voicemail: mailboxes, messages, PINs")

BOX_COLS = ["id", "tenant_id", "user_id", "group_id", "name", "extension", "enabled", "email", "has_pin", "new", "old"]
MSG_COLS = ["id", "mailbox_id", "caller", "received_at", "duration_s", "heard", "emailed"]


@voicemail.command("box-create")
def box_create(
    user_id: Optional[int] = typer.Option(None, help="the user's own mailbox ..."),
    group_id: Optional[int] = typer.Option(None, help="... or a hunt group's"),
    email: Optional[str] = typer.Option(None, help="new messages are e-mailed here"),
    pin: Optional[str] = typer.Option(None, help="4 to 10 digits, for listening by phone"),
    extension: Optional[str] = typer.Option(
        None, help="its own extension: colleagues leave a message, the owner listens"
    ),
    min_message_s: Optional[float] = None,
    max_message_s: Optional[int] = None,
    retention_days: Optional[int] = None,
):
    show(
        rpc(
            "voicemail.box_create",
            user_id=user_id,
            group_id=group_id,
            email=email,
            pin=pin,
            extension=extension,
            min_message_s=min_message_s,
            max_message_s=max_message_s,
            retention_days=retention_days,
        ),
        BOX_COLS,
    )


@voicemail.command("boxes")
def boxes(user_id: Optional[int] = None, group_id: Optional[int] = None):
    show(rpc("voicemail.box_list", user_id=user_id, group_id=group_id), BOX_COLS)


@voicemail.command("box-delete")
def box_delete(id: int):
    show(rpc("voicemail.box_delete", id=id))


@voicemail.command("set-pin")
def set_pin(mailbox_id: int, pin: str):
    show(rpc("voicemail.set_pin", id=mailbox_id, pin=pin), BOX_COLS)


@voicemail.command("list")
def list_(mailbox_id: Optional[int] = None, new: bool = typer.Option(False, "--new", help="only messages not heard")):
    show(rpc("voicemail.list", mailbox_id=mailbox_id, heard=False if new else None), MSG_COLS)


@voicemail.command("download")
def download(id: str, out: Path = typer.Option(None, help="file to write (default: voicemail-<id>.wav)")):
    got = rpc("voicemail.download", id=id)
    path = out or Path(f"voicemail-{id}.wav")
    path.write_bytes(base64.b64decode(got["data_base64"]))
    console.print(f"{path} ({got['duration_s']} s)")


@voicemail.command("mark")
def mark(id: str, new: bool = typer.Option(False, "--new", help="mark it new again instead of heard")):
    show(rpc("voicemail.mark", id=id, heard=not new), MSG_COLS)


@voicemail.command("delete")
def delete(id: str):
    show(rpc("voicemail.delete", id=id))


@voicemail.command("greeting-upload")
def greeting_upload(
    mailbox_id: int,
    kind: str = typer.Argument(..., help="busy or unavailable"),
    file: Path = typer.Argument(..., help="a PCM WAV file (converted to 8 kHz mono)"),
):
    data = base64.b64encode(file.read_bytes()).decode()
    show(rpc("voicemail.greeting_upload", id=mailbox_id, kind=kind, data_base64=data))


@voicemail.command("greeting-delete")
def greeting_delete(mailbox_id: int, kind: str = typer.Argument(..., help="busy or unavailable")):
    show(rpc("voicemail.greeting_delete", id=mailbox_id, kind=kind))
