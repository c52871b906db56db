"""callmanager's Grafana dashboards as code (grafana-foundation-sdk). The JSON under grafana/dashboards/ is generated
from this file and committed; `make test` checks that it matches.

    .venv/bin/python grafana/dashboards.py           # write grafana/dashboards/*.json
    .venv/bin/python grafana/dashboards.py --check   # exit 1 if a committed file differs from the code

docs/noc.md explains every panel and what the NOC does when it turns red.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).resolve().parent / "dashboards"
DS = dm.DataSourceRef(type_val="prometheus", uid="callmanager-prometheus")  # provisioning/datasources/callmanager.yml
NODE = 'datacenter=~"$datacenter", node=~"$node"'  # every query is filtered by the dashboard's data center and node


def q(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(DS)
    return query.instant() if instant else query


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([dm.Threshold(value=v, color=c) for v, c in steps])


def graph(title: str, desc: str, *queries: prometheus.Dataquery, unit: str = "short", w: int = 12, h: int = 8,
          min_val: float | None = None, max_val: float | None = None) -> timeseries.Panel:
    p = timeseries.Panel().title(title).description(desc).datasource(DS).unit(unit).span(w).height(h)
    for query in queries:
        p = p.with_target(query)
    if min_val is not None:
        p = p.min(min_val)
    if max_val is not None:
        p = p.max(max_val)
    return p


def big(title: str, desc: str, query: prometheus.Dataquery, *, unit: str = "short", steps=((None, "green"),), w: int = 4,
        h: int = 4, decimals: float | None = None) -> stat.Panel:
    p = (stat.Panel().title(title).description(desc).datasource(DS).unit(unit).span(w).height(h).with_target(query)
         .thresholds(thresholds(*steps)).color_mode(cm.BigValueColorMode.BACKGROUND).graph_mode(cm.BigValueGraphMode.AREA)
         .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"])))
    return p.decimals(decimals) if decimals is not None else p


def variables(d: db.Dashboard, *extra: db.QueryVariable) -> db.Dashboard:
    d = d.with_variable(db.QueryVariable("datacenter").label("Data center").datasource(DS)
                        .query("label_values(callmanager_kamailio_up, datacenter)").multi(True).include_all(True).refresh(
                            dm.VariableRefresh.ON_TIME_RANGE_CHANGED))
    d = d.with_variable(db.QueryVariable("node").label("Node").datasource(DS)
                        .query('label_values(callmanager_kamailio_up{datacenter=~"$datacenter"}, node)').multi(True).include_all(True)
                        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED))
    for v in extra:
        d = d.with_variable(v)
    return d


def base(uid: str, title: str, desc: str, tags: list[str]) -> db.Dashboard:
    return (db.Dashboard(title).uid(uid).description(desc).tags(["callmanager", *tags]).refresh("30s").time("now-6h", "now")
            .timezone("utc").editable())


# ---------------------------------------------------------------- NOC overview

def noc_overview() -> db.Dashboard:
    d = variables(base("callmanager-noc", "callmanager — NOC overview",
                       "Per data center and node: up, registrations, call rate, active calls, ASR, MOS, alerts.", ["noc"]))
    up_steps = ((None, "red"), (1, "green"))
    d = (d.with_row(db.Row("Health"))
         .with_panel(big("Control planes up", "Nodes whose /metrics Prometheus scraped last time (red: a node is down).",
                         q(f'sum(up{{job="callmanager", {NODE}}})', instant=True), steps=up_steps))
         .with_panel(big("Kamailio up", "Nodes whose Kamailio answered (SIP).", q(f"sum(callmanager_kamailio_up{{{NODE}}})", instant=True),
                         steps=up_steps))
         .with_panel(big("RTPengine up", "Nodes whose RTPengine answered (media).", q(f"sum(callmanager_rtpengine_up{{{NODE}}})", instant=True),
                         steps=up_steps))
         .with_panel(big("Alerts firing", "callmanager alerts firing now (Prometheus /alerts lists them).",
                         q('count(ALERTS{alertstate="firing", alertname=~"Callmanager.*"}) or vector(0)', instant=True),
                         steps=((None, "green"), (1, "red"))))
         .with_panel(big("ASR (15 min)", "Answered / all calls over 15 minutes (answer-seizure ratio).",
                         q(f"avg(callmanager:asr:ratio_rate15m{{{NODE}}})", instant=True), unit="percentunit",
                         steps=((None, "red"), (0.5, "orange"), (0.7, "green"))))
         .with_panel(big("MOS (5 min)", "Average MOS of the calls scored in the last 5 minutes (target 4.3, G.711).",
                         q(f"avg(callmanager:media_mos:avg5m{{{NODE}}})", instant=True), decimals=2,
                         steps=((None, "red"), (4.0, "orange"), (4.3, "green"))))
         .with_row(db.Row("Traffic"))
         .with_panel(graph("Registered devices", "Registered contacts per node (a sharp drop alerts), and REGISTERs refused for "
                           "their credentials per minute.",
                           q(f"sum by (datacenter, node) (callmanager_kamailio_registered_contacts{{{NODE}}})", "{{datacenter}}/{{node}}"),
                           q(f"sum by (datacenter, node) (rate(callmanager_registrations_failed_total{{{NODE}}}[5m])) * 60",
                             "failed/min {{node}}", "B"), w=8))
         .with_panel(graph("Call attempts per second (CPS)", "INVITEs received per second (new calls and re-INVITEs).",
                           q(f'sum by (datacenter, node) (rate(callmanager_kamailio_requests_total{{method="INVITE", {NODE}}}[1m]))',
                             "{{datacenter}}/{{node}}"), unit="reqps", w=8))
         .with_panel(graph("Active calls", "Answered calls in progress (Kamailio dialogs) and media sessions (RTPengine).",
                           q(f'sum by (datacenter, node) (callmanager_kamailio_dialogs{{state="active", {NODE}}})', "calls {{node}}"),
                           q(f'sum by (datacenter, node) (callmanager_rtpengine_sessions{{owner="own", {NODE}}})', "media {{node}}", "B"), w=8))
         .with_panel(graph("ASR by node", "Answer-seizure ratio over 15 minutes.",
                           q(f"callmanager:asr:ratio_rate15m{{{NODE}}}", "{{datacenter}}/{{node}}"), unit="percentunit", min_val=0, max_val=1, w=8))
         .with_panel(graph("Calls by disposition", "Calls ended per second, by how they ended.",
                           q(f"sum by (disposition) (rate(callmanager_calls_total{{{NODE}}}[5m]))", "{{disposition}}"), unit="reqps", w=8))
         .with_panel(graph("MOS by node", "Average MOS of scored calls (5 minutes); below 4.3 alerts.",
                           q(f"callmanager:media_mos:avg5m{{{NODE}}}", "{{datacenter}}/{{node}}"), min_val=1, max_val=5, w=8))
         .with_row(db.Row("Signalling and the node"))
         .with_panel(graph("SIP replies sent by class", "Final replies of transactions, per second, by class (5xx: trouble).",
                           q(f"sum by (class) (rate(callmanager_kamailio_transaction_replies_total{{{NODE}}}[5m]))", "{{class}}"),
                           q(f"sum by (class) (rate(callmanager_kamailio_sl_replies_total{{{NODE}}}[5m]))", "stateless {{class}}", "B"),
                           unit="reqps", w=8))
         .with_panel(graph("Post-dial delay p95", "95th percentile of the time from INVITE to ringing or answer.",
                           q(f"histogram_quantile(0.95, sum by (le, node) (rate(callmanager_call_post_dial_delay_seconds_bucket{{{NODE}}}[15m])))",
                             "{{node}}"), unit="s", w=8))
         .with_panel(graph("Kamailio worker load", "Busy share of the SIP workers (1 = every worker always busy).",
                           q(f'sum by (node) (rate(callmanager_kamailio_cpu_seconds_total{{role="udp_receiver", {NODE}}}[1m])) / '
                             f'sum by (node) (callmanager_kamailio_processes{{role="udp_receiver", {NODE}}})', "{{node}}"),
                           unit="percentunit", min_val=0, max_val=1, w=8))
         .with_panel(graph("Kamailio shared memory", "Shared memory in use / configured.",
                           q(f"callmanager_kamailio_shm_used_bytes{{{NODE}}} / callmanager_kamailio_shm_size_bytes{{{NODE}}}", "{{node}}"),
                           unit="percentunit", min_val=0, max_val=1, w=8))
         .with_panel(graph("Routing snapshot", "Age of the routing snapshot and how far the configuration is ahead of it (stale: > 0 for a minute).",
                           q(f"time() - callmanager_snapshot_published_timestamp_seconds{{{NODE}}}", "age {{node}}"),
                           q(f"callmanager_config_version{{{NODE}}} - callmanager_snapshot_version{{{NODE}}}", "versions behind {{node}}", "B"),
                           w=8))
         .with_panel(graph("CDR ingestion", "Oldest closed spool segment waiting, and the age of the newest CDR at ingestion.",
                           q(f"callmanager_cdr_spool_oldest_seconds{{{NODE}}}", "spool backlog {{node}}"),
                           q(f"callmanager_cdr_ingestion_lag_seconds{{{NODE}}}", "lag {{node}}", "B"), unit="s", w=8))
         .with_panel(graph("Admin API", "JSON-RPC requests per second by outcome, and the 95th percentile latency.",
                           q(f"sum by (outcome) (rate(callmanager_api_requests_total{{{NODE}}}[5m]))", "{{outcome}}"),
                           q(f"histogram_quantile(0.95, sum by (le) (rate(callmanager_api_request_duration_seconds_bucket{{{NODE}}}[5m])))",
                             "p95 latency (s)", "B"), w=12))
         .with_panel(graph("Kamailio errors", "Errors Kamailio counted, per second, by kind.",
                           q(f"sum by (kind) (rate(callmanager_kamailio_errors_total{{{NODE}}}[5m]))", "{{kind}}"), unit="reqps", w=12))
         .with_row(db.Row("Cluster"))
         .with_panel(graph("Replication peers (DMQ)", "Other SIP nodes each node replicates registrations and flags with: "
                           "active against configured (a gap for 3 minutes alerts; docs/cluster.md).",
                           q(f'sum by (datacenter, node) (callmanager_dmq_peers{{state="active", {NODE}}})', "active {{node}}"),
                           q(f"sum by (datacenter, node) (callmanager_dmq_peers_configured{{{NODE}}})", "configured {{node}}", "B"),
                           w=12))
         .with_panel(graph("Shared counters (Redis)", "Commands to the data center's Redis that failed, per minute: while "
                           "they fail the node counts the fraud limits on its own (per node; docs/cluster.md).",
                           q(f"sum by (datacenter, node) (rate(callmanager_shared_counters_failures_total{{{NODE}}}[5m])) * 60",
                             "{{datacenter}}/{{node}}"), w=12))
         .with_panel(graph("Database replicas", "How far each replica of the configuration database replays behind "
                           "the primary (seconds; over 30 s for 2 minutes alerts), and the replicas streaming.",
                           q(f"max by (replica) (callmanager_database_replica_lag_seconds{{{NODE}}})", "lag {{replica}}"),
                           q(f"max(callmanager_database_replicas{{{NODE}}})", "streaming", "B"), unit="s", w=12))
         .with_panel(graph("SIP pair's address (VRRP)", "Which node holds its data center's virtual address (1); the "
                           "nodes holding it per data center must be exactly 1 (0: no service through it, 2: split "
                           "brain; docs/cluster.md).",
                           q(f"callmanager_vip_held{{{NODE}}}", "{{datacenter}}/{{node}}"),
                           q(f"sum by (datacenter) (callmanager_vip_held{{{NODE}}})", "holders {{datacenter}}", "B"),
                           w=12))
         .with_panel(graph("Shared store (recordings, mailboxes)", "Changes made through other nodes (recordings "
                           "uploaded or recorded, messages heard or deleted) not yet applied to each node (0 when it "
                           "keeps up; behind for 2 minutes alerts), and those applied per minute (docs/cluster.md).",
                           q(f"max by (datacenter, node) (callmanager_shared_store_behind_changes{{{NODE}}})",
                             "behind {{datacenter}}/{{node}}"),
                           q(f"sum by (datacenter, node) (rate(callmanager_shared_store_changes_applied_total{{{NODE}}}[5m])) * 60",
                             "applied/min {{datacenter}}/{{node}}", "B"), w=12)))
    return d


# ---------------------------------------------------------------- media quality

def media_quality() -> db.Dashboard:
    d = variables(base("callmanager-media", "callmanager — media quality",
                       "MOS, jitter, loss and round trip of the calls (RTPengine's scores from RTCP, one per call), and the relay's load.",
                       ["noc", "media"]))
    hist = "sum by (le) (rate(callmanager_{m}_bucket{{{n}}}[15m]))"
    d = (d.with_panel(big("MOS (5 min)", "Average MOS of the calls scored in the last 5 minutes.",
                          q(f"avg(callmanager:media_mos:avg5m{{{NODE}}})", instant=True), decimals=2,
                          steps=((None, "red"), (4.0, "orange"), (4.3, "green"))))
         .with_panel(big("Worst 5 % of calls (MOS)", "The MOS below which the worst 5 % of the calls of the last hour lie "
                         "(`cm cdr list --worst-media` names them).",
                         q(f"histogram_quantile(0.05, sum by (le) (rate(callmanager_media_mos_bucket{{{NODE}}}[1h])))", instant=True),
                         decimals=2, steps=((None, "red"), (3.6, "orange"), (4.3, "green"))))
         .with_panel(big("Packet loss (5 min)", "Average packet loss of the scored calls.",
                         q(f"avg(callmanager:media_packet_loss:avg5m{{{NODE}}})", instant=True), unit="percentunit",
                         steps=((None, "green"), (0.005, "orange"), (0.01, "red"))))
         .with_panel(big("RTP ports in use", "Media ports in use / configured (85 % alerts).",
                         q(f"max(callmanager:rtpengine_ports:used_ratio{{{NODE}}})", instant=True), unit="percentunit",
                         steps=((None, "green"), (0.7, "orange"), (0.85, "red"))))
         .with_panel(big("Transcoding", "Media streams being transcoded now.", q(f"sum(callmanager_rtpengine_transcoded_media{{{NODE}}})", instant=True)))
         .with_panel(big("One-way streams (1 h)", "Streams that carried media one way only (NAT, firewall) in the last hour.",
                         q(f"sum(increase(callmanager_rtpengine_one_way_streams_total{{{NODE}}}[1h]))", instant=True),
                         steps=((None, "green"), (1, "orange"))))
         .with_panel(heatmap.Panel().title("MOS distribution").description("Calls per MOS band over time (one score per call).")
                     .datasource(DS).span(12).height(8).calculate(False)
                     .with_target(q(hist.format(m="media_mos", n=NODE), "{{le}}").format(PromQueryFormat.HEATMAP)))
         .with_panel(graph("Jitter p50 / p95", "Per-call average jitter, quantiles over 15 minutes.",
                           q(f"histogram_quantile(0.5, {hist.format(m='media_jitter_seconds', n=NODE)})", "p50"),
                           q(f"histogram_quantile(0.95, {hist.format(m='media_jitter_seconds', n=NODE)})", "p95", "B"), unit="s"))
         .with_panel(graph("Packet loss p50 / p95", "Per-call average loss, quantiles over 15 minutes.",
                           q(f"histogram_quantile(0.5, {hist.format(m='media_packet_loss_ratio', n=NODE)})", "p50"),
                           q(f"histogram_quantile(0.95, {hist.format(m='media_packet_loss_ratio', n=NODE)})", "p95", "B"), unit="percentunit"))
         .with_panel(graph("Round trip p50 / p95", "Per-call average round-trip time, quantiles over 15 minutes.",
                           q(f"histogram_quantile(0.5, {hist.format(m='media_round_trip_seconds', n=NODE)})", "p50"),
                           q(f"histogram_quantile(0.95, {hist.format(m='media_round_trip_seconds', n=NODE)})", "p95", "B"), unit="s"))
         .with_panel(graph("Relayed packets and errors", "Packets RTPengine relays per second, and those it could not relay.",
                           q(f"sum by (node) (rate(callmanager_rtpengine_packets_relayed_total{{{NODE}}}[1m]))", "relayed {{node}}"),
                           q(f"sum by (node) (rate(callmanager_rtpengine_packet_errors_total{{{NODE}}}[1m]))", "errors {{node}}", "B"),
                           unit="pps"))
         .with_panel(graph("Media sessions", "Media sessions now, and sessions ended by a media timeout (no RTP) per minute.",
                           q(f'sum by (node) (callmanager_rtpengine_sessions{{owner="own", {NODE}}})', "sessions {{node}}"),
                           q(f'sum by (node) (increase(callmanager_rtpengine_sessions_ended_total{{how=~".*timeout", {NODE}}}[1m]))',
                             "timed out {{node}}", "B")))
         .with_panel(graph("Relayed bandwidth", "Bytes of media relayed per second.",
                           q(f"sum by (node) (rate(callmanager_rtpengine_bytes_relayed_total{{{NODE}}}[1m]))", "{{node}}"), unit="Bps")))
    return d


# ---------------------------------------------------------------- call center wallboard

def wallboard() -> db.Dashboard:
    group = 'tenant=~"$tenant", group=~"$group"'
    d = variables(base("callmanager-wallboard", "callmanager — call center wallboard",
                       "Per hunt group: waiting calls, longest wait, agents by state, answered and abandoned today.", ["callcenter"]),
                  db.QueryVariable("tenant").label("Tenant").datasource(DS).query("label_values(callmanager_queue_waiting_calls, tenant)")
                  .multi(True).include_all(True).refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED),
                  db.QueryVariable("group").label("Group").datasource(DS)
                  .query('label_values(callmanager_queue_waiting_calls{tenant=~"$tenant"}, group)').multi(True).include_all(True)
                  .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED))
    sel = f"{group}, {NODE}"
    d = (d.with_panel(big("Waiting calls", "Calls to the groups not answered yet.", q(f"sum(callmanager_queue_waiting_calls{{{sel}}})", instant=True),
                          steps=((None, "green"), (3, "orange"), (10, "red"))))
         .with_panel(big("Longest wait", "The longest wait of a call now.", q(f"max(callmanager_queue_longest_wait_seconds{{{sel}}})", instant=True),
                         unit="s", steps=((None, "green"), (30, "orange"), (120, "red"))))
         .with_panel(big("Agents available", "Logged in, registered, not in a call, not in wrap-up.",
                         q(f'sum(callmanager_queue_agents{{state="available", {sel}}})', instant=True), steps=((None, "red"), (1, "green"))))
         .with_panel(big("Answered today", "Calls answered since midnight UTC.",
                         q(f'sum(callmanager_queue_calls_today{{outcome="answered", {sel}}})', instant=True), w=3))
         .with_panel(big("Abandoned today", "Callers who hung up before an answer, since midnight UTC.",
                         q(f'sum(callmanager_queue_calls_today{{outcome="abandoned", {sel}}})', instant=True),
                         steps=((None, "green"), (5, "orange"), (20, "red")), w=3))
         .with_panel(big("Service level today", "Calls answered within each group's service-level time (default 20 s) / offered today.",
                         q(f'sum(callmanager_queue_calls_today{{outcome="answered_in_time", {sel}}}) / sum(callmanager_queue_calls_today{{outcome="offered", {sel}}})',
                           instant=True), unit="percentunit", steps=((None, "red"), (0.8, "orange"), (0.9, "green")), w=3))
         .with_panel(big("Answer rate today", "Answered / offered today, however long the callers waited.",
                         q(f'sum(callmanager_queue_calls_today{{outcome="answered", {sel}}}) / sum(callmanager_queue_calls_today{{outcome="offered", {sel}}})',
                           instant=True), unit="percentunit", steps=((None, "red"), (0.8, "orange"), (0.9, "green")), w=3))
         .with_panel(table.Panel().title("Groups now").description("Per group: waiting, longest wait, agents by state.").datasource(DS)
                     .span(24).height(8)
                     .with_target(q(f"sum by (tenant, group) (callmanager_queue_waiting_calls{{{sel}}})", "waiting", "A", instant=True)
                                  .format(PromQueryFormat.TABLE))
                     .with_target(q(f"max by (tenant, group) (callmanager_queue_longest_wait_seconds{{{sel}}})", "longest wait", "B", instant=True)
                                  .format(PromQueryFormat.TABLE))
                     .with_target(q(f"sum by (tenant, group, state) (callmanager_queue_agents{{{sel}}})", "{{state}}", "C", instant=True)
                                  .format(PromQueryFormat.TABLE))
                     .with_transformation(dm.DataTransformerConfig(id_val="merge", options={})))
         .with_panel(graph("Waiting calls by group", "Calls waiting over time.",
                           q(f"sum by (group) (callmanager_queue_waiting_calls{{{sel}}})", "{{group}}")))
         .with_panel(graph("Agents by state", "Agents of the selected groups by state.",
                           q(f"sum by (state) (callmanager_queue_agents{{{sel}}})", "{{state}}")))
         .with_panel(graph("Longest wait by group", "The longest wait over time.",
                           q(f"max by (group) (callmanager_queue_longest_wait_seconds{{{sel}}})", "{{group}}"), unit="s"))
         .with_panel(graph("Today by outcome", "Offered, answered, abandoned and overflowed calls since midnight UTC.",
                           q(f"sum by (outcome) (callmanager_queue_calls_today{{{sel}}})", "{{outcome}}"))))
    return d


# ---------------------------------------------------------------- fraud

def fraud() -> db.Dashboard:
    d = variables(base("callmanager-fraud", "callmanager — fraud",
                       "Edge bans, password guessing, fraud events, locks in force and calls ended by the fraud controls.", ["security"]))
    d = (d.with_panel(big("Locks in force", "Fraud locks not lifted yet (an admin lifts them).",
                          q(f"sum(callmanager_fraud_locks{{{NODE}}}) or vector(0)", instant=True), steps=((None, "green"), (1, "red"))))
         .with_panel(big("Banned sources", "Addresses dropped silently now.", q(f"sum(callmanager_fraud_banned_sources{{{NODE}}})", instant=True),
                         steps=((None, "green"), (1, "orange"))))
         .with_panel(big("Accounts cooling down", "Accounts refused after repeated failed authentications.",
                         q(f"sum(callmanager_fraud_cooling_accounts{{{NODE}}})", instant=True), steps=((None, "green"), (1, "orange"))))
         .with_panel(big("Failed authentications (1 h)", "Wrong passwords and unknown accounts in the last hour.",
                         q(f"sum(increase(callmanager_fraud_auth_failures_total{{{NODE}}}[1h]))", instant=True)))
         .with_panel(big("Calls ended by fraud control (24 h)", "Calls in progress cut by a spend or anomaly lock.",
                         q(f"sum(increase(callmanager_fraud_calls_ended_total{{{NODE}}}[24h]))", instant=True),
                         steps=((None, "green"), (1, "red"))))
         .with_panel(big("Edge readable", "1 when the edge's tables could be read from Kamailio.",
                         q(f"min(callmanager_fraud_edge_up{{{NODE}}})", instant=True), steps=((None, "red"), (1, "green"))))
         .with_panel(graph("Bans by cause", "Sources banned per hour, by cause (flood, scanner, brute force).",
                           q(f"sum by (cause) (increase(callmanager_fraud_bans_total{{{NODE}}}[1h]))", "{{cause}}")))
         .with_panel(graph("Fraud events by kind and level", "Events per hour (level 1 warning .. 4 locked entirely).",
                           q(f"sum by (kind, level) (increase(callmanager_fraud_events_total{{{NODE}}}[1h]))", "{{kind}} L{{level}}")))
         .with_panel(graph("Locks by tenant and level", "Locks in force over time.",
                           q(f"sum by (tenant, level) (callmanager_fraud_locks{{{NODE}}})", "tenant {{tenant}} L{{level}}")))
         .with_panel(graph("Failed authentications", "Per minute.",
                           q(f"sum(rate(callmanager_fraud_auth_failures_total{{{NODE}}}[5m])) * 60", "per minute"))))
    return d


DASHBOARDS = {"noc-overview": noc_overview, "media-quality": media_quality, "callcenter-wallboard": wallboard, "fraud": fraud}


def render() -> dict[str, str]:
    """{file name: JSON text} of every dashboard."""
    return {f"{name}.json": json.dumps(make().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n" for name, make in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    files = render()
    if "--check" in argv:
        stale = [n for n, text in files.items() if not (OUT / n).exists() or (OUT / n).read_text() != text]
        extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in files)
        if stale or extra:
            print("grafana/dashboards is out of date with grafana/dashboards.py: " + ", ".join(stale + extra)
                  + " — run .venv/bin/python grafana/dashboards.py", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(files)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
