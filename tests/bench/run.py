"""`make bench`: the KEMI node vs the same Kamailio with a native-language cfg, in one run.

Both run at the same time (an idle Kamailio costs nothing) and are measured in turns, storm by
storm and step by step, so a noisy neighbour on this shared machine hits both sides alike.

1. Registration storm: N distinct users (default 20,000) register with digest auth as fast as
   SIPp offers them; registrations/s for both, the median of three storms per side.
2. Call rate: INVITE/407/INVITE/200/ACK/BYE between registered users, RTPengine doing
   offer/answer/delete for every call; the highest rate each sustains for `--duration` seconds
   (default 20) with < 0.5 % failed calls, searched in steps of x1.5, then bisected.
5. Scrape (tests/bench/scrape.py): time and size of /metrics with 20,000 registered users and 1,000 calls in progress,
   next to the same node idle.
4. Fraud controls (tests/bench/fraud.py): calls out with every check on vs off; requests and
   password guesses answered before a flooding / guessing source is banned.
6. Snapshot update (tests/bench/snapshot.py): what a one-user change costs each worker with N users, applied as a
   change against the whole document read, paired rounds.
3. Hunt-group call rate (KEMI node only): the same calls to a group of 50 agents, longest idle
   first, a required skill, each agent claimed, marked busy and its idle time kept in shared
   memory; compared with the node's plain calls of the same run (and the native cfg's, in the detail).

Writes var/bench/results.json (records {name, value, unit, baseline, ratio}) and prints a table.
The KEMI node routes from its snapshot of all N users; the baseline takes HA1s from an htable
loaded at start. Only loopback is used; every loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlmodel import Session

from controlplane.db.models import CallerListEntry, ForwardingRule, SipAccount, Tenant, TimePlan, User
from controlplane.db.session import make_engine
from controlplane.node import processes
from controlplane.node.render import DBTEXT_SCHEMA, TLS_CIPHERS, USRLOC_TABLES
from controlplane.node.settings import NodeSettings, load_settings
from kemi.policy.auth import ha1, ha1b
from tests.harness.node import TestNode
from tests.harness.ports import free_port, free_port_block

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REGISTER = ROOT / "tests" / "scenario" / "sipp" / "register.xml"
DOMAIN = "bench.example"
CALLER, CALLEE = "100", "200"  # SIP usernames, also the extensions on the KEMI node
GROUP_EXT, AGENTS = "300", 50  # the hunt group of the group-call benchmark: the first 50 users are its agents
MAX_FAILED = 0.005
GROUP = "KEMI group"
QUEUE_S = 4  # the group's callers wait up to this long for a free agent (ringing), as in a call center; the load's
# callers give up after 5 s without an answer, so a longer wait would only keep calls nobody waits for in the queue


# The node as production runs it: the test harness's quicker timers and its fault-injection header (one more read
# per request) are the tests' (tests/harness/node.py), not a node's; edge protection on, with limits above what
# SIPp sends from its one address (every request is counted and judged, none is banned).
PRODUCTION = {k: NodeSettings.model_fields[k].default for k in (
    "kamailio_fault_header", "snapshot_check_s", "cdr_ingest_interval_s", "live_sync_interval_s", "fraud_monitor_interval_s",
    "invite_timeout_s")}
BENCH_NODE = dict(PRODUCTION, kamailio_shm_mb=1024, kamailio_log_level=1, rtpengine_log_level=3, edge_exempt="",
                  edge_max_requests=10**9, edge_max_unauthenticated=10**9, auth_failures_source=0, auth_failures_account=0)


def password(user: str) -> str:
    return f"pw-{user}"


def all_users(n: int) -> list[str]:
    return [f"b{i}" for i in range(n)] + [CALLER, CALLEE]


def csv(path: Path, lines: list[str]) -> Path:
    path.write_text("SEQUENTIAL\n" + "\n".join(lines) + "\n")
    return path


def auth_line(user: str, last: str) -> str:
    return f"{user};{DOMAIN};[authentication username={user} password={password(user)}];{last}"


def last_stats(stat_file: Path) -> dict[str, int]:
    rows = stat_file.read_text().splitlines()
    head, last = rows[0].split(";"), rows[-1].split(";")
    return {k: int(last[head.index(k)]) for k in ("SuccessfulCall(C)", "FailedCall(C)", "OutgoingCall(C)")}


def sipp(port: int, scenario: Path, extra: list[str], workdir: Path, timeout_s: float) -> tuple[dict, float]:
    stat = workdir / f"stat-{time.monotonic_ns()}.csv"
    argv = ["sipp", f"127.0.0.1:{port}", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(free_port()),
            "-buff_size", "4194304", "-nostdin", "-trace_stat", "-stf", str(stat), "-fd", "1", *extra]
    t0 = time.monotonic()
    subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=timeout_s)
    return last_stats(stat), time.monotonic() - t0


def registration_storm(port: int, n: int, rate: int, workdir: Path) -> dict:
    """All n users register (401, then credentials, 200) once; registrations/s."""
    inf = workdir / "storm.csv"
    if not inf.exists():
        csv(inf, [auth_line(f"b{i}", "3600") for i in range(n)])
    stats, elapsed = sipp(port, REGISTER, ["-inf", str(inf), "-m", str(n), "-r", str(rate), "-l", "2000", "-timeout", "150s"], workdir, 180)
    return {"ok": stats["SuccessfulCall(C)"], "failed": stats["FailedCall(C)"], "elapsed_s": round(elapsed, 2),
            "per_s": round(stats["SuccessfulCall(C)"] / elapsed, 1)}


def median_run(runs: list[dict]) -> dict:
    median = sorted(runs, key=lambda r: r["per_s"])[len(runs) // 2]
    return {**median, "runs": runs}


CALLEE_PORTS: dict[tuple, int] = {}  # (the node's port, the callees) -> the port they register from and answer on


def call_step(port: int, rate: int, duration: int, workdir: Path, dial: str = CALLEE, callees: tuple[str, ...] = (CALLEE,)) -> dict:
    """Offer `rate` calls/s for `duration` s to `dial` (a user, or a group of `callees`) answered by one fresh UAS; count what failed."""
    media = free_port_block(4)
    # one port per target and callees for the whole run: a new port each step left one more contact per step (expires
    # 3600) and every later call forked to all of them (found by the crypto bench, docs/benchmarks.md §19)
    callee_port = CALLEE_PORTS.setdefault((port, callees), free_port())
    reg = csv(workdir / "callee.csv", [auth_line(c, "3600") for c in callees])
    # the callees (re)register from the port the UAS will answer on
    subprocess.run(["sipp", f"127.0.0.1:{port}", "-sf", str(REGISTER), "-inf", str(reg), "-m", str(len(callees)), "-i", "127.0.0.1",
                    "-p", str(callee_port), "-timeout", "20s", "-nostdin"], cwd=workdir, capture_output=True, timeout=30)
    uas = subprocess.Popen(["sipp", "-sf", str(HERE / "uas_answer_load.xml"), "-i", "127.0.0.1", "-p", str(callee_port),
                            "-mi", "127.0.0.1", "-mp", str(media), "-buff_size", "4194304", "-nostdin", "-timeout", f"{duration + 60}s"],
                           cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        return offer_calls(port, csv(workdir / "caller.csv", [auth_line(CALLER, dial)]), rate, duration, workdir)
    finally:
        stop(uas)


def offer_calls(port: int, inf: Path, rate: int, duration: int, workdir: Path) -> dict:
    """SIPp calls at `rate` for `duration` s with the callers of `inf`; sustained when < MAX_FAILED failed and it kept pace."""
    total = rate * duration
    stats, elapsed = sipp(port, HERE / "uac_call_load.xml",
                          ["-inf", str(inf), "-m", str(total), "-r", str(rate), "-l", str(max(rate * 5, 100)), "-mi", "127.0.0.1",
                           "-mp", str(free_port_block(4)), "-recv_timeout", "5s", "-timeout", f"{duration + 40}s"],
                          workdir, duration + 60)
    ok, failed = stats["SuccessfulCall(C)"], stats["FailedCall(C)"]
    attempted = max(ok + failed, 1)
    kept_pace = elapsed <= duration * 1.15 + 6
    passed = ok >= total * (1 - MAX_FAILED) and failed / attempted < MAX_FAILED and kept_pace
    return {"rate": rate, "ok": ok, "failed": failed, "offered": total, "elapsed_s": round(elapsed, 1), "passed": passed}


def settle(step: dict) -> float:
    """Seconds to wait after a step before the next: a step the node could not sustain leaves transactions,
    retransmissions and waiting calls behind for a while, which would count against the next step (of either side)."""
    return 3.0 if step["passed"] else 15.0


def report_step(what: str, st: dict, extra: str = "") -> None:
    """One line per search step: what was offered, what came of it, sustained or not (and `extra`)."""
    print(f"  {what}: {st['rate']:>5}/s offered: {st['ok']} ok, {st['failed']} failed, {st['elapsed_s']} s -> "
          f"{'sustained' if st['passed'] else 'not sustained'}{' ' + extra if extra else ''}", flush=True)


def in_turns(items: list, round_no: int) -> list:
    """The sides of a paired round in alternating order (A B, then B A, ...): whatever the side measured second
    inherits from the first (its leftovers, the machine's drift within a round) falls on each side equally. With more
    sides every pair of them still swaps order from one round to the next (A B C, then C B A)."""
    return items if round_no % 2 == 0 else items[::-1]


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def _sustained(rate: int):
    """Offer one rate (yield it, receive whether it was sustained); a rate not sustained is offered once more:
    one slow moment of the shared machine (a step fails on 0.5 % of its calls) does not decide a search."""
    if (yield rate):
        return True
    return bool((yield rate))


def call_rate_search(start: int, ceiling: int, precision: float = 0.04):
    """Step up x1.5 until a rate is not sustained (twice), then bisect until the gap is under `precision`.

    A generator: yields the next rate to try and receives whether it was sustained; returns
    (best, first_failed). Two searches advance in turns, so both sides see the same machine.
    """
    best, failed_at, rate = 0, None, start
    while rate <= ceiling:
        if not (yield from _sustained(rate)):
            failed_at = rate
            break
        best, rate = rate, int(rate * 1.5)
    while failed_at is not None and best and (failed_at - best) / best > precision:
        mid = (best + failed_at) // 2
        if (yield from _sustained(mid)):
            best = mid
        else:
            failed_at = mid
    return best, failed_at


def searches_in_turns(labels, start: int, ceiling: int, run_step) -> dict[str, tuple]:
    """One call-rate search per label, advanced in turns (step A, step B, ...) so that both see the same machine.
    `run_step(label, rate)` runs, records and prints one step and returns it; returns label -> (best, first failed)."""
    searches = {label: call_rate_search(start, ceiling) for label in labels}
    pending = {label: next(gen) for label, gen in searches.items()}
    results: dict[str, tuple] = {}
    while pending:
        for label in list(pending):
            step = run_step(label, pending[label])
            time.sleep(settle(step))
            try:
                pending[label] = searches[label].send(step["passed"])
            except StopIteration as done:
                results[label] = done.value
                del pending[label]
    return results


def provision_kemi(node: TestNode, n: int) -> None:
    """n users with SIP accounts; a third of them with forwarding rules (some by a time plan with
    German holidays), another third with a VIP list, and the callee with busy and no-answer forwarding that the policy prepares
    on every call (the load UAS answers, so it never fires)."""
    engine = make_engine(node.settings.db_url)
    with Session(engine) as s:
        t = Tenant(name="Bench", sip_domain=DOMAIN)
        s.add(t)
        s.flush()
        names = all_users(n)
        users = [User(tenant_id=t.id, name=u, outbound="international") for u in names]
        s.add_all(users)
        s.flush()
        s.add_all(SipAccount(tenant_id=t.id, user_id=u.id, username=name, realm=DOMAIN, ha1=ha1(name, DOMAIN, password(name)),
                             ha1b=ha1b(name, DOMAIN, password(name))) for name, u in zip(names, users))
        plan = TimePlan(tenant_id=t.id, name="office", ranges=[{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}],
                        holidays_country="DE", holidays_subdiv="BE")
        s.add(plan)
        s.flush()
        rules = []
        for i, u in enumerate(users[:n]):
            if i % 3:
                continue
            target = users[(i + 1) % n]
            rules.append(ForwardingRule(tenant_id=t.id, user_id=u.id, kind=("unconditional", "busy", "no_answer", "unreachable")[i % 4],
                                        target_user_id=target.id, time_plan_id=plan.id if i % 2 else None, when="outside"))
        s.add_all(CallerListEntry(tenant_id=t.id, user_id=u.id, kind="vip", member_user_id=users[(i + 7) % n].id)
                  for i, u in enumerate(users[:n]) if i % 3 == 1)
        callee = users[-1]
        rules.append(ForwardingRule(tenant_id=t.id, user_id=callee.id, kind="busy", target_user_id=users[0].id))
        rules.append(ForwardingRule(tenant_id=t.id, user_id=callee.id, kind="no_answer", target_user_id=users[0].id, timeout_s=60))
        s.add_all(rules)
        s.commit()
        for u in users[:AGENTS]:  # the group's agents: a required skill at levels 1 to 5
            u.skills = {"de": 1 + u.id % 5}
            s.add(u)
        s.commit()
        caller_id, callee_id, agent_ids = users[-2].id, users[-1].id, [u.id for u in users[:AGENTS]]
    engine.dispose()
    node.rpc("group.create", tenant_id=t_id(node), name="Bench group", extension=GROUP_EXT, skills={"de": 2}, queue_s=QUEUE_S,
             # agents on a call may be offered the next one (call waiting): with zero-length calls 50 agents
             # would otherwise bound the figure by their holding time (50 / ~80 ms), not by the routing
             rings=[{"members": [{"user_id": a} for a in agent_ids], "strategy": "longest_idle", "wait_s": 20, "member_s": 5,
                     "busy_members": "ring"}])
    node.rpc("extension.create", number=CALLER, user_id=caller_id)
    node.rpc("extension.create", number=CALLEE, user_id=callee_id)  # bumps the version: all users published
    time.sleep(2)


def t_id(node: TestNode) -> int:
    return next(t["id"] for t in node.rpc("tenant.list")["items"] if t["sip_domain"] == DOMAIN)


def native_node(workdir: Path, n: int, tls: tuple[int, Path, Path] | None = None, kemi: bool = False):
    """RTPengine plus Kamailio running tests/bench/native.cfg; returns (components, SIP port). `tls`: (port,
    certificate, key) — it listens on TLS there too. `kemi`: its routes run as tests/bench/native_kemi.py (the KEMI
    floor) instead, with files of its own (several may run at once)."""
    tag = "native-kemi" if kemi else "native"
    db = workdir / f"{tag}-db"
    db.mkdir()
    rows = ["id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int)"]
    rows += [f"{i + 1}:{u}@{DOMAIN}:0:0:{ha1(u, DOMAIN, password(u))}:0" for i, u in enumerate(all_users(n))]
    (db / "htable").write_text("\n".join(rows) + "\n")
    # the registrations' db_text tables (usrloc writes them back, as the node's), Kamailio's own empty ones
    versions = [ln for ln in (DBTEXT_SCHEMA / "version").read_text().splitlines()
                if ln.startswith("id(") or ln.split(":")[1:2] in (["version"], *([t] for t in USRLOC_TABLES))]
    (db / "version").write_text("\n".join(versions) + "\n")
    for table in USRLOC_TABLES:
        (db / table).write_text((DBTEXT_SCHEMA / table).read_text())
    rtp = free_port_block(400)
    settings = load_settings(env={}, var_dir=str(workdir / f"{tag}-var"), rtpengine_ng_port=free_port(), rtpengine_cli_port=free_port(),
                             rtp_port_min=rtp, rtp_port_max=rtp + 399, rtpengine_log_level=3)
    rtpengine = processes.rtpengine(settings)
    sip, rpc = free_port(), free_port()
    kam = processes.Component(
        f"kamailio-{tag}",
        ["kamailio", "-DD", "-E", "-f", str(HERE / "native.cfg"), "-A", f"SIP_PORT={sip}", "-A", f"RPC_PORT={rpc}",
         "-A", f'CTL_SOCK="unix:{workdir}/{tag}_ctl"', "-A", f'DB_URL="text://{db}"',
         *(["-A", "KEMI_FLOOR", "-A", f'KEMI_SCRIPT="{HERE / "native_kemi.py"}"'] if kemi else []),
         "-A", f'RTPENGINE_NG="udp:127.0.0.1:{settings.rtpengine_ng_port}"',
         *(["-A", f"TLS_PORT={tls[0]}", "-A", f'TLS_CERT="{tls[1]}"', "-A", f'TLS_KEY="{tls[2]}"',
            "-A", f'TLS_CIPHERS="{TLS_CIPHERS}"'] if tls else []),
         "-P", str(workdir / f"{tag}.pid.own"), "-Y", str(workdir), "-m", "512", "-x", "tlsf", "-w", str(workdir)],
        workdir / f"{tag}.pid", workdir / f"{tag}.log",
        ready=[("udp", "127.0.0.1", sip), ("tcp", "127.0.0.1", rpc), *([("tcp", "127.0.0.1", tls[0])] if tls else [])])
    rtpengine.start()
    try:
        kam.start(timeout=60)
    except Exception:
        rtpengine.stop()
        raise
    return [kam, rtpengine], sip


def measure(sides: dict[str, int], args, workdir: Path, group_port: int | None = None) -> dict[str, dict]:
    """Both sides in turns: storm A, storm B, storm A, ...; then the call-rate searches step by step
    (with `group_port`, a third search: calls to the hunt group on that node)."""
    out: dict[str, dict] = {label: {"storm_runs": [], "steps": []} for label in sides}
    for label, port in sides.items():  # warm-up, not counted: the node's workers load the 20,000-user snapshot
        registration_storm(port, args.users, args.reg_rate, workdir)
        time.sleep(2)
    for i in range(args.storm_repeat):
        for label, port in sides.items():
            run = registration_storm(port, args.users, args.reg_rate, workdir)
            out[label]["storm_runs"].append(run)
            print(f"  storm {i + 1}/{args.storm_repeat} {label:>9}: {run['per_s']:>8} registrations/s ({run['ok']} ok, {run['failed']} failed)", flush=True)
            time.sleep(2)
    for label in sides:
        out[label]["storm"] = median_run(out[label]["storm_runs"])
    if not args.duration:
        return {label: {"storm": o["storm"], "calls": {"best": 0, "steps": []}} for label, o in out.items()}
    targets = {label: (port, CALLEE, (CALLEE,)) for label, port in sides.items()}
    if group_port is not None:
        targets[GROUP] = (group_port, GROUP_EXT, tuple(f"b{i}" for i in range(AGENTS)))
        out[GROUP] = {"steps": []}
    def run_step(label: str, rate: int) -> dict:
        port, dial, callees = targets[label]
        step = call_step(port, rate, args.duration, workdir, dial, callees)
        out[label]["steps"].append(step)
        report_step(f"calls {label:>9}", step)
        return step

    results = searches_in_turns(list(targets), args.start_rate, args.max_rate, run_step)
    return {label: {"storm": o.get("storm"), "calls": {"best": results[label][0], "first_failed": results[label][1], "steps": o["steps"]}}
            for label, o in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--reg-rate", type=int, default=30000, help="offered REGISTER rate per second (above what either sustains)")
    ap.add_argument("--duration", type=int, default=20, help="seconds per call-rate step (0 skips calls)")
    ap.add_argument("--start-rate", type=int, default=200)
    ap.add_argument("--max-rate", type=int, default=5000)
    ap.add_argument("--storm-repeat", type=int, default=3, help="storms per side (the median counts)")
    ap.add_argument("--skip-sip", action="store_true", help="only the policy decision benchmark (no Kamailio)")
    ap.add_argument("--skip-fraud", action="store_true", help="without the fraud-controls benchmark (tests/bench/fraud.py)")
    ap.add_argument("--only-fraud", action="store_true", help="only the fraud-controls benchmark")
    ap.add_argument("--skip-scrape", action="store_true", help="without the scrape benchmark (tests/bench/scrape.py)")
    ap.add_argument("--only-scrape", action="store_true", help="only the scrape benchmark")
    ap.add_argument("--held-calls", type=int, default=1000, help="calls in progress during the scrape benchmark")
    ap.add_argument("--only-group", action="store_true", help="only hunt-group calls vs the node's plain calls (tests/bench/group.py)")
    ap.add_argument("--group-cpu-only", action="store_true", help="with --only-group: no capacity search, only the fixed-rate CPU comparison")
    ap.add_argument("--fraud-cpu-only", action="store_true", help="with --only-fraud: no capacity search, only the fixed-rate CPU comparison")
    ap.add_argument("--cpu-rounds", type=int, default=3, help="rounds of the fixed-rate CPU comparison (fraud, group)")
    ap.add_argument("--cpu-seconds", type=int, default=8, help="seconds per round of the fixed-rate CPU comparison (fraud, group)")
    ap.add_argument("--only-before-after", action="store_true", help="only this tree's node against an earlier commit's, Kamailio CPU per "
                    "registration and per call at fixed rates (tests/bench/before_after.py)")
    ap.add_argument("--before", default=None, help="with --only-before-after: the earlier commit (default: main before issue 17)")
    ap.add_argument("--only-rollout", action="store_true", help="only the Ansible rollout into the lab (tests/bench/rollout.py)")
    ap.add_argument("--rollout-rounds", type=int, default=3, help="rounds of the rollout benchmark (a fresh lab each)")
    ap.add_argument("--only-failover", action="store_true", help="only the failover times of the data center's pairs in the lab "
                    "(tests/bench/failover.py)")
    ap.add_argument("--failover-rounds", type=int, default=3, help="rounds of the failover benchmark (a fresh lab each)")
    ap.add_argument("--only-wan-lag", action="store_true", help="only the replication lag across the lab's 20 ms WAN "
                    "(tests/bench/wan_lag.py)")
    ap.add_argument("--lag-samples", type=int, default=200, help="registrations measured by --only-wan-lag")
    ap.add_argument("--only-media", action="store_true", help="only the media server's concurrent announcement and voicemail sessions "
                    "(tests/bench/media.py)")
    ap.add_argument("--media-rounds", type=int, default=3, help="rounds of --only-media")
    ap.add_argument("--only-crypto", action="store_true", help="only what encryption costs: TLS storms, TLS+SRTP and WebRTC media "
                    "calls against plain ones (tests/bench/crypto.py)")
    ap.add_argument("--crypto-cpu-only", action="store_true", help="with --only-crypto: no capacity search")
    ap.add_argument("--only-api", action="store_true", help="only the control plane's HTTP server against the standard "
                    "library's it replaced: API latency, throughput, /metrics (tests/bench/api_http.py)")
    ap.add_argument("--api-rounds", type=int, default=5, help="paired rounds of --only-api")
    ap.add_argument("--only-snapshot", action="store_true", help="only the snapshot update cost per worker (tests/bench/snapshot.py)")
    ap.add_argument("--only-cluster", action="store_true", help="only what replicating registrations costs: CPU, storm, lag (tests/bench/cluster.py)")
    ap.add_argument("--profile", action="store_true", help="only the CPU account: Kamailio CPU per REGISTER pair and per call, node "
                    "against native in paired rounds, and where it goes (perf, py-spy, KSR crossings; tests/bench/profile.py)")
    ap.add_argument("--profile-rounds", type=int, default=5, help="paired rounds of the CPU account")
    ap.add_argument("--no-counting", action="store_true", help="with --profile: without the second node that counts crossings")
    args = ap.parse_args(argv)
    if args.profile:
        from tests.bench import profile

        save(profile.run(users=args.users, rounds=args.profile_rounds, counted=not args.no_counting))
        return 0
    if args.only_cluster:
        from tests.bench import cluster

        save(cluster.run())
        return 0
    if args.only_media:
        from tests.bench import media

        save(media.run(rounds=args.media_rounds))
        save(media.run(levels=(50, 100, 150), rounds=args.media_rounds, kind="menu"))
        save(media.run_deposits(rounds=args.media_rounds))
        return 0
    if args.only_wan_lag:
        from tests.bench import wan_lag

        save(wan_lag.run(samples=args.lag_samples))
        return 0
    if args.only_failover:
        from tests.bench import failover

        save(failover.run(rounds=args.failover_rounds))
        return 0
    if args.only_snapshot:
        from tests.bench import snapshot

        save(snapshot.run(users=args.users))
        return 0
    if args.only_rollout:
        from tests.bench import rollout

        save(rollout.run(rounds=args.rollout_rounds))
        return 0
    if args.only_before_after:
        from tests.bench import before_after

        save(before_after.run(before=args.before or before_after.BEFORE, rounds=args.cpu_rounds if args.cpu_rounds != 3 else 5))
        return 0
    if args.only_api:
        from tests.bench import api_http

        save(api_http.run(users=args.users, rounds=args.api_rounds))
        return 0
    if args.only_crypto:
        from tests.bench import crypto

        save(crypto.run(users=args.users, reg_rate=args.reg_rate, storms=args.storm_repeat, duration=args.duration or 20,
                        start_rate=args.start_rate, max_rate=args.max_rate, search=not args.crypto_cpu_only,
                        cpu_rounds=args.cpu_rounds, cpu_seconds=args.cpu_seconds))
        return 0
    if args.only_group:
        from tests.bench import group

        save(group.run(users=args.users, duration=args.duration or 20, start_rate=args.start_rate, max_rate=args.max_rate,
                       search=not args.group_cpu_only, cpu_rounds=args.cpu_rounds, cpu_seconds=args.cpu_seconds))
        return 0
    if args.only_scrape:
        from tests.bench import scrape

        save(scrape.run(users=args.users, calls=args.held_calls))
        return 0
    if args.only_fraud:
        from tests.bench import fraud

        save(fraud.run(duration=args.duration or 20, start_rate=args.start_rate, max_rate=args.max_rate, search=not args.fraud_cpu_only,
                       cpu_rounds=args.cpu_rounds, cpu_seconds=args.cpu_seconds))
        return 0
    work = Path(tempfile.mkdtemp(prefix="cm-bench-"))
    print(f"callmanager benchmark, work dir {work}", flush=True)
    from tests.bench import policy

    policy_records = policy.run(users=args.users)
    from tests.bench import snapshot

    policy_records += snapshot.run(users=args.users)
    if args.skip_sip:
        save(policy_records)
        return 0

    # edge protection on, as in production, with limits above what SIPp sends from its one address:
    # every request is counted and judged, none is banned
    node = TestNode(work / "var", **BENCH_NODE)
    node.start()
    comps: list = []
    try:
        provision_kemi(node, args.users)
        comps, port = native_node(work, args.users)
        both = measure({"KEMI node": node.settings.sip_port, "native": port}, args, work, group_port=node.settings.sip_port)
    finally:
        for c in comps:
            c.stop()
        node.stop()
    kemi, native = both["KEMI node"], both["native"]

    def record(name, value, unit, baseline, detail):
        return {"name": name, "value": value, "unit": unit, "baseline": baseline,
                "ratio": round(value / baseline, 3) if baseline else None, "detail": detail}

    meta = {"machine": f"{platform.node()}, {os.cpu_count()} cores", "date": datetime.now(timezone.utc).isoformat(), "users": args.users}
    records = [record(f"registration_storm_{args.users}_users_digest", kemi["storm"]["per_s"], "registrations/s", native["storm"]["per_s"],
                      {**meta, "offered_rate": args.reg_rate, "kemi": kemi["storm"], "native": native["storm"]})]
    if args.duration:
        records.append(record(f"call_rate_sustained_{args.duration}s_rtpengine", kemi["calls"]["best"], "calls/s", native["calls"]["best"],
                              {**meta, "max_failed": MAX_FAILED, "kemi_steps": kemi["calls"]["steps"], "native_steps": native["calls"]["steps"]}))
        group = both[GROUP]
        native_best = native["calls"]["best"]
        records.append(record(f"group_call_rate_{AGENTS}_agents_longest_idle_skills", group["calls"]["best"], "calls/s", kemi["calls"]["best"],
                              {**meta, "goal": ">= 0.7 of the plain-call rate (the node's plain calls, same run)", "max_failed": MAX_FAILED,
                               "native_calls_per_s": native_best,
                               "ratio_to_native": round(group["calls"]["best"] / native_best, 3) if native_best else None,
                               "steps": group["calls"]["steps"]}))
    save(policy_records + records)
    if not args.skip_fraud and args.duration:
        from tests.bench import fraud

        save(fraud.run(duration=args.duration, start_rate=args.start_rate, max_rate=args.max_rate))
    if not args.skip_scrape:
        from tests.bench import scrape

        save(scrape.run(users=args.users, calls=args.held_calls))
    from tests.bench import media  # issue 23: its own part

    save(media.run(rounds=args.media_rounds))
    save(media.run(levels=(50, 100, 150), rounds=args.media_rounds, kind="menu"))
    save(media.run_deposits(rounds=args.media_rounds))
    from tests.bench import crypto  # issue 24: its own part

    save(crypto.run(users=args.users, reg_rate=args.reg_rate, storms=args.storm_repeat, duration=args.duration or 20,
                    start_rate=args.start_rate, max_rate=args.max_rate))
    from tests.bench import api_http  # issue 24: the control plane's HTTP server against the one it replaced

    save(api_http.run(users=args.users, rounds=args.api_rounds))
    return 0


def save(records: list[dict]) -> None:
    """Add (or replace, by name) these records in var/bench/results.json and print them."""
    out = ROOT / "var" / "bench" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() else []
    names = {r["name"] for r in records}
    out.write_text(json.dumps([r for r in old if r["name"] not in names] + records, indent=2))
    print(f"\n{'benchmark':45} {'value':>12} {'baseline':>12} {'ratio':>7}")
    for r in records:
        print(f"{r['name']:45} {r['value']:>12} {str(r['baseline'] if r['baseline'] is not None else '-'):>12} {str(r['ratio']):>7}  {r['unit']}")
    print(f"results in {out}")


if __name__ == "__main__":
    raise SystemExit(main())
