"""The shared-memory contract between the Python routing, Kamailio's cfg and the control plane: every htable
(name, size, expiry, key formats), dialog variable and AVP the node uses, defined once.

Kamailio's cfg gets the tables and AVP names from here as `#!define`s (`cfg_defines`, rendered into the node's
cfg by `controlplane.node.render`); the KEMI shell and the control plane import the names and key helpers.
A table or key written anywhere as a string literal is a bug: grep for this module's names instead.
"""

from __future__ import annotations

from typing import NamedTuple


class Table(NamedTuple):
    name: str
    size: int  # 2^size slots
    autoexpire_s: int = 0  # 0: items stay until removed
    counter: bool = False  # initval=0: an absent item reads as 0 (counters, flags)
    about: str = ""
    replicated: bool = False  # in a cluster, every change goes to the other SIP nodes (DMQ; docs/cluster.md)

    def spec(self, autoexpire_s: int | None = None, cluster: bool = False) -> str:
        """The htable module's definition, e.g. `acd=>size=10;` (`autoexpire_s`: a setting's value instead;
        `cluster`: the node replicates, so a replicated table says so)."""
        expire = self.autoexpire_s if autoexpire_s is None else autoexpire_s
        return (
            f"{self.name}=>size={self.size};"
            + (f"autoexpire={expire};" if expire else "")
            + ("initval=0;" if self.counter else "")
            + ("dmqreplicate=1;" if cluster and self.replicated else "")
        )


# ---------------------------------------------------------------- htables
AUTHFAIL = Table("authfail", 12, 900, True, "failed authentications per account, source and method (edge)")
ENDED = Table("cmended", 14, 60, True, "<h_entry>:<h_id> of calls whose end was accounted (once per dialog)")
END_REQUESTS = Table("cmend", 4, 60, False, "<h_entry>:<h_id> = JSON [Call-ID, From tag, To tag, reason]: calls to end")
ERRORS = Table("cmerr", 4, 0, True, "unexpected exceptions in the Python routing, by route")
BAN = Table(
    "ban",
    12,
    300,
    False,
    "banned sources: <ip> = <cause>:<end> (autoexpire: the ban time, edge_ban_s)",
    replicated=True,
)
EDGE = Table("edge", 14, 30, True, "request counters per source and window bucket (autoexpire: 3 windows)")
AUTHLOCK = Table(
    "authlock",
    10,
    86400,
    True,
    "accounts' cool-downs: until:<user@realm>, n:<account>, seen:<account>:<ip>",
    replicated=True,
)
FRAUD = Table("fraud", 12, 7200, True, "call attempts out: u<user>:m<minute>, u<user>:h<hour>, t<tenant>:...")
FRAUD_CALLS = Table("fraudcalls", 12, 0, True, "answered calls out in progress: u<user>, t<tenant>")
FRAUD_RUNNING = Table(
    "fraudrun", 12, 86400, False, "ACKed calls out: <h_entry>:<h_id> = tenant:user:class:rate:answered at"
)
STATUS = Table(
    "status",
    10,
    0,
    False,
    "users' status (dnd, away, unreachable; absent: online): u<user>; groups' g<group>",
    replicated=True,
)
NODE = Table("node", 2, 0, False, "drain = 1 while the node is drained (node.drain)")
SHARED = Table("cmshared", 2, 0, True, "the data center's shared counters (Redis): fail = commands that failed")
ACD = Table(
    "acd",
    10,
    0,
    False,
    "hunt groups: out:g<group>:u<user>, ptr:g<group>:r<ring>, end:u<user>, cb:<number>, ver:live",
    replicated=True,
)
OFFERS = Table("acdoffer", 10, 300, True, "offers in progress per agent u<user> (claimed when the increment made it 1)")
BUSY = Table("acdbusy", 10, 0, True, "calls in progress per tracked user / agent u<user>")
QUEUE = Table("acdq", 8, 0, True, "waiting calls g<group>:<tindex>:<tlabel> = priority:since:until; n:g<group>; n:all")
ANSWERED = Table("acdans", 12, 40, True, "group calls answered: <Call-ID> -> 200s handled (the first one counts)")
REGISTERED = Table("acdreg", 10, 30, False, "agents with a registered device: u<user> = 1 (refreshed every 5 s)")

TABLES = (
    AUTHFAIL,
    ENDED,
    END_REQUESTS,
    ERRORS,
    BAN,
    EDGE,
    AUTHLOCK,
    FRAUD,
    FRAUD_CALLS,
    FRAUD_RUNNING,
    STATUS,
    NODE,
    SHARED,
    ACD,
    OFFERS,
    BUSY,
    QUEUE,
    ANSWERED,
    REGISTERED,
)


# ---------------------------------------------------------------- keys
def user_key(user_id: int | str) -> str:
    """u<user>: a user's item in STATUS, OFFERS, BUSY, REGISTERED, FRAUD_CALLS."""
    return f"u{user_id}"


def agent_end_key(user_id: int | str) -> str:
    """ACD end:u<user> = <end of the last group call>:<end of wrap-up> (longest idle and wrap-up in one read)."""
    return f"end:u{user_id}"


def logged_out_key(group_id: int | str, user_id: int | str) -> str:
    """ACD out:g<group>:u<user> = 1: the member logged out of the group."""
    return f"out:g{group_id}:u{user_id}"


def ring_pointer_key(group_id: int | str, ring: int) -> str:
    """ACD ptr:g<group>:r<ring>: the member a circular ring offered last."""
    return f"ptr:g{group_id}:r{ring}"


def callback_key(number: str) -> str:
    """ACD cb:<number> = <agent>:<until>: an agent called this number out (callback recognition)."""
    return f"cb:{number}"


def queue_key(group_id: int | str, index: int | str, label: int | str) -> str:
    """QUEUE g<group>:<tindex>:<tlabel>: a waiting call (its suspended transaction)."""
    return f"g{group_id}:{index}:{label}"


def queue_count_key(group_id: int | str) -> str:
    """QUEUE n:g<group>: how many calls wait in the group."""
    return f"n:g{group_id}"


def queue_average_key(group_id: int | str) -> str:
    """QUEUE w:g<group> = <seconds>:<calls>: the group's average wait of calls connected from its queue
    (kemi.policy.queue.averaged)."""
    return f"w:g{group_id}"


LIVE_VERSION = "ver:live"  # ACD: changed by whoever changes statuses or log-ins: workers read them again
QUEUE_WAITING = "n:all"  # QUEUE: calls waiting in any group
DRAIN = "drain"  # NODE
SHARED_FAILURES = "fail"  # SHARED: Redis commands that failed (the node counted on its own instead)


# ---------------------------------------------------------------- dialog profiles
PROFILE_CALLS = (
    "calls"  # with value u<user>: the user's calls in progress (busy-on-busy); kamailio.cfg profiles_with_value
)

# ---------------------------------------------------------------- dialog variables
DLG_CALL = "cm_ctx"  # the call's state (kemi.policy.callstate.CallState document), also on the transaction as an AVP
DLG_ANSWER = "cm_answer_ts"  # "<answered at>/<first rang at>", epoch seconds
DLG_AGENT = "cm_agent"  # "<group>:<wrap-up seconds>:<user>": the agent who answered a group call
DLG_TRACKED = "cm_busy"  # users on this call (busy-on-busy), comma-separated
DLG_EMERGENCY = "cm_em"  # "1" on an emergency call, which no timer of the node ends
DLG_FRAUD = "cm_fraud"  # "tenant:user:class:price per minute" of a call out under the fraud limits
DLG_MEDIA = "cm_media"  # "<caller mode>><callee mode>" of a call not plain RTP both ways (kemi.policy.media)

# ---------------------------------------------------------------- AVPs (transaction)
AVP_CALL = DLG_CALL
AVP_RANG = "cm_rang"  # when a device of the call first rang (180/183)
AVP_GROUP_MARK = "cm_grp"  # "<group>:<wrap-up>:<members offered now>", read with every reply of a group call
AVP_MEDIA = "cm_media"  # what the replies' SDP is answered with (kemi.policy.media.answer); absent: plain RTP
AVP_DIALOG_TIMEOUT = "cm_dlgto"  # the dialog module's timeout_avp
AVP_TRUNK_USER, AVP_TRUNK_PASSWORD, AVP_TRUNK_REALM = "cm_auser", "cm_apass", "cm_arealm"  # uac's auth_*_avp
AVP_MOS, AVP_JITTER, AVP_LOSS, AVP_RTT = "cm_mos", "cm_jitter", "cm_loss", "cm_rtt"  # rtpengine's mos_average_*_pv

TIMEOUT_EVENT = (
    "cm_timeout"  # $dlg_ctx(timeout_route): with it the dialog module runs ksr_dialog_event("dialog:timeout")
)


def cfg_defines(ban_s: int | None = None, edge_window_s: int | None = None, cluster: bool = False) -> dict[str, str]:
    """`#!define` name -> value for Kamailio's cfg: HT_<TABLE> per htable (ban and edge expiries from the node's
    settings; `cluster`: the replicated tables replicate) and AVP_<NAME> for the AVPs modules are told about."""
    expiry = {BAN.name: ban_s, EDGE.name: 3 * edge_window_s if edge_window_s else None}
    defines = {f"HT_{t.name.upper()}": f'"{t.spec(expiry.get(t.name), cluster)}"' for t in TABLES}
    for name in ("DIALOG_TIMEOUT", "TRUNK_USER", "TRUNK_PASSWORD", "TRUNK_REALM", "MOS", "JITTER", "LOSS", "RTT"):
        defines[f"AVP_{name}"] = f'"$avp({globals()["AVP_" + name]})"'
    return defines
