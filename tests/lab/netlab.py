"""The rollout lab: real SSH hosts on one machine, built from network namespaces (pyroute2).

Each host is a network namespace with one interface (`eth0`) on its data center's bridge and an address from
198.18.0.0/15 (RFC 2544's benchmarking range — never private or public addresses); it runs its own `sshd` (Debian's
openssh-server) in a private mount namespace, so `/etc/callmanager`, `/var/lib/callmanager`, `/var/log/callmanager`,
`/opt/callmanager` (a release installed by Ansible) and `/run` are that host's own. Data centers are joined by a router namespace whose links delay (and may lose)
packets like a WAN (netem). The machine itself (the Ansible controller) has an address on every data center's bridge
and reaches the hosts by ssh with the lab's key, exactly as it reaches real ones.

    with Lab.build({"dc_fra": ["fra1", "fra2"], "dc_ber": ["ber1"]}, wan_delay_ms=20) as lab:
        lab.ssh("fra1", "hostname -I")

Teardown removes everything the lab made — processes (by their process groups), namespaces, links, bridges,
the mount points it created and its directory — also when the build fails half-way, when the code inside the
`with` raises, or when the process gets SIGTERM/SIGINT. `python -m tests.lab.netlab up|down|status` (`make lab`,
`make lab-down`) keeps one lab for people, its state in var/lab/.
"""
from __future__ import annotations

import atexit
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

NET = ipaddress.ip_network("198.18.0.0/15")
PRIVATE_DIRS = ("/etc/callmanager", "/var/lib/callmanager", "/var/log/callmanager", "/opt/callmanager")
SSHD = "/usr/sbin/sshd"
ROOT = Path(__file__).resolve().parents[2]


class LabError(RuntimeError):
    pass


@dataclass
class Host:
    name: str
    dc: str
    address: str
    netns: str
    veth: str  # the machine's end of the host's link (on the data center's bridge)
    dir: str  # the host's own files: etc/, lib/, log/, sshd_config
    sshd_pid: int = 0


@dataclass
class State:
    """Everything a lab made, written to its directory as it is made (so `down` can remove it from another process)."""

    lab_id: str
    dir: str
    hosts: dict[str, Host] = field(default_factory=dict)
    bridges: dict[str, str] = field(default_factory=dict)  # dc -> bridge name
    router_ns: str = ""
    router_links: list[str] = field(default_factory=list)  # the machine's ends of the router's links
    netns: list[str] = field(default_factory=list)
    mountpoints: list[str] = field(default_factory=list)  # created by the lab (removed when empty)
    pids: list[int] = field(default_factory=list)  # process-group leaders

    def save(self) -> None:
        doc = asdict(self)
        Path(self.dir, "state.json").write_text(json.dumps(doc, indent=1))

    @classmethod
    def load(cls, lab_dir: str | Path) -> "State":
        doc = json.loads(Path(lab_dir, "state.json").read_text())
        doc["hosts"] = {k: Host(**v) for k, v in doc["hosts"].items()}
        return cls(**doc)


def _run(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()[:500]}")
    return r


def free_subnets(count: int) -> list[ipaddress.IPv4Network]:
    """`count` /24s of 198.18.0.0/15 that no interface of the machine uses yet (each data center of a lab takes one;
    two labs up at once never share an address)."""
    used = set()
    for line in _run("ip", "-o", "-4", "addr", "show", check=False).stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            net = ipaddress.ip_interface(parts[parts.index("inet") + 1]).network
            used |= {n for n in NET.subnets(new_prefix=24) if n.overlaps(net)}
    free = [n for n in list(NET.subnets(new_prefix=24))[1:] if n not in used]
    if len(free) < count:
        raise LabError(f"198.18.0.0/15 has {len(free)} free /24s, the lab needs {count}")
    return free[:count]


class Lab:
    def __init__(self, state: State, wan_delay_ms: float = 0.0, wan_loss_pct: float = 0.0):
        self.state = state
        self.wan_delay_ms = wan_delay_ms
        self.wan_loss_pct = wan_loss_pct
        self._down = False

    # ------------------------------------------------------------------ build

    @classmethod
    def build(cls, layout: dict[str, list[str]], wan_delay_ms: float = 0.0, wan_loss_pct: float = 0.0,
              base_dir: str | Path | None = None) -> "Lab":
        """`layout`: data center -> host names, in order; data center i gets a free /24 of 198.18.0.0/15, its hosts .11,
        .12, ..., the machine .1. Raises LabError (having removed what it made) on failure."""
        if not layout or not all(layout.values()):
            raise LabError("a lab needs at least one data center with at least one host")
        if len(layout) > 200 or any(len(h) > 200 for h in layout.values()):
            raise LabError("at most 200 data centers of 200 hosts")
        names = [h for hs in layout.values() for h in hs]
        if len(set(names)) != len(names):
            raise LabError("host names must be unique")
        lab_id = uuid.uuid4().hex[:4]
        lab_dir = Path(base_dir or ROOT / "var" / "lab") / lab_id
        lab_dir.mkdir(parents=True)
        os.chmod(lab_dir, 0o700)
        lab = cls(State(lab_id, str(lab_dir)), wan_delay_ms, wan_loss_pct)
        lab._guard()
        try:
            lab._make(layout)
        except BaseException:
            lab.down()
            raise
        return lab

    def _guard(self) -> None:
        """Teardown on exit and on SIGTERM/SIGINT (a killed test leaves nothing behind)."""
        atexit.register(self.down)
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)

            def handler(signum, frame, previous=previous):
                self.down()
                if callable(previous):
                    previous(signum, frame)
                else:
                    sys.exit(128 + signum)

            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread: atexit and the context manager still apply
                pass

    def _make(self, layout: dict[str, list[str]]) -> None:
        from pyroute2 import IPRoute, NetNS, netns

        st = self.state
        self._keys()
        for path in PRIVATE_DIRS:
            if not os.path.isdir(path):
                os.makedirs(path)
                st.mountpoints.append(path)
        subnets = free_subnets(len(layout))
        with IPRoute() as ip:
            for dc_index, dc in enumerate(layout, start=1):
                subnet = subnets[dc_index - 1]
                bridge = f"cm{st.lab_id}b{dc_index}"
                ip.link("add", ifname=bridge, kind="bridge")
                st.bridges[dc] = bridge
                st.save()
                idx = ip.link_lookup(ifname=bridge)[0]
                ip.addr("add", index=idx, address=str(subnet[1]), prefixlen=24)
                ip.link("set", index=idx, state="up")
                for host_index, name in enumerate(layout[dc], start=11):
                    self._host(ip, NetNS, netns, dc, name, str(subnet[host_index]), bridge)
            if len(layout) > 1:
                self._router(ip, NetNS, netns, layout)
        st.save()
        for name in st.hosts:
            self._sshd(name)
        for name in st.hosts:
            self._wait_ssh(name)

    def _keys(self) -> None:
        d = Path(self.state.dir)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "callmanager-lab", "-f", str(d / "id_ed25519"))
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "callmanager-lab-host", "-f", str(d / "host_ed25519"))
        shutil.copy(d / "id_ed25519.pub", d / "authorized_keys")

    def _host(self, ip, NetNS, netns, dc: str, name: str, address: str, bridge: str) -> None:
        st = self.state
        ns = f"cm-{st.lab_id}-{name}"
        veth = f"cm{st.lab_id}h{len(st.hosts) + 1}"
        netns.create(ns)
        st.netns.append(ns)
        host_dir = Path(st.dir, name)
        for sub in ("etc", "lib", "log", "opt"):
            (host_dir / sub).mkdir(parents=True)
        st.hosts[name] = Host(name, dc, address, ns, veth, str(host_dir))
        st.save()
        ip.link("add", ifname=veth, kind="veth", peer={"ifname": veth + "p", "net_ns_fd": ns})
        idx = ip.link_lookup(ifname=veth)[0]
        ip.link("set", index=idx, master=ip.link_lookup(ifname=bridge)[0])
        ip.link("set", index=idx, state="up")
        with NetNS(ns) as nsip:
            lo = nsip.link_lookup(ifname="lo")[0]
            nsip.link("set", index=lo, state="up")
            peer = nsip.link_lookup(ifname=veth + "p")[0]
            nsip.link("set", index=peer, ifname="eth0")
            nsip.addr("add", index=peer, address=address, prefixlen=24)
            nsip.link("set", index=peer, state="up")
            nsip.route("add", dst="198.18.0.0/15", oif=peer, scope=253)  # on-link: the data centers share one link (the WAN forwarder)
        _no_offloads(ns, "eth0")

    def _router(self, ip, NetNS, netns, layout: dict[str, list[str]]) -> None:
        """One namespace joining the data centers' bridges through the WAN forwarder (tests/lab/wanlink.py), which
        delays and drops frames in user space: the kernel here has no netem."""
        st = self.state
        st.router_ns = f"cm-{st.lab_id}-wan"
        netns.create(st.router_ns)
        st.netns.append(st.router_ns)
        st.save()
        ends = []
        for dc_index, dc in enumerate(layout, start=1):
            end = f"cm{st.lab_id}r{dc_index}"
            ip.link("add", ifname=end, kind="veth", peer={"ifname": f"wan{dc_index}", "net_ns_fd": st.router_ns})
            st.router_links.append(end)
            st.save()
            idx = ip.link_lookup(ifname=end)[0]
            ip.link("set", index=idx, master=ip.link_lookup(ifname=st.bridges[dc])[0])
            ip.link("set", index=idx, state="up")
            with NetNS(st.router_ns) as rip:
                r = rip.link_lookup(ifname=f"wan{dc_index}")[0]
                rip.link("set", index=r, state="up", promiscuity=1)
            _no_offloads(st.router_ns, f"wan{dc_index}")
            _run("ip", "netns", "exec", st.router_ns, "ip", "link", "set", f"wan{dc_index}", "promisc", "on")
            ends.append(f"wan{dc_index}")
        log = open(Path(st.dir, "wanlink.log"), "ab")
        proc = subprocess.Popen(["ip", "netns", "exec", st.router_ns, sys.executable, "-m", "tests.lab.wanlink", *ends,
                                 "--delay-ms", str(self.wan_delay_ms), "--loss-pct", str(self.wan_loss_pct)],
                                cwd=str(ROOT), stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        st.pids.append(proc.pid)
        st.save()

    def _sshd(self, name: str) -> None:
        h = self.state.hosts[name]
        d = Path(self.state.dir)
        cfg = Path(h.dir, "sshd_config")
        cfg.write_text(
            f"ListenAddress {h.address}\nPort 22\nHostKey {d / 'host_ed25519'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nPidFile /run/sshd.lab.pid\nSubsystem sftp internal-sftp\nLogLevel ERROR\nUseDNS no\n"
            f"SetEnv CALLMANAGER_LAB_HOST={name}\n"
        )
        mounts = " && ".join(
            ["mount --make-rprivate /", "mount -t tmpfs -o mode=0755 lab-run /run", "mkdir -p /run/sshd /run/callmanager"]
            + [f"mount --bind {h.dir}/{sub} {path}" for sub, path in zip(("etc", "lib", "log", "opt"), PRIVATE_DIRS)]
        )
        log = open(Path(h.dir, "sshd.log"), "ab")
        proc = subprocess.Popen(["ip", "netns", "exec", h.netns, "unshare", "--mount", "--", "sh", "-c", f"{mounts} && exec {SSHD} -D -e -f {cfg}"],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        h.sshd_pid = proc.pid
        self.state.pids.append(proc.pid)
        self.state.save()

    def _wait_ssh(self, name: str, timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        while True:
            r = self.ssh(name, "true", check=False, timeout=5)
            if r.returncode == 0:
                return
            if time.monotonic() > end:
                log = Path(self.state.hosts[name].dir, "sshd.log").read_text(errors="replace")[-500:]
                raise LabError(f"lab host {name} does not answer ssh: {r.stderr.strip()[:300]} (sshd: {log})")
            time.sleep(0.2)

    # ------------------------------------------------------------------ use

    def ssh_argv(self, name: str) -> list[str]:
        h = self.state.hosts[name]
        return ["ssh", "-i", str(Path(self.state.dir, "id_ed25519")), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", f"root@{h.address}"]

    def ssh(self, name: str, command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run(self.ssh_argv(name) + [command], capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise LabError(f"{name}: {command!r}: exit {r.returncode}: {r.stderr.strip()[:500]}")
        return r

    def crash(self, name: str) -> None:
        """The host fails as a machine does: every process in it killed at once (SIGKILL, sshd and the supervisor
        included), then its link down (a dead machine answers nothing, not even ARP for an address it had)."""
        h = self.state.hosts[name]
        for pid in _pids_in_netns(h.netns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _run("ip", "link", "set", h.veth, "down")

    def wan(self, up: bool) -> None:
        """Partition the data centers (every link to the WAN down: nothing crosses) or heal them."""
        for end in self.state.router_links:
            _run("ip", "link", "set", end, "up" if up else "down")

    @property
    def key(self) -> str:
        return str(Path(self.state.dir, "id_ed25519"))

    def address(self, name: str) -> str:
        return self.state.hosts[name].address

    # ------------------------------------------------------------------ teardown

    def down(self) -> None:
        if self._down:
            return
        self._down = True
        teardown(self.state)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.down()


def teardown(st: State) -> list[str]:
    """Remove everything `st` lists, whatever was made of it; returns what could not be removed (empty: all gone)."""
    problems = []
    for pid in st.pids:  # sshd and every session it started: their process groups
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        except PermissionError as exc:
            problems.append(f"process group {pid}: {exc}")
    deadline = time.monotonic() + 5
    for pid in st.pids:
        while time.monotonic() < deadline and (_reap(pid) or _group_alive(pid)):
            time.sleep(0.05)
        if _group_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(pid, block=True)
    for ns in st.netns:  # any process still inside a lab namespace (a session that left its group) ends with it
        for pid in _pids_in_netns(ns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    from pyroute2 import IPRoute, netns

    with IPRoute() as ip:
        for name in [h.veth for h in st.hosts.values()] + st.router_links + list(st.bridges.values()):
            found = ip.link_lookup(ifname=name)
            if found:
                try:
                    ip.link("del", index=found[0])
                except Exception as exc:  # noqa: BLE001 — reported, the rest still removed
                    problems.append(f"link {name}: {exc}")
    existing = set(netns.listnetns())
    for ns in st.netns:
        if ns in existing:
            try:
                netns.remove(ns)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"netns {ns}: {exc}")
    for path in st.mountpoints:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"mount point {path}: {exc}")
    shutil.rmtree(st.dir, ignore_errors=True)
    return problems


def _no_offloads(ns: str, ifname: str) -> None:
    """Frames no larger than the MTU, with their checksums filled in (the WAN forwarder reads and writes whole frames:
    an offloaded checksum would never be computed)."""
    _run("ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off", "gro", "off", check=False)


def _reap(pid: int, block: bool = False) -> bool:
    """Collect our own child once it has exited (a zombie still counts as a live process group); False when done."""
    try:
        done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return False  # not ours (a lab brought down from another process) or collected already
    return done == 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _pids_in_netns(ns: str) -> list[int]:
    r = _run("ip", "netns", "pids", ns, check=False)
    return [int(x) for x in r.stdout.split() if x.isdigit()]


def leftovers(lab_id: str) -> list[str]:
    """What of lab `lab_id` is still on the machine: links, namespaces, processes (empty: nothing)."""
    out = []
    r = _run("ip", "-o", "link", "show", check=False)
    out += [f"link {line.split(':')[1].strip().split('@')[0]}" for line in r.stdout.splitlines() if f"cm{lab_id}" in line]
    r = _run("ip", "netns", "list", check=False)
    out += [f"netns {line.split()[0]}" for line in r.stdout.splitlines() if line.startswith(f"cm-{lab_id}-")]
    r = _run("ps", "-eo", "pid,args", check=False)
    out += [f"process {line.strip()[:120]}" for line in r.stdout.splitlines() if f"/lab/{lab_id}/" in line]
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tests.lab.netlab", description="the rollout lab: network-namespace hosts with sshd")
    ap.add_argument("action", choices=("up", "down", "status"))
    ap.add_argument("--layout", default="dc_fra=fra1,fra2;dc_ber=ber1,ber2", help="dc=host,host;dc=host (default: 2 x 2)")
    ap.add_argument("--wan-delay-ms", type=float, default=20.0)
    ap.add_argument("--wan-loss-pct", type=float, default=0.0)
    args = ap.parse_args(argv)
    base = ROOT / "var" / "lab"
    current = base / "current"
    if args.action == "up":
        if current.exists():
            print(f"a lab is up already ({current.resolve().name}): make lab-down first", file=sys.stderr)
            return 1
        layout = {dc: hosts.split(",") for dc, _, hosts in (part.partition("=") for part in args.layout.split(";"))}
        lab = Lab.build(layout, args.wan_delay_ms, args.wan_loss_pct, base)
        atexit.unregister(lab.down)  # it stays up for people: `down` removes it
        current.symlink_to(lab.state.dir)
        print(f"lab {lab.state.lab_id} up; ssh -i {lab.key} root@<address>")
        for h in lab.state.hosts.values():
            print(f"  {h.name:10} {h.dc:10} {h.address}")
        return 0
    if not current.exists():
        print("no lab is up")
        return 0
    st = State.load(current.resolve())
    if args.action == "status":
        for h in st.hosts.values():
            print(f"  {h.name:10} {h.dc:10} {h.address}")
        return 0
    problems = teardown(st)
    current.unlink()
    for p in problems:
        print("not removed:", p, file=sys.stderr)
    print(f"lab {st.lab_id} down")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
