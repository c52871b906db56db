"""Failover benchmark (issue 22, `make bench ARGS="--only-failover [--failover-rounds N]"`): how long a data center's
pairs take to serve again when a node dies, in the lab the failure tests use (tests/lab/pairs.py: the site playbook
deploys a SIP pair and a media pair behind their virtual addresses in network namespaces).

Each round builds and deploys a fresh lab, then:
1. baseline — a planned switchover of the SIP pair's address (keepalived stopped on the node holding it: it hands the
   address over at once): seconds until a new REGISTER through the address succeeds;
2. the media node holding the media address crashes (every process killed, link down) during a call with RTP both
   ways: the longest silence at the callee after the crash (the audio resumes through the other node);
3. the SIP node holding the address crashes: seconds until a new REGISTER through the address succeeds.
Reported: the median of the rounds with their spread. Only the lab's own addresses (198.18.0.0/15); every wait is
bounded."""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

SUPERVISORCTL = "supervisorctl -c /etc/callmanager/supervisord.conf"


def _register_resumes(sipp, phone, since: float, limit_s: float = 30.0) -> float:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if sipp.register(phone, timeout_s=1).ok:
            return time.monotonic() - since
    raise RuntimeError(f"no REGISTER succeeded within {limit_s} s")


def one_round(n: int) -> dict[str, float]:
    from controlplane.adapters.rtpengine_ng import NgClient
    from tests.harness.sipp import Sipp, tone_file
    from tests.lab.deployed import wait_until
    from tests.lab.netlab import Lab
    from tests.lab.pairs import LAYOUT, MEDIA, PAIR, RtpSink, deploy, provision

    work = Path(tempfile.mkdtemp(prefix=f"cm-bench-failover-{n}-"))
    with Lab.build(LAYOUT, wan_delay_ms=5, base_dir=work / "lab") as lab:
        pairs = deploy(lab, work)
        sip = pairs.one_holder(pairs.vip, PAIR)
        provision(pairs, sip, "bench.example", {"fo1": "501", "fo2": "502", "fo3": "503"})
        sipp = Sipp((pairs.vip, 5060), work / "sipp")
        sipp.tone = tone_file(work / "sipp" / "long.ulaw", 30.0)
        a, b, c = (sipp.phone(f"fo{i}", "bench.example", f"pw-fo{i}-secret", ip=pairs.machine) for i in (1, 2, 3))
        for phone in (a, b):
            wait_until(lambda phone=phone: sipp.register(phone).ok, 20, f"{phone.user} registered")

        # 1. baseline: the address handed over on purpose
        lab.ssh(sip, f"{SUPERVISORCTL} stop callmanager-keepalived")
        moved = time.monotonic()
        planned = _register_resumes(sipp, c, moved)
        lab.ssh(sip, f"{SUPERVISORCTL} start callmanager-keepalived")
        sip = pairs.one_holder(pairs.vip, PAIR)

        # 2. the media node holding the media address crashes mid-call
        active = pairs.one_holder(pairs.media_vip, MEDIA)
        sink = RtpSink(pairs.machine)
        try:
            callee = sipp.callee(b, "answer", timeout_s=60, sdp_ip=pairs.machine, sdp_port=str(sink.port))
            call = sipp.caller_in_background(a, "502", hold_ms=12000, timeout_s=60)
            wait_until(lambda: len(sink.arrivals) >= 50, 15, "audio through the media address")
            time.sleep(1.0)  # the other media node follows the call
            lab.crash(active)
            died = time.monotonic()
            if not call.result(timeout=90).ok or not sipp.wait(callee, 30).ok:
                raise RuntimeError("the call across the media node's crash failed")
        finally:
            sink.close()
        audio_gap, _ = sink.gap_after(died)
        wait_until(lambda: NgClient(pairs.media_vip, 2223).list_calls() == [], 10, "no media session left")

        # 3. the SIP node holding the address crashes
        lab.crash(sip)
        crash = _register_resumes(sipp, c, time.monotonic())
    return {"planned": planned, "audio_gap": audio_gap, "sip_crash": crash}


def run(rounds: int = 3) -> list[dict]:
    figures: dict[str, list[float]] = {"planned": [], "audio_gap": [], "sip_crash": []}
    for n in range(rounds):
        got = one_round(n)
        for k, v in got.items():
            figures[k].append(round(v, 2))
        print(f"  round {n + 1}: planned switchover {got['planned']:.2f} s, audio gap after the media node's crash "
              f"{got['audio_gap']:.2f} s, REGISTER after the SIP node's crash {got['sip_crash']:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in figures.items()}
    detail = {"rounds": figures, "machine": "lab: network namespaces, keepalived unicast VRRP advert_int 1, check every 1 s (fall 2)"}
    return [
        {"name": "failover_sip_node_crash_register_s", "value": med["sip_crash"], "unit": "s until a REGISTER through the SIP pair's address succeeds",
         "baseline": med["planned"], "ratio": round(med["sip_crash"] / med["planned"], 2) if med["planned"] else None,
         "detail": {**detail, "baseline": "the same after a planned switchover (keepalived stopped on the holder)"}},
        {"name": "failover_media_node_crash_audio_gap_s", "value": med["audio_gap"], "unit": "s of silence at the callee",
         "baseline": None, "ratio": None, "detail": detail},
    ]
