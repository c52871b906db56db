"""A tenant's own recordings of the platform's announcements (AUD-07): a number not in service, busy, a feature code
confirmed … said in the tenant's words instead of the system's (mediaserver/prompts). Uploaded as WAV, checked and
converted like a mailbox's greeting (controlplane/services/audio.py); the next call hears it. Deleting one brings
the system's back.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from controlplane.api.errors import InvalidParams
from controlplane.api.rpc import Params, method
from controlplane.db.models import Tenant
from controlplane.services.audio import MAX_BYTES, AudioRefused, install, seconds_of
from kemi.policy.announce import LANGUAGES, PROMPTS

from .common import Id, get_scoped

# the refusals' announcements, and what the IVR menus and queues say where nothing of the tenant's own is recorded
REPLACEABLE = (*PROMPTS, "ivr_choose", "ivr_invalid", "queue_welcome", "queue_place")
PromptName = Literal[REPLACEABLE]  # type: ignore[valid-type]
Language = Literal[LANGUAGES]  # type: ignore[valid-type]


class PromptRef(Params):
    tenant_id: Id | None = Field(None, description="a platform token names the tenant; a tenant's token: its own")
    prompt: PromptName = Field(description="which announcement (prompt.list names them)")
    language: Language


class PromptUpload(PromptRef):
    data_base64: str = Field(
        max_length=MAX_BYTES * 4 // 3 + 8,
        description="a PCM WAV file (any rate 8-96 kHz, mono or stereo), base64; converted to 8 kHz mono",
    )


class PromptList(Params):
    tenant_id: Id | None = None


def _tenant(ctx, tenant_id: int | None) -> int:
    scoped = ctx.principal.tenant_scope(tenant_id)
    if scoped is None:
        raise InvalidParams("tenant_id is required with a platform token", field="tenant_id")
    with ctx.app.read() as s:
        get_scoped(s, Tenant, scoped, ctx.principal, "tenant")
    return scoped


@method("prompt.upload", PromptUpload, errors=("invalid_params", "not_found", "forbidden"))
def upload(ctx, p: PromptUpload):
    """Replace one of the system's announcements with the tenant's own recording (checked: 0.5-120 s, audible, not
    distorted; a file that cannot be used changes nothing)."""
    tenant_id = _tenant(ctx, p.tenant_id)
    path = ctx.app.voicemail_store.tenant_prompt(tenant_id, p.language, p.prompt)
    try:
        seconds = install(p.data_base64, path, ctx.app.voicemail_store)
    except AudioRefused as exc:
        raise InvalidParams(f"the recording cannot be used: {exc}", field="data_base64") from None
    return {"tenant_id": tenant_id, "prompt": p.prompt, "language": p.language, "duration_s": seconds, "own": True}


@method("prompt.delete", PromptRef, errors=("invalid_params", "not_found", "forbidden"))
def delete(ctx, p: PromptRef):
    """Remove the tenant's own recording: the system's announcement plays again."""
    tenant_id = _tenant(ctx, p.tenant_id)
    path = ctx.app.voicemail_store.tenant_prompt(tenant_id, p.language, p.prompt)
    existed = ctx.app.voicemail_store.remove(path)
    return {"tenant_id": tenant_id, "prompt": p.prompt, "language": p.language, "deleted": existed, "own": False}


@method("prompt.list", PromptList, errors=("invalid_params", "not_found", "forbidden"))
def list_(ctx, p: PromptList):
    """Every announcement in every language, and whether the tenant has its own recording of it."""
    tenant_id = _tenant(ctx, p.tenant_id)
    items = []
    for language in LANGUAGES:
        for prompt in REPLACEABLE:
            path = ctx.app.voicemail_store.tenant_prompt(tenant_id, language, prompt)
            own = path.exists()
            items.append(
                {"prompt": prompt, "language": language, "own": own, "duration_s": seconds_of(path) if own else None}
            )
    return {"tenant_id": tenant_id, "items": items, "total": len(items)}


class MusicUpload(Params):
    tenant_id: Id | None = Field(None, description="a platform token names the tenant; a tenant's token: its own")
    data_base64: str = Field(
        max_length=MAX_BYTES * 4 // 3 + 8,
        description="a PCM WAV file (any rate 8-96 kHz, mono or stereo), base64; converted to 8 kHz mono",
    )


@method("prompt.music_upload", MusicUpload, errors=("invalid_params", "not_found", "forbidden"))
def music_upload(ctx, p: MusicUpload):
    """The music the tenant's callers hear while they wait in a queue (looped), instead of the system's."""
    tenant_id = _tenant(ctx, p.tenant_id)
    try:
        seconds = install(p.data_base64, ctx.app.voicemail_store.music(tenant_id), ctx.app.voicemail_store)
    except AudioRefused as exc:
        raise InvalidParams(f"the recording cannot be used: {exc}", field="data_base64") from None
    return {"tenant_id": tenant_id, "duration_s": seconds, "own": True}


@method("prompt.music_delete", PromptList, errors=("invalid_params", "not_found", "forbidden"))
def music_delete(ctx, p: PromptList):
    """Remove the tenant's own queue music: the system's plays again."""
    tenant_id = _tenant(ctx, p.tenant_id)
    path = ctx.app.voicemail_store.music(tenant_id)
    existed = ctx.app.voicemail_store.remove(path)
    return {"tenant_id": tenant_id, "deleted": existed, "own": False}
