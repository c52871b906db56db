"""Kamailio's figures at scrape time, read over its JSON-RPC: one `stats.get_statistics all` and one `core.psx`.

Never raises: a Kamailio that does not answer shows as callmanager_kamailio_up 0 and the scrape succeeds.
"""

from __future__ import annotations

import logging
import os
import re

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger("callmanager.metrics")

METHODS = (
    "invite",
    "ack",
    "bye",
    "cancel",
    "register",
    "options",
    "message",
    "notify",
    "subscribe",
    "publish",
    "refer",
    "prack",
    "update",
    "info",
)
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "6xx")
# errors Kamailio counts, by where: a request or reply it could not parse or forward, a stateless reply it failed to
# send
ERRORS = {
    "core:err_requests": "request_not_forwarded",
    "core:err_replies": "reply_not_forwarded",
    "core:drop_requests": "request_dropped",
    "core:drop_replies": "reply_dropped",
    "core:bad_msg_hdr": "bad_header",
    "core:bad_URIs_rcvd": "bad_uri",
    "sl:failures": "sl_send_failed",
    "sl:sent_err_replies": "sl_error_reply",
    "core:unsupported_methods": "unsupported_method",
}
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_statistics(lines) -> dict[str, float]:
    """`["core:rcv_requests = 12", ...]` -> {"core:rcv_requests": 12.0}; lines that are not `name = number` are
    skipped."""
    out: dict[str, float] = {}
    for line in lines or ():
        name, sep, value = str(line).partition(" = ")
        if sep:
            try:
                out[name.strip()] = float(value)
            except ValueError:
                continue
    return out


def process_role(description: str) -> str:
    """A bounded label for a Kamailio process: "udp receiver child=0 sock=127.0.0.1:5060" -> "udp_receiver"."""
    desc = re.sub(r"\(.*?\)", "", description.split(" child=")[0].split(" sock=")[0]).strip().lower()
    if desc.startswith("rtimer exec"):
        return "rtimer"
    return re.sub(r"[^a-z0-9]+", "_", desc).strip("_") or "other"


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a local process, from /proc (None when it is not on this host)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


class KamailioCollector:
    def __init__(self, rpc, *, local: bool = True, dmq_peers: int = 0):
        self.rpc = rpc  # controlplane.adapters.kamailio_rpc.KamailioRpc (or anything with .call(method, *params))
        self.local = local  # Kamailio runs on this host: its processes' CPU time can be read from /proc
        self.dmq_peers = dmq_peers  # the cluster's other SIP nodes this node replicates with (0: a single node)

    def collect(self):
        up = GaugeMetricFamily("callmanager_kamailio_up", "1 when Kamailio answered its JSON-RPC during this scrape")
        try:
            stats = parse_statistics(self.rpc.call("stats.get_statistics", "all"))
            processes = self.rpc.call("core.psx") if self.local else []
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail
            log.debug("Kamailio metrics unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self._families(stats)
        yield from self._processes(processes or [])
        yield from self._dmq()

    def _dmq(self):
        """The cluster's replication peers as DMQ sees them (it pings them every minute): how many are in each state,
        next to how many the node is configured with (0 and 0 on a single node)."""
        configured = GaugeMetricFamily(
            "callmanager_dmq_peers_configured", "Other SIP nodes this node replicates registrations and flags with"
        )
        configured.add_metric([], self.dmq_peers)
        yield configured
        try:
            nodes = self.rpc.dmq_peers() if self.dmq_peers else []  # a single node: none (and no DMQ to ask)
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail
            log.debug("DMQ peers unavailable: %s", exc)
            return
        states: dict[str, int] = {"active": 0}
        for n in nodes:
            states[n["state"]] = states.get(n["state"], 0) + 1
        peers = GaugeMetricFamily(
            "callmanager_dmq_peers", "Other SIP nodes known to DMQ, by state (active: replicating)", labels=["state"]
        )
        for state, count in sorted(states.items()):
            peers.add_metric([state], count)
        yield peers

    @staticmethod
    def _families(st: dict[str, float]):
        def gauge(name, doc, key):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], st.get(key, 0.0))
            return g

        yield gauge(
            "callmanager_kamailio_registered_users",
            "Users (AoRs) with at least one registered contact",
            "usrloc:registered_users",
        )
        yield gauge(
            "callmanager_kamailio_registered_contacts", "Registered contacts (devices)", "usrloc:location_contacts"
        )
        dialogs = GaugeMetricFamily(
            "callmanager_kamailio_dialogs", "Dialogs now, by state (early: ringing; active: answered)", labels=["state"]
        )
        dialogs.add_metric(["early"], st.get("dialog:early_dialogs", 0.0))
        dialogs.add_metric(["active"], st.get("dialog:active_dialogs", 0.0))
        yield dialogs
        ended = CounterMetricFamily("callmanager_kamailio_dialogs_ended", "Dialogs ended, by how", labels=["how"])
        for how, key in (
            ("processed", "dialog:processed_dialogs"),
            ("failed", "dialog:failed_dialogs"),
            ("expired", "dialog:expired_dialogs"),
        ):
            ended.add_metric([how], st.get(key, 0.0))
        yield ended
        yield gauge(
            "callmanager_kamailio_transactions_in_progress", "SIP transactions in progress", "tmx:active_transactions"
        )
        tx = CounterMetricFamily(
            "callmanager_kamailio_transactions",
            "SIP transactions created, by side (uas: received, uac: sent)",
            labels=["side"],
        )
        tx.add_metric(["uas"], st.get("tmx:UAS_transactions", 0.0))
        tx.add_metric(["uac"], st.get("tmx:UAC_transactions", 0.0))
        yield tx
        done = CounterMetricFamily(
            "callmanager_kamailio_transaction_replies",
            "Transactions completed, by the class of their final reply",
            labels=["class"],
        )
        for c in ("2xx", "3xx", "4xx", "5xx", "6xx"):
            done.add_metric([c], st.get(f"tmx:{c}_transactions", 0.0))
        yield done
        req = CounterMetricFamily(
            "callmanager_kamailio_requests", "SIP requests received, by method", labels=["method"]
        )
        for m in METHODS:
            req.add_metric([m.upper()], st.get(f"core:rcv_requests_{m}", 0.0))
        other = st.get("core:rcv_requests", 0.0) - sum(st.get(f"core:rcv_requests_{m}", 0.0) for m in METHODS)
        req.add_metric(["other"], max(0.0, other))
        yield req
        rpl = CounterMetricFamily(
            "callmanager_kamailio_replies_received", "SIP replies received, by class", labels=["class"]
        )
        for c in CLASSES:
            rpl.add_metric([c], st.get(f"core:rcv_replies_{c}", 0.0))
        yield rpl
        sl = CounterMetricFamily(
            "callmanager_kamailio_sl_replies", "Stateless replies sent, by class", labels=["class"]
        )
        for c in CLASSES:
            sl.add_metric([c], st.get(f"sl:{c}_replies", 0.0))
        yield sl
        err = CounterMetricFamily("callmanager_kamailio_errors", "Errors Kamailio counted, by kind", labels=["kind"])
        for key, kind in ERRORS.items():
            err.add_metric([kind], st.get(key, 0.0))
        yield err
        regs = CounterMetricFamily(
            "callmanager_kamailio_registrations", "REGISTERs the registrar saved or refused", labels=["outcome"]
        )
        regs.add_metric(["accepted"], st.get("registrar:accepted_regs", 0.0))
        regs.add_metric(["rejected"], st.get("registrar:rejected_regs", 0.0))
        yield regs
        for name, doc, key in (
            ("used", "Shared memory in use", "shmem:real_used_size"),
            ("free", "Shared memory free", "shmem:free_size"),
            ("size", "Shared memory configured", "shmem:total_size"),
            ("max_used", "Most shared memory ever in use", "shmem:max_used_size"),
        ):
            yield gauge(f"callmanager_kamailio_shm_{name}_bytes", doc, key)
        yield gauge(
            "callmanager_kamailio_tcp_connections", "TCP/TLS connections open", "tcp:current_opened_connections"
        )

    def _processes(self, processes: list[dict]):
        count = GaugeMetricFamily("callmanager_kamailio_processes", "Kamailio processes, by role", labels=["role"])
        cpu = CounterMetricFamily(
            "callmanager_kamailio_cpu_seconds",
            "CPU time of Kamailio's processes, by role (its worker load: "
            "rate() / processes of the role is the busy share of one worker)",
            labels=["role"],
        )
        roles: dict[str, list[float]] = {}
        for p in processes:
            role = process_role(str(p.get("DSC", "")))
            seconds = process_cpu_seconds(int(p.get("PID", 0) or 0))
            slot = roles.setdefault(role, [0, 0.0])
            slot[0] += 1
            slot[1] += seconds or 0.0
        for role, (n, seconds) in sorted(roles.items()):
            count.add_metric([role], n)
            cpu.add_metric([role], seconds)
        yield count
        yield cpu
