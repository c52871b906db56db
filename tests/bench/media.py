"""`make bench ARGS=--only-media`: concurrent announcement and IVR menu sessions one media server sustains (issue 23's
goal: 100 per core, < 0.5 % failed, no audio gaps — received RTP inter-arrival p99 < 30 ms), its CPU per session, and
concurrent voicemail deposits (`run_deposits`).

The media server of this tree is started alone (no Kamailio in the path: what is measured is the media server) with
a 10 s prompt and as many processes as the highest level needs (4 calls each: the pjsua2 wheel's limit,
mediaserver/workers.py). For each level N, in `rounds` rounds: N SIPp calls, 4 to each process as Kamailio spreads
them, ask for the announcement within one second, each
gets 183, the prompt as early media, then 404 — so N sessions play at once for most of the prompt. One receiver takes
every call's RTP (streams told apart by SSRC) and times each packet. Per round: failed calls, the p99 of the gaps
between consecutive packets of a stream (the first packet of each stream excluded), the media server's CPU
(utime + stime from /proc) per session-second. Baseline in the same rounds: the receiver's own view of an idle
stream is not needed — RTP is paced at 20 ms, so any p99 above 20 ms is delay the media server added.
Loopback only; every load bounded in count and time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

from tests.bench.fraud import tree_cpu_s  # the parent and its workers (its direct children)
from tests.bench.run import ROOT, csv, sipp
from tests.harness.ports import free_port, free_port_block

HERE = Path(__file__).resolve().parent
PROMPT_S = 10.0
PER_WORKER = 4  # calls one media server process takes at once (the pjsua2 wheel's PJSUA_MAX_CALLS)


class Receiver:
    """Every RTP packet sent to one port: (SSRC, arrival)."""

    def __init__(self):
        self.port = free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.got: list[tuple[int, float]] = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        recv, got, now = self.sock.recv, self.got, time.monotonic
        while not self.stop:
            try:
                data = recv(2048)
            except (socket.timeout, OSError):
                continue
            if len(data) >= 12:
                got.append((int.from_bytes(data[8:12], "big"), now()))

    def close(self) -> list[tuple[int, float]]:
        self.stop = True
        self.thread.join(2)
        self.sock.close()
        return self.got


def gaps_p99_ms(packets: list[tuple[int, float]]) -> tuple[float, int]:
    """(p99 of the gaps between a stream's consecutive packets in ms, streams seen)."""
    last: dict[int, float] = {}
    gaps: list[float] = []
    for ssrc, t in packets:
        if ssrc in last:
            gaps.append((t - last[ssrc]) * 1000)
        last[ssrc] = t
    if not gaps:
        return float("nan"), len(last)
    gaps.sort()
    return round(gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))], 1), len(last)


def prompt(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(
            b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(int(8000 * seconds)))
        )


def run(levels: tuple[int, ...] = (50, 100, 150, 200), rounds: int = 3, kind: str = "announcement") -> list[dict]:
    """`kind` "announcement": each call a refusal's prompt, then 404; "menu": each call IVR menus (kemi.policy.ivr)
    whose recording is the prompt, no key pressed, then goodbye and 480."""
    from controlplane.node.probe import probe

    work = Path(tempfile.mkdtemp(prefix="cm-bench-media-"))
    extra: list[str] = []
    if kind == "menu":
        store = work / "store"
        prompt(store / "ivr" / "1" / "menu.wav", PROMPT_S)
        prompt(work / "prompts" / "en" / "vm_goodbye.wav", 0.3)
        menu = {"id": 1, "tenant_id": 1, "name": "bench", "timeout_s": 1, "tries": 1, "actions": []}
        (store / "ivr" / "menus.json").write_text(json.dumps([menu]))
        extra = ["--voicemail-store", str(store)]
    else:
        prompt(work / "prompts" / "en" / "not_in_service.wav", PROMPT_S)
    scenario = HERE / ("uac_menu.xml" if kind == "menu" else "uac_announcement.xml")
    workers = -(-max(levels) // PER_WORKER)
    port = free_port_block(workers)
    python = ROOT / ".venv" / "bin" / "python"
    log = open(work / "mediaserver.log", "w")
    server = subprocess.Popen(
        [str(python if python.exists() else sys.executable), "-m", "mediaserver", "--port", str(port), "--prompts",
         str(work / "prompts"), "--workers", str(workers), *extra],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    results: dict[int, list[dict]] = {n: [] for n in levels}
    try:
        deadline = time.monotonic() + 60
        while not all(probe("127.0.0.1", port + i, 0.5)[0] for i in range(workers)):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the media server did not start: {(work / 'mediaserver.log').read_text()[-2000:]}")
        for round_no in range(rounds):
            for n in levels:
                rx = Receiver()
                inf = csv(work / f"inf-{n}-{round_no}.csv", [str(rx.port)])
                cpu0 = tree_cpu_s(server.pid)
                # as Kamailio spreads them (kemi.policy.announce.worker_port): PER_WORKER calls to each process
                shares = [min(PER_WORKER, n - i * PER_WORKER) for i in range(-(-n // PER_WORKER))]
                outcomes: list[tuple[dict, float]] = []

                def one(i: int, calls: int) -> None:
                    outcomes.append(sipp(port + i, scenario,
                                         ["-inf", str(inf), "-m", str(calls), "-r", str(calls), "-l", str(calls),
                                          "-timeout", f"{int(PROMPT_S) + 30}s", "-recv_timeout", f"{int(PROMPT_S) + 10}s"],
                                         work, PROMPT_S + 60))

                threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(shares)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                cpu = tree_cpu_s(server.pid) - cpu0
                elapsed = max(e for _, e in outcomes)
                time.sleep(0.5)
                p99, streams = gaps_p99_ms(rx.close())
                failed = sum(st.get("FailedCall(C)", c) for (st, _), c in zip(outcomes, shares))
                row = {"sessions": n, "failed": failed, "failed_pct": round(100.0 * failed / n, 2), "streams": streams,
                       "gap_p99_ms": p99, "cpu_s": round(cpu, 2),
                       "cpu_ms_per_session_s": round(cpu * 1000 / (n * PROMPT_S), 3), "elapsed_s": round(elapsed, 1)}
                results[n].append(row)
                print(f"  round {round_no + 1}, {n} sessions: {row}", flush=True)
                time.sleep(1)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = []
    for n, rows in results.items():
        if not rows:
            continue
        p99s = [r["gap_p99_ms"] for r in rows]
        cpus = [r["cpu_ms_per_session_s"] for r in rows]
        sustained = all(r["failed_pct"] < 0.5 and r["gap_p99_ms"] < 30 for r in rows)
        out.append({
            "name": f"media_server_{n}_{'menu_' if kind == 'menu' else ''}sessions", "value": statistics.median(p99s),
            "unit": "ms RTP gap p99 (median of rounds)",
            "baseline": 20.0, "ratio": round(statistics.median(p99s) / 20.0, 2),
            "detail": {"sustained": sustained, "gap_p99_ms": p99s, "cpu_ms_per_session_s": cpus,
                       "cpu_cores_at_level": [round(r["cpu_s"] / PROMPT_S, 2) for r in rows],
                       "failed": [r["failed"] for r in rows], "streams": [r["streams"] for r in rows], "date": date,
                       "cores": os.cpu_count()},
        })
    return out


# ---------------------------------------------------------------- voicemail deposits

GREETING_S = 1.0
TONE_S = 8.0  # what each caller says: a tone, streamed by SIPp from the answer on
HOLD_MS = 10000


def voiced_seconds(path: Path) -> float:
    """Seconds of a recording that carry sound (20 ms frames above -40 dBFS): a frame the media server dropped is a
    frame of silence here."""
    import audioop

    with wave.open(str(path), "rb") as w:
        pcm = w.readframes(w.getnframes())
    frame = 320  # 20 ms of 16-bit samples at 8 kHz
    return sum(0.02 for i in range(0, len(pcm) - frame + 1, frame) if audioop.rms(pcm[i : i + frame], 2) > 330)


def run_deposits(levels: tuple[int, ...] = (50, 100, 150), rounds: int = 3) -> list[dict]:
    """N callers leave a message at once (`uac_deposit.xml`): answered, a 1 s greeting and the tone, then each caller's
    8 s of audio recorded into the spool. Per round: failed calls, messages written, the worst message's share of
    the audio it should hold (dropped frames are silence), the media server's CPU per session-second."""
    from controlplane.node.probe import probe
    from tests.harness.sipp import tone_file

    work = Path(tempfile.mkdtemp(prefix="cm-bench-deposit-"))
    prompt(work / "prompts" / "en" / "vm_unavailable.wav", GREETING_S)
    prompt(work / "prompts" / "en" / "vm_beep.wav", 0.2)
    tone = tone_file(work / "tone.ulaw", TONE_S)
    scenario = work / "uac_deposit.xml"
    scenario.write_text((HERE / "uac_deposit.xml").read_text().replace("@TONE@", str(tone)).replace("@HOLD_MS@", str(HOLD_MS)))
    spool = work / "spool"
    workers = -(-max(levels) // PER_WORKER)
    port = free_port_block(workers)
    python = ROOT / ".venv" / "bin" / "python"
    log = open(work / "mediaserver.log", "w")
    server = subprocess.Popen(
        [str(python if python.exists() else sys.executable), "-m", "mediaserver", "--port", str(port), "--prompts",
         str(work / "prompts"), "--workers", str(workers), "--voicemail-spool", str(spool)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    results: dict[int, list[dict]] = {n: [] for n in levels}
    try:
        deadline = time.monotonic() + 60
        while not all(probe("127.0.0.1", port + i, 0.5)[0] for i in range(workers)):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the media server did not start: {(work / 'mediaserver.log').read_text()[-2000:]}")
        for round_no in range(rounds):
            for n in levels:
                shutil.rmtree(spool / "new", ignore_errors=True)
                cpu0 = tree_cpu_s(server.pid)
                shares = [min(PER_WORKER, n - i * PER_WORKER) for i in range(-(-n // PER_WORKER))]
                outcomes: list[tuple[dict, float]] = []

                def one(i: int, calls: int) -> None:
                    outcomes.append(sipp(port + i, scenario,
                                         ["-m", str(calls), "-r", str(calls), "-l", str(calls), "-mp", str(free_port()),
                                          "-timeout", "60s", "-recv_timeout", "30s"], work, 90))

                threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(shares)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                deadline = time.monotonic() + 15  # the last messages are handed over a moment after their BYE
                while len(list((spool / "new").glob("*.json"))) < n and time.monotonic() < deadline:
                    time.sleep(0.2)
                cpu = tree_cpu_s(server.pid) - cpu0
                in_time = len(list((spool / "new").glob("*.json")))
                deadline = time.monotonic() + 45  # late is not lost: a message handed over later is counted apart
                while len(list((spool / "new").glob("*.json"))) < n and time.monotonic() < deadline:
                    time.sleep(0.5)
                failed = sum(st.get("FailedCall(C)", c) for (st, _), c in zip(outcomes, shares))
                wavs = sorted((spool / "new").glob("*.wav"))
                # the tone starts with the answer; the recording after greeting and beep: ~TONE_S - 1.3 s of it
                expected = TONE_S - GREETING_S - 0.3
                shares_heard = sorted(min(1.0, voiced_seconds(w) / expected) for w in wavs)
                row = {"sessions": n, "failed": failed, "failed_pct": round(100.0 * failed / n, 2),
                       "messages": len(wavs), "late": len(wavs) - in_time,
                       "worst_audio_share": round(shares_heard[0], 3) if shares_heard else 0.0,
                       "cpu_s": round(cpu, 2),
                       "cpu_ms_per_session_s": round(cpu * 1000 / (n * HOLD_MS / 1000), 3)}
                results[n].append(row)
                print(f"  round {round_no + 1}, {n} deposits: {row}", flush=True)
                time.sleep(1)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = []
    for n, rows in results.items():
        if not rows:
            continue
        worst = [r["worst_audio_share"] for r in rows]
        cpus = [r["cpu_ms_per_session_s"] for r in rows]
        sustained = all(r["failed_pct"] < 0.5 and r["messages"] == n and r["worst_audio_share"] > 0.95 for r in rows)
        out.append({
            "name": f"media_server_{n}_deposits", "value": statistics.median(worst),
            "unit": "worst message's share of its audio (median of rounds)", "baseline": 1.0,
            "ratio": round(statistics.median(worst), 3),
            "detail": {"sustained": sustained, "worst_audio_share": worst, "cpu_ms_per_session_s": cpus,
                       "cpu_cores_at_level": [round(r["cpu_s"] / (HOLD_MS / 1000), 2) for r in rows],
                       "failed": [r["failed"] for r in rows], "messages": [r["messages"] for r in rows],
                       "late": [r["late"] for r in rows], "date": date,
                       "cores": os.cpu_count()},
        })
    return out
