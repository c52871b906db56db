"""controlplane/node/probe.py, keepalived's check of a pair's node: run as keepalived runs it (a script, its exit code),
against UDP servers on loopback that answer as Kamailio and RTPengine do, or do not answer."""
import socket
import subprocess
import sys
import threading

import pytest

from controlplane.node.settings import ROOT

PROBE = ROOT / "controlplane" / "node" / "probe.py"


def server(answer):
    """A UDP server answering each datagram with answer(datagram) (None: silence), until the test ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def run():
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except socket.timeout:
                continue
            reply = answer(data)
            if reply is not None:
                sock.sendto(reply, peer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return sock, stop, thread


def run_probe(*args):
    return subprocess.run([sys.executable, "-I", str(PROBE), *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def udp():
    made = []

    def make(answer):
        sock, stop, thread = server(answer)
        made.append((sock, stop, thread))
        return str(sock.getsockname()[1])

    yield make
    for sock, stop, thread in made:
        stop.set()
        thread.join(2)
        sock.close()


def sip_reply(status):
    def answer(request):
        assert request.startswith(b"OPTIONS sip:127.0.0.1:") and b"\r\nCSeq: 1 OPTIONS\r\n" in request
        return b"SIP/2.0 100 Trying\r\n\r\n" if status == "100 only" else f"SIP/2.0 {status}\r\n\r\n".encode()
    return answer


def test_a_sip_node_answering_200_passes_and_one_draining_or_silent_fails(udp):
    assert run_probe("sip", "127.0.0.1", udp(sip_reply("200 OK")), "0.5").returncode == 0
    draining = run_probe("sip", "127.0.0.1", udp(sip_reply("503 Service Unavailable")), "0.5")
    assert draining.returncode == 1 and "503 Service Unavailable" in draining.stderr
    silent = run_probe("sip", "127.0.0.1", udp(lambda _: None), "0.3")
    assert silent.returncode == 1 and "no answer within 0.3 s" in silent.stderr
    assert run_probe("sip", "127.0.0.1", udp(sip_reply("100 only")), "0.3").returncode == 1  # a provisional is no answer


def tcp_server(answer):
    """A TCP server answering each connection's first line with answer(line) and closing it (None: silence)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.1)
    stop = threading.Event()

    def run():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except socket.timeout:
                continue
            with conn:
                line = conn.recv(4096)
                reply = answer(line)
                if reply is None:
                    stop.wait(1.5)
                else:
                    conn.sendall(reply)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return sock, stop, thread


def test_an_rtpengine_whose_cli_answers_passes_and_one_silent_or_gone_fails():
    made = []

    def serve(answer):
        made.append(tcp_server(answer))
        return str(made[-1][0].getsockname()[1])

    def cli(line):
        assert line == b"list numsessions\n"
        return b"Current sessions own: 0\nCurrent sessions foreign: 3\n"

    try:
        first = serve(cli)
        assert run_probe("rtpengine", "127.0.0.1", first).returncode == 0
        silent = run_probe("rtpengine", "127.0.0.1", serve(lambda _: None), "0.3")
        assert silent.returncode == 1 and "no answer within 0.3 s" in silent.stderr
        assert run_probe("rtpengine", "127.0.0.1", serve(lambda _: b"")).returncode == 1
    finally:
        for sock, stop, thread in made:
            stop.set()
            thread.join(3)
            sock.close()
    gone = run_probe("rtpengine", "127.0.0.1", first, "0.3")  # nothing listens any more
    assert gone.returncode == 1 and "refused" in gone.stderr.lower()


def test_a_wrong_command_line_says_how_to_use_it():
    for args in ((), ("http", "127.0.0.1", "80"), ("sip", "127.0.0.1", "port")):
        r = run_probe(*args)
        assert r.returncode == 2 and ("usage" in r.stderr or "probe:" in r.stderr), (args, r.stderr)
