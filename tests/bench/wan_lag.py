"""Replication lag across the WAN (issue 22, `make bench ARGS="--only-wan-lag [--lag-samples N]"`): a REGISTER saved
by the node in one data center, seen by the node in the other — two lab hosts, one per data center, joined by the lab's
20 ms one-way WAN, deployed by site.yml (tests/lab/test_partition.py's layout).

For each sample a phone registers a new contact through Frankfurt's node (raw digest REGISTER from the machine); a
watcher on Berlin's node polls its Kamailio (JSON-RPC `ul.lookup`, every millisecond) for that contact. The lag is the
moment Berlin has it minus the moment Frankfurt's 200 OK reached the phone (the lab's hosts share the machine's
clock). Baseline in the same run: the WAN's own one-way delay, half the round trip of a TCP connect across it.
Reported: p50 and p99 with the spread. Lab addresses only; bounded in count and time."""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

WATCHER = r'''
import json, sys, time, urllib.request
secret = open("/var/lib/callmanager/kamailio-rpc.secret").read().strip()
def lookup(aor):
    body = json.dumps({"jsonrpc": "2.0", "method": "ul.lookup", "params": ["location", aor], "id": 1}).encode()
    req = urllib.request.Request("http://127.0.0.1:5071/RPC", body, {"X-Callmanager-Rpc-Key": secret})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.read().decode()
    except Exception as exc:
        return str(getattr(exc, "read", lambda: b"")() or exc)
print("ready", flush=True)
for line in sys.stdin:
    aor, needle = line.split()
    deadline = time.time() + 3
    seen, text = None, ""
    while time.time() < deadline:
        text = lookup(aor)
        if needle in text:
            seen = time.time()
            break
        time.sleep(0.001)
    print(json.dumps([seen, text[:300]]), flush=True)
'''


def _percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def run(samples: int = 200) -> list[dict]:
    import subprocess

    from tests.harness.raw_sip import DigestClient
    from tests.lab.deployed import api, inventory, play, wait_until
    from tests.lab.netlab import Lab
    from tests.lab.test_partition import GROUPS, LAYOUT

    work = Path(tempfile.mkdtemp(prefix="cm-bench-wanlag-"))
    with Lab.build(LAYOUT, wan_delay_ms=20, base_dir=work / "lab") as lab:
        if not play("site", inventory(lab, work / "hosts.yml", groups=GROUPS), work).ok:
            raise RuntimeError("site.yml failed")
        fra, ber = "fra-sip1", "ber-sip1"
        tenant = api(lab, fra, "tenant.create", name="Lag", sip_domain="lag.example")
        user = api(lab, fra, "user.create", tenant_id=tenant["id"], name="Lag")
        api(lab, fra, "sip_account.create", user_id=user["id"], username="lag1", password="pw-lag1-secret")
        machine = lab.address(fra).rsplit(".", 1)[0] + ".1"

        used: set[int] = set()

        def register() -> tuple[float, int] | None:
            client = DigestClient((lab.address(fra), 5060), src_ip=machine, timeout=2.0)
            while client.port in used:  # each sample's contact is new (its port): an old one would be seen at once
                client.close()
                client = DigestClient((lab.address(fra), 5060), src_ip=machine, timeout=2.0)
            used.add(client.port)
            try:
                _, ok = client.attempt("lag1", "lag.example", "pw-lag1-secret")
                return (time.time(), client.port) if ok is not None and ok.code == 200 else None
            finally:
                client.close()

        wait_until(register, 30, "a REGISTER through Frankfurt")  # the snapshot reached the node
        probe = ("python3 -c \"import socket,time\nt=time.monotonic()\ns=socket.create_connection(('"
                 + lab.address(ber) + "',22),timeout=2)\nprint(time.monotonic()-t)\"")
        wan = [float(lab.ssh(fra, probe).stdout) / 2 for _ in range(20)]
        watcher = subprocess.Popen(lab.ssh_argv(ber) + [f"python3 -c '{WATCHER}'"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        try:
            if watcher.stdout.readline().strip() != "ready":
                raise RuntimeError("the watcher on Berlin's node did not start")
            lags = []
            for _ in range(samples):
                got = register()
                if got is None:
                    continue
                ok_at, port = got
                watcher.stdin.write(f"lag1@lag.example :{port}\n")
                watcher.stdin.flush()
                answer = watcher.stdout.readline()
                if not answer:
                    raise RuntimeError("the watcher on Berlin's node stopped")
                seen, said = json.loads(answer)
                if seen is not None:
                    lags.append(seen - ok_at)
                elif not lags:
                    print(f"  not seen across the WAN within 3 s; Berlin's node said: {said}", flush=True)
        finally:
            watcher.stdin.close()
            watcher.wait(timeout=15)
    if len(lags) < samples * 0.9:
        raise RuntimeError(f"only {len(lags)} of {samples} registrations were seen across the WAN")
    p50, p99, one_way = _percentile(lags, 50) * 1000, _percentile(lags, 99) * 1000, statistics.median(wan) * 1000
    print(f"  {len(lags)} registrations: lag p50 {p50:.1f} ms, p99 {p99:.1f} ms (min {min(lags) * 1000:.1f}, max "
          f"{max(lags) * 1000:.1f}); the WAN one way {one_way:.1f} ms", flush=True)
    detail = {"samples": len(lags), "min_ms": round(min(lags) * 1000, 1), "max_ms": round(max(lags) * 1000, 1),
              "wan_one_way_ms": round(one_way, 1), "wan_delay_configured_ms": 20}
    return [
        {"name": "wan_replication_lag_p50_ms", "value": round(p50, 1), "unit": "ms, REGISTER saved in one DC to seen in the other",
         "baseline": round(one_way, 1), "ratio": round(p50 / one_way, 2), "detail": detail},
        {"name": "wan_replication_lag_p99_ms", "value": round(p99, 1), "unit": "ms", "baseline": round(one_way, 1),
         "ratio": round(p99 / one_way, 2), "detail": detail},
    ]
