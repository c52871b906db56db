"""RTPengine's figures at scrape time, from one ng `statistics` command.

Never raises: an RTPengine that does not answer shows as callmanager_rtpengine_up 0 and the scrape succeeds.
"""

from __future__ import annotations

import logging

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

log = logging.getLogger("callmanager.metrics")

ENDED = {
    "regularterminatedsessions": "regular",
    "forcedterminatedsessions": "forced",
    "timeoutsessions": "timeout",
    "silenttimeoutsessions": "silent_timeout",
    "finaltimeoutsessions": "final_timeout",
    "offertimeoutsessions": "offer_timeout",
}


def _f(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


class RtpengineCollector:
    def __init__(self, ng):
        self.ng = ng  # controlplane.adapters.rtpengine_ng.NgClient (or anything with .statistics())

    def collect(self):
        up = GaugeMetricFamily(
            "callmanager_rtpengine_up", "1 when RTPengine answered its ng statistics command during this scrape"
        )
        try:
            st = self.ng.statistics()
            if not isinstance(st, dict) or "currentstatistics" not in st:
                raise ValueError("no statistics in RTPengine's reply")
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail
            log.debug("RTPengine metrics unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        cur, tot = st.get("currentstatistics", {}), st.get("totalstatistics", {})
        sessions = GaugeMetricFamily(
            "callmanager_rtpengine_sessions", "Media sessions (calls) now, by owner", labels=["owner"]
        )
        sessions.add_metric(["own"], _f(cur.get("sessionsown")))
        sessions.add_metric(["foreign"], _f(cur.get("sessionsforeign")))
        yield sessions
        g = GaugeMetricFamily("callmanager_rtpengine_transcoded_media", "Media streams being transcoded now")
        g.add_metric([], _f(cur.get("transcodedmedia")))
        yield g
        for name, doc, key in (
            ("packets_relayed", "RTP/RTCP packets relayed", "relayedpackets"),
            ("bytes_relayed", "Bytes of media relayed", "relayedbytes"),
            ("packet_errors", "Packets RTPengine could not relay", "relayedpacketerrors"),
            ("sessions_managed", "Media sessions created", "managedsessions"),
            ("sessions_rejected", "Media sessions refused", "rejectedsessions"),
            ("one_way_streams", "Streams that carried media one way only", "onewaystreams"),
            ("zero_way_streams", "Streams that carried no media at all", "zerowaystreams"),
        ):
            c = CounterMetricFamily(f"callmanager_rtpengine_{name}", doc)
            c.add_metric([], _f(tot.get(key)))
            yield c
        ended = CounterMetricFamily(
            "callmanager_rtpengine_sessions_ended",
            "Media sessions ended, by how (timeouts: media stopped)",
            labels=["how"],
        )
        for key, how in ENDED.items():
            ended.add_metric([how], _f(tot.get(key)))
        yield ended
        mos = st.get("mos", {})
        summary = SummaryMetricFamily(
            "callmanager_rtpengine_mos", "MOS of the calls RTPengine scored (from RTCP), sum and count"
        )
        summary.add_metric([], count_value=_f(mos.get("mos_samples_total")), sum_value=_f(mos.get("mos_total")))
        yield summary
        used = GaugeMetricFamily(
            "callmanager_rtpengine_ports_used", "Media ports in use, by interface", labels=["interface"]
        )
        size = GaugeMetricFamily(
            "callmanager_rtpengine_ports", "Media ports configured, by interface", labels=["interface"]
        )
        for itf in st.get("interfaces", []) or []:
            ports = itf.get("ports", {}) or {}
            name = f"{itf.get('name', 'default')}/{itf.get('address', '')}"
            used.add_metric([name], _f(ports.get("used")))
            size.add_metric([name], _f(ports.get("totals")))
        yield used
        yield size
