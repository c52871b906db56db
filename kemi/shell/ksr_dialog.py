"""Transactions, dialogs and media on Kamailio: what a call needs before it leaves, its timers, its end.

Called by the route functions with what the policy decided; no decisions here.
"""

from __future__ import annotations

import KSR

from kemi.contract import AVP_DIALOG_TIMEOUT, AVP_MEDIA, DLG_EMERGENCY, DLG_MEDIA, DLG_TRACKED, TIMEOUT_EVENT
from kemi.policy import media as policy_media
from kemi.policy.call import DialogPlan
from kemi.policy.cluster import PEER_MARK
from kemi.policy.media import MUSIC_VAR, MediaPlan, hold_music, hold_offer, rtpengine_flags
from kemi.policy.sip_text import is_word

from . import ksr_apply as apply
from . import ksr_read as read
from .flags import FLB_NATB, FLB_NATSIPPING, FLT_NATS, NAT_TEST

# loose_route on a new request whose Route names this node: -3 (rr's RR_PRELOADED) when nothing follows it, 1 when
# another hop does (-1: no Route at all, or an error)
PRELOADED_TO_US = (-3, 1, 2)
PEER_REPLY_ROUTE = "ksr_peer_reply"  # replies on a leg relayed for a cluster peer (kamailio_app.py)
MEDIA_BRANCH_ROUTE = apply.MEDIA_BRANCH_ROUTE
MEDIA_DONE = 8  # message flag: the dialog's end deleted the media session already (its MOS is on the CDR)


def detect_nat(method: str) -> bool:
    """A request from behind a NAT: replies go back where it came from, its Contact is fixed for the way back."""
    KSR.force_rport()
    if KSR.nathelper.nat_uac_test(NAT_TEST) <= 0:
        return False
    KSR.setflag(FLT_NATS)
    if method == "REGISTER":
        KSR.nathelper.fix_nated_register()
    elif method in ("INVITE", "SUBSCRIBE"):
        KSR.nathelper.set_contact_alias()
    return True


def nated_in_dialog(method: str, clustered: bool = False) -> bool:
    """An in-dialog request from behind a NAT: its Contact fixed (re-INVITE, UPDATE), the R-URI's alias applied."""
    nated = KSR.nathelper.nat_uac_test(NAT_TEST) > 0
    if nated:
        KSR.setflag(FLT_NATS)
        if method in ("INVITE", "UPDATE"):
            KSR.nathelper.set_contact_alias()
    if clustered:
        follow_alias()
    else:  # a single node is the last hop of its phones' route sets: no Route beyond it comes first
        KSR.nathelper.handle_ruri_alias()
    return nated


def follow_alias() -> None:
    """The R-URI's NAT alias says where the phone is — unless loose_route left a next hop beyond this node (another
    node of the cluster holds the phone's binding: its Route comes first)."""
    if not read.one("$du"):
        KSR.nathelper.handle_ruri_alias()


def relayed_for_peer() -> bool:
    """After loose_route: this request belongs to a call leg this node only relays for a cluster peer (its record-route
    carries the mark, kemi.policy.cluster.PEER_MARK)."""
    return KSR.rr.check_route_param(PEER_MARK) > 0


def relay_for_peer() -> bool:
    """A new request a cluster peer sends through this node on a phone's Path: its Route to this node consumed (the
    path module points it at the phone's binding or connection), record-routed with the mark, replies' Contacts fixed
    for the NAT. False: it names this node in no Route — not a peer's relay."""
    if KSR.rr.loose_route() not in PRELOADED_TO_US:
        return False
    KSR.rr.add_rr_param(";" + PEER_MARK)
    KSR.rr.record_route()
    KSR.tm.t_on_reply(PEER_REPLY_ROUTE)
    return True


def alias_reply() -> None:
    """A reply on a leg relayed for a peer: its Contact gets the alias of where it came from (the phone's binding)."""
    KSR.nathelper.set_contact_alias()


def nated_reply(bflags: int) -> bool:
    """A reply from a NATed branch (or one whose Contact says so): its Contact fixed."""
    nated = bool(bflags & (1 << FLB_NATB)) or KSR.nathelper.nat_uac_test(1) > 0
    if nated:
        KSR.nathelper.set_contact_alias()
    return nated


def mark_nated_registration(pinged: bool = True) -> None:
    """A registration from behind a NAT; `pinged`: the node keeps its binding open with OPTIONS (UDP only: a phone on a
    connection keeps that alive itself, and nathelper's pings of a connection's contact fail every interval)."""
    KSR.setbflag(FLB_NATB)
    if pinged:
        KSR.setbflag(FLB_NATSIPPING)


def media(nated: bool) -> None:
    """Offer / answer / delete the media session with RTPengine, as the message says (a plain call)."""
    KSR.rtpengine.rtpengine_manage(rtpengine_flags(nated))


def offer(plan: MediaPlan, nated: bool) -> None:
    """A new call's offer. Plain RTP both ways (most calls): offered here, once for all its branches. Otherwise each
    branch gets its own offer in the branch route (`media_branch`: a trunk or the media server plain, a phone as the
    plan says) and the replies are told the plan (AVP_MEDIA)."""
    if plan.plain:
        media(nated)
        return
    KSR.pv.sets(f"$avp({AVP_MEDIA})", "i:" + plan.code())
    KSR.tm.t_on_branch(MEDIA_BRANCH_ROUTE)


def media_branch(plain_peers: frozenset) -> None:
    """The branch route of a call not plain RTP: this branch's offer, for where it goes (kemi.policy.media)."""
    avp, ruri, dst = read.several(f"$avp({AVP_MEDIA})", "$ru", "$du")
    plan = policy_media.parse_plan(avp.partition(":")[2])
    if plan is None:  # not one of ours (or lost): as a plain call
        media(KSR.isflagset(FLT_NATS))
        return
    transport = policy_media.uri_transport(dst, ruri)
    mode = policy_media.branch_mode(plan, *policy_media.uri_host_port(ruri), plain_peers, transport)
    KSR.rtpengine.rtpengine_offer(policy_media.with_nat(policy_media.flags(mode, plan.caller), KSR.isflagset(FLT_NATS)))


def answer(avp: str, nated: bool, code: int) -> None:
    """A reply's SDP: answered as the transaction's plan says (AVP_MEDIA, read with the reply; '' : plain). A new
    call's 2xx keeps the plan it ends up with for the dialog's later offers (re-INVITEs, hold). An explicit answer:
    after offers made in the branch route, rtpengine_manage took the reply for an offer (measured: it answered an SDES
    offer with every suite of its own, which the phone refused)."""
    if not avp:
        media(nated)
        return
    flags, keep = policy_media.answer(avp, policy_media.offer_profile(read.body()), code)
    KSR.rtpengine.rtpengine_answer(policy_media.with_nat(flags, nated))
    if keep is not None:
        KSR.pv.sets(f"$dlg_var({DLG_MEDIA})", keep)


def media_in_dialog(method: str, nated: bool, content_type: str | None = None) -> None:
    """`content_type`: lower-cased, when the caller has it (else from the request's read). An offer in a call not plain
    RTP (the dialog keeps its plan) goes the way its sender is: the caller's to the callee's mode, and back."""
    if method == "BYE":
        if not KSR.isflagset(MEDIA_DONE):
            media(nated)
        return
    if not read.has_sdp(content_type):
        return
    plan_code = read.dlg_var(DLG_MEDIA)
    how = policy_media.in_dialog(plan_code, KSR.rr.is_direction("downstream") > 0, method) if plan_code else None
    if how is None:
        media(nated)
        return
    flags, tell = how
    KSR.pv.sets(f"$avp({AVP_MEDIA})", tell)
    KSR.rtpengine.rtpengine_manage(policy_media.with_nat(flags, nated))


def music_on_hold(music_file: str) -> None:
    """An in-dialog INVITE with SDP, its offer given to RTPengine: the party it puts on hold hears music (RTPengine
    plays the file to it), and the music stops when a later offer takes it off hold (kemi.policy.media)."""
    body, to_tag = read.several("$rb", "$tt")
    what = hold_music(hold_offer(body), read.dlg_var(MUSIC_VAR), to_tag)
    if what is None or not is_word(what[1]):  # a tag in a flag string must not add flags
        return
    verb, tag = what
    if verb == "play":
        if KSR.rtpengine.play_media(f"from-tag={tag} file={music_file} repeat-times=10000") > 0:
            KSR.pv.sets(f"$dlg_var({MUSIC_VAR})", tag)
    else:
        KSR.rtpengine.stop_media(f"from-tag={tag}")
        KSR.pv.sets(f"$dlg_var({MUSIC_VAR})", "")


def media_off() -> None:
    """The call failed: its media session is deleted."""
    KSR.rtpengine.rtpengine_delete0()


def cancel_media() -> None:
    KSR.rtpengine.rtpengine_manage("")


def dialog_media_quality(call_id: str, from_tag: str) -> dict[str, str] | None:
    """Delete the dialog's media session now (whoever or whatever ended it) and keep RTPengine's verdict on it:
    average MOS, jitter, loss and round trip of the call (from RTCP; empty when the phones sent none)."""
    if not (
        is_word(call_id) and is_word(from_tag)
    ):  # a value in a flag string must not add flags: left to RTPengine's timeout
        KSR.warn(
            "callmanager: media session of a dialog with an unusual Call-ID or tag left to RTPengine's timeout: "
            f"{call_id[:80]!a}\n"
        )
        return None
    KSR.rtpengine.rtpengine_delete(f"call-id={call_id} from-tag={from_tag}")
    KSR.setflag(MEDIA_DONE)  # a BYE that ended it: its own rtpengine_manage would delete the session a second time
    return read.media_quality()


def open_dialog(plan: DialogPlan) -> None:
    """Record-route, the dialog (its timeout runs dialog:timeout first), as the policy planned it
    (kemi.policy.call.dialog_plan): its lifetime, keep-alives, the emergency mark."""
    KSR.rr.record_route()
    KSR.pv.sets("$dlg_ctx(timeout_route)", TIMEOUT_EVENT)
    dialog_lifetime(plan.lifetime_s)
    KSR.dialog.dlg_manage()
    if plan.emergency:
        apply.set_dlg_var(DLG_EMERGENCY, "1")
    if plan.keepalive:  # a call whose BYE was lost ends (call_ended)
        KSR.dialog.dlg_set_property("ka-src")
        KSR.dialog.dlg_set_property("ka-dst")


def dialog_lifetime(lifetime_s: int | None) -> None:
    if lifetime_s:
        KSR.pv.seti(f"$avp({AVP_DIALOG_TIMEOUT})", lifetime_s)


def track(user_ids: tuple[int, ...]) -> None:
    """Busy-on-busy users and agents: on a call while this dialog lives (dialog profile `calls`, and the dialog's
    list)."""
    for user_id in user_ids:
        apply.track_call(user_id)
    if user_ids:
        apply.set_dlg_var(DLG_TRACKED, ",".join(map(str, user_ids)))


def ring_limits(fr_ms: int, invite_ms: int, max_lifetime_ms: int = 0) -> None:
    KSR.tm.t_set_fr(fr_ms, invite_ms)
    if max_lifetime_ms:
        KSR.tm.t_set_max_lifetime(max_lifetime_ms, 0)


def reset_ring_limits() -> None:
    KSR.tm.t_reset_fr()


def loose_route() -> bool:
    return KSR.rr.loose_route() > 0


def has_transaction() -> bool:
    return KSR.tm.t_check_trans() > 0


def is_retransmission() -> bool:
    """A retransmission of a request whose transaction exists: tm answers it (its last reply again) or absorbs it."""
    if KSR.tmx.t_precheck_trans() > 0:
        KSR.tm.t_check_trans()
        return True
    return KSR.tm.t_check_trans() == 0


def is_cancelled() -> bool:
    return KSR.tm.t_is_canceled() > 0


def reply_in_transaction(code: int, reason: str) -> None:
    KSR.tm.t_reply(code, reason)


def select_dialog(call_id: str, from_tag: str, to_tag: str) -> bool:
    """Make that dialog the current one (False: it is over already)."""
    return KSR.dialog.dlg_get(call_id, from_tag, to_tag) >= 0


def bye_all() -> None:
    """The current dialog's BYEs to both sides."""
    KSR.dialog.dlg_bye("all")
