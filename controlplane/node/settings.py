"""Node settings: one defaults table, layered defaults < JSON file < environment < command line (pydantic-settings).

Node identity and every address and port are data here, never a code branch. Every value is typed and checked
when the settings load: a node, `make run` and Ansible (`python -m controlplane.node.settings FILE`) refuse the
same wrong value with the same message, naming the setting.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, JsonConfigSettingsSource, SettingsConfigDict
from pydantic_settings.sources import EnvSettingsSource

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")  # Debian's ca-certificates
ENV_PREFIX = "CALLMANAGER_"

# Where load_settings() reads from: (JSON file or None, environment mapping). A context variable, not a global:
# pydantic-settings asks the class for its sources.
_SOURCES: ContextVar[tuple[Path | None, Mapping[str, str]]] = ContextVar("node_settings_sources", default=(None, {}))


class _MappingEnv(EnvSettingsSource):
    """CALLMANAGER_<SETTING> variables from the mapping load_settings() was given (os.environ by default)."""

    def _load_env_vars(self):
        from pydantic_settings.sources.utils import parse_env_vars

        return parse_env_vars(
            dict(_SOURCES.get()[1]), self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


class NodeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True)

    node_name: str = "node1"
    datacenter: str = "dc1"  # a label on every metric of the node (Prometheus target label)
    var_dir: str = str(ROOT / "var")
    # SIP (UDP and TCP on the same address and port)
    sip_address: str = "127.0.0.1"
    sip_port: int = 5060
    # SIP over TLS (docs/tls.md) on sip_address; 0: no TLS listener. The certificate and its key (PEM files; the
    # certificate file may hold the chain): '' for both makes a self-signed one under <var_dir>/tls at start (local
    # use only; the node says so). tls_ca_file: the CAs a trunk's server certificate (calls out over TLS) and a
    # client's optional certificate (a provider's, inbound) are checked against ('' : Debian's system bundle).
    sip_tls_port: int = 5061
    tls_certificate: str = ""
    tls_private_key: str = ""
    tls_ca_file: str = ""
    # SIP over WebSocket for browsers (WebRTC, docs/webrtc.md), on sip_address: WSS on the TLS certificate (0: off; off
    # too without TLS), and plain WS — for loopback and labs only: a browser page on HTTPS may not use it (0: off).
    # Plain WS by default (-1): 8088 on a loopback sip_address (make run: the web phone works from http://127.0.0.1
    # without trusting the self-signed certificate), off on any other address.
    sip_wss_port: int = 7443
    sip_ws_port: int = -1
    trunk_tls_check_s: float = 300.0  # how often the control plane checks each TLS trunk's handshake (0: never)
    # Kamailio's own JSON-RPC over HTTP (for the control plane)
    kamailio_rpc_address: str = "127.0.0.1"
    kamailio_rpc_port: int = 5071
    kamailio_children: int = 2
    kamailio_shm_mb: int = 512
    kamailio_log_level: int = 2
    kamailio_log_prefix: bool = False  # prefix Kamailio's log lines with method, CSeq and Call-ID (~10 % CPU)
    invite_timeout_s: int = 60
    # How long an answered call can live: a call whose BYE was lost ends when the in-dialog keep-alives (OPTIONS to
    # both phones every dialog_keepalive_s; 0: off) go unanswered twice, and every call at call_max_s at the latest.
    dialog_keepalive_s: int = 30
    call_max_s: int = 43200
    # Tests only: a request carrying this header makes the Python routing raise, to show the exception barrier
    # (kemi/shell/barrier.py) at work on a real node. Empty (the default): off, nothing is read.
    kamailio_fault_header: str = ""
    # Draining (rolling upgrades, docs/operations.md): new requests are answered 503 with this Retry-After
    drain_retry_after_s: int = 120
    trunk_timeout_ms: int = 3000  # a trunk that sends nothing back within this is skipped (failover)
    device_timeout_ms: int = 5000  # a user's devices that send nothing back within this: unreachable (backup routing)
    # RTPengine
    rtpengine_address: str = "127.0.0.1"
    rtpengine_ng_port: int = 2223
    rtpengine_cli_port: int = 9901
    rtp_port_min: int = 30000
    rtp_port_max: int = 39999
    rtpengine_log_level: int = 5
    # A media node of a pair (docs/cluster.md): the pair's virtual address (keepalived) RTPengine relays media on, and
    # takes its control commands on every address (the SIP nodes send them to the virtual address); '' : none.
    rtpengine_vip: str = ""
    # The pair's Redis ("address:port", '' : none): RTPengine writes its calls to database rtpengine_redis_db there and
    # follows the other node's (rtpengine_redis_peer_dbs, keyspace notifications), so the node that takes the address
    # over relays the other's calls.
    rtpengine_redis: str = ""
    rtpengine_redis_password: str = Field(default="", repr=False)
    rtpengine_redis_db: int = 1
    rtpengine_redis_peer_dbs: list[int] = []
    # Control plane
    api_address: str = "127.0.0.1"
    api_port: int = 8080
    # The control plane's HTTP server (API, metrics, the web phone; docs/operations.md "The control plane's HTTP"):
    # api_tls serves HTTPS with the node's TLS certificate (tls_certificate, or the self-signed one); a request's
    # headers and body must arrive within api_request_timeout_s (else the connection is closed), a kept-alive
    # connection idle for api_idle_timeout_s is closed; beyond api_max_connections a request is answered 503.
    api_tls: bool = False
    api_request_timeout_s: float = 30.0
    api_idle_timeout_s: float = 15.0
    api_max_connections: int = 256
    api_max_body_bytes: int = 1 << 20
    database_url: str = ""  # default: SQLite under var_dir
    # The cluster's platform API token (Ansible: vault_admin_token). Control planes sharing one database each ensure it
    # exists and write it to var/admin.token, so every node's `cm` and admin have it. '' : the first control plane to
    # start on an empty database makes a bootstrap token and writes it (a single node).
    platform_token: str = ""
    snapshot_check_s: float = 0.25
    # how often the control plane asks the database for its configuration version: a change made through another
    # control plane of the cluster reaches this node's routing within this, plus the compile and snapshot_check_s
    snapshot_poll_s: float = 0.5
    cdr_ingest_interval_s: float = 0.5
    # how often the control plane looks whether Kamailio restarted (or a push failed) and pushes statuses again
    live_sync_interval_s: float = 10.0
    # Edge protection (docs/security.md): floods, password guessing, scanners. Sources are IP addresses.
    edge_protection: bool = True
    edge_window_s: int = 10  # the sliding window of the request counters
    edge_max_requests: int = 1000  # requests per window from one source before it is banned
    edge_max_unauthenticated: int = (
        50  # requests per window that did not authenticate (net of those that did) before a ban
    )
    edge_ban_s: int = 300  # a banned source is dropped silently this long
    edge_exempt: str = (
        ""  # comma-separated addresses / CIDR ranges never banned (own nodes, SBCs); trunks are exempt anyway
    )
    auth_failures_source: int = 10  # failed digest authentications from one source before it is banned
    auth_failures_account: int = 5  # failed authentications of one account (from any source) before it cools down
    auth_lock_s: int = 60  # the first cool-down; each further one within a day doubles
    auth_lock_max_s: int = 86400
    # Fraud controls on calls out (docs/security.md)
    fraud_checks: bool = True  # limits counted per call and the spend monitor (off: only locks and permissions apply)
    fraud_monitor_interval_s: float = (
        2.0  # spend of calls in progress checked this often (calls over a limit are ended)
    )
    fraud_baseline_interval_s: float = 3600.0  # users' usual calls out (by hour and class) learned again this often
    smtp_relay: str = ""  # host[:port] of the SMTP relay for fraud notifications by e-mail ('' : no e-mail)
    smtp_from: str = "callmanager@localhost"
    secret_key_file: str = (
        ""  # the key trunk passwords are encrypted with at rest ('' : <var_dir>/secret.key, made on first start)
    )
    webhook_private_ok: bool = (
        False  # fraud webhooks may go to loopback/private/link-local addresses (a lab; never on the internet)
    )
    # Cluster replication (docs/cluster.md): registrations and the live flags (bans, cool-downs, users' status, group
    # log-ins) replicated to the other SIP nodes by Kamailio's DMQ, on its own UDP listener (on sip_address).
    # 0: a single node, nothing replicated. dmq_peers: the other nodes' DMQ listeners, "address:port".
    dmq_port: int = 0
    dmq_peers: list[str] = []
    # This node's place among the cluster's SIP nodes (1..number of nodes; 0: a single node). Each node numbers its
    # dialogs apart (the dialog module's h_id_start/h_id_step), so dialogs replicated by DMQ never share an id, and a
    # dialog's number tells which node made it.
    dmq_node_index: int = 0
    # The data center's virtual address the SIP nodes of a pair share (keepalived moves it to the node alive): the node
    # listens on it besides sip_address (the kernel lets it bind an address it does not hold: ip_nonlocal_bind), sends
    # from it and record-routes calls on it, so calls continue through the other node of the pair. '' : none.
    sip_vip: str = ""
    # The data center's Redis (docs/cluster.md), "address:port": the fraud limits count attempts and calls in
    # progress there for every SIP node of the data center, through Kamailio's ndb_redis with its breaker ('' : on
    # this node only). No password: Redis' default user may only run the counters' scripts on their keys (the redis
    # role's ACL).
    redis_address: str = ""
    # The media application server (docs/media.md, issue 23): a SIP user agent with its own media stack started next
    # to Kamailio, on sip_address. Where a person is calling, refused calls are announced (a prompt as early media,
    # then the refusal). false: refusals are answered without a word, as before.
    media_server: bool = True
    media_server_port: int = 5062
    # its processes, on media_server_port .. +workers-1: each takes 4 calls at once (the pjsua2 wheel's limit,
    # mediaserver/workers.py), so this many times 4 announcements play at once
    media_server_workers: int = 8
    prompt_language: str = "en"  # the shipped prompt sets: en, de
    prompt_lead_ms: int = 0  # silence before a prompt (AUD-09)
    prompt_dir: str = ""  # <dir>/<language>/<prompt>.wav ('': the shipped mediaserver/prompts)
    # Music on hold: a party put on hold (an in-dialog offer sendonly/inactive) hears this file, played by RTPengine
    # (which must be able to read it: on a media host of its own, the same path there). '' : the shipped music.
    music_on_hold: bool = True
    music_file: str = ""
    # Voicemail (docs/voicemail.md): the media server records messages into <var_dir>/spool/voicemail; the control plane
    # stores them under voicemail_dir ('' : <var_dir>/voicemail), one directory per tenant and mailbox, and e-mails
    # them through smtp_relay. Ingestion runs every voicemail_ingest_interval_s.
    voicemail_dir: str = ""
    voicemail_ingest_interval_s: float = 1.0
    voicemail_pin_lock_s: int = 900  # three wrong PINs by phone lock the mailbox's listening this long (a fraud event)
    # With a database shared by several control planes (PostgreSQL, docs/cluster.md) the store's recordings are kept
    # in it too and every node applies the others' changes (files, mailboxes) every shared_store_interval_s.
    shared_store_interval_s: float = 1.0
    # Prometheus started with the node (docs/noc.md): scrapes this node's /metrics, evaluates
    # grafana/prometheus/rules.yml
    prometheus: bool = True
    prometheus_address: str = "127.0.0.1"
    prometheus_port: int = 9090
    prometheus_scrape_interval_s: float = 15.0
    prometheus_retention: str = "15d"
    prometheus_rule_files: str = ""  # comma-separated rule files ('': grafana/prometheus/rules.yml)

    @property
    def var(self) -> Path:
        return Path(self.var_dir)

    @property
    def wss_port(self) -> int:
        """The WSS listener's port as it runs: sip_wss_port, unless TLS is off (0)."""
        return self.sip_wss_port if self.sip_tls_port else 0

    @property
    def tls_dir(self) -> Path:
        return self.var / "tls"

    @property
    def tls_files(self) -> tuple[Path, Path]:
        """(certificate, private key) Kamailio serves: the configured ones, else the node's self-signed pair."""
        if self.tls_certificate:
            return Path(self.tls_certificate), Path(self.tls_private_key)
        return self.tls_dir / "self-signed.crt", self.tls_dir / "self-signed.key"

    @property
    def tls_addresses(self) -> list[str]:
        """The addresses a self-signed certificate names: SIP's, the virtual address's, the API's."""
        out: list[str] = []
        for a in (self.sip_address, self.sip_vip, self.api_address):
            if a and a not in out and a not in ("0.0.0.0", "::"):
                out.append(a)
        return out

    @property
    def tls_ca_path(self) -> Path:
        return Path(self.tls_ca_file) if self.tls_ca_file else SYSTEM_CA_BUNDLE

    @property
    def run_dir(self) -> Path:
        return self.var / "run"

    @property
    def log_dir(self) -> Path:
        return self.var / "log"

    @property
    def snapshot_path(self) -> Path:
        return self.var / "snapshot" / "current.json"

    @property
    def spool_dir(self) -> Path:
        return self.var / "spool" / "cdr"

    @property
    def voicemail_spool(self) -> Path:
        """Where the media server leaves recorded messages for the control plane (kemi.policy.voicemail)."""
        return self.var / "spool" / "voicemail"

    @property
    def voicemail_store(self) -> Path:
        return Path(self.voicemail_dir) if self.voicemail_dir else self.var / "voicemail"

    @property
    def rpc_secret_path(self) -> Path:
        """The shared secret the control plane shows Kamailio's RPC listener (made on first start, mode 0600)."""
        return self.var / "kamailio-rpc.secret"

    @property
    def secret_key_path(self) -> Path:
        return Path(self.secret_key_file) if self.secret_key_file else self.var / "secret.key"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var / 'callmanager.db'}"

    @property
    def shared_database(self) -> bool:
        """A database other control planes may share (anything but SQLite): the store is shared through it."""
        return not self.db_url.startswith("sqlite")

    @property
    def api_base(self) -> str:
        """The control plane's base URL: the API at /rpc, metrics at /metrics, the web phone at /phone/."""
        return f"{'https' if self.api_tls else 'http'}://{self.api_address}:{self.api_port}"

    @property
    def api_url(self) -> str:
        return f"{self.api_base}/rpc"

    @property
    def api_verify(self) -> str | bool:
        """What a client of this node's API checks its certificate against: the configured CA file, else the node's
        self-signed certificate itself (its own CA); True (the system's CAs) for a configured certificate."""
        if not self.api_tls:
            return True
        if self.tls_ca_file:
            return self.tls_ca_file
        return True if self.tls_certificate else str(self.tls_files[0])

    @property
    def kamailio_rpc_url(self) -> str:
        return f"http://{self.kamailio_rpc_address}:{self.kamailio_rpc_port}/RPC"

    def edge_doc(self) -> dict:
        """The edge settings as kemi.policy.edge.EdgeSettings takes them."""
        return {
            "enabled": self.edge_protection,
            "window_s": self.edge_window_s,
            "max_requests": self.edge_max_requests,
            "max_unauthenticated": self.edge_max_unauthenticated,
            "ban_s": self.edge_ban_s,
            "exempt": [c for c in self.edge_exempt.split(",") if c.strip()],
            "auth_failures_source": self.auth_failures_source,
            "auth_failures_account": self.auth_failures_account,
            "lock_s": self.auth_lock_s,
            "lock_max_s": self.auth_lock_max_s,
        }

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        config_file, _env = _SOURCES.get()
        sources = [init_settings, _MappingEnv(settings_cls)]
        if config_file is not None:
            sources.append(JsonConfigSettingsSource(settings_cls, json_file=config_file))
        return tuple(sources)

    @field_validator("sip_ws_port", mode="after")
    @classmethod
    def _local_ws(cls, port: int, info):
        if port == -1:  # the default: plain WS on loopback only
            return LOCAL_WS_PORT if _loopback(info.data.get("sip_address", "")) else 0
        return port

    @model_validator(mode="after")
    def _consistent(self):
        from kemi.policy.edge import EdgeSettings

        EdgeSettings.from_doc(self.edge_doc())  # a malformed exempt network: refused now, not in every Kamailio worker
        token = self.platform_token
        if token and not (len(token) >= 32 and token.isascii() and token.isprintable() and " " not in token):
            raise ValueError("platform_token: at least 32 printable ASCII characters without spaces (a vault secret)")
        _check_prometheus(self)
        _check_api(self)
        _check_calls(self)
        _check_media(self)
        _check_listeners(self)
        _check_tls(self)
        _check_dmq(self)
        _check_vip(self)
        _check_redis(self)
        return self


def load_settings(
    config_file: str | os.PathLike | None = None, env: Mapping[str, str] | None = None, **overrides
) -> NodeSettings:
    """defaults < JSON config file < CALLMANAGER_<SETTING> environment < keyword overrides (None: not given).
    A wrong value raises ValueError naming the setting."""
    env = os.environ if env is None else env
    config_file = config_file or env.get("CALLMANAGER_CONFIG")
    path = Path(config_file) if config_file else None
    if path is not None:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read the settings file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ValueError(f"{path} is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ValueError(f"{path} must hold one JSON object of settings")
        unknown = sorted(set(doc) - set(NodeSettings.model_fields))
        if unknown:
            raise ValueError(f"unknown settings in {path}: {', '.join(unknown)}")
    token = _SOURCES.set((path, env))
    try:
        return NodeSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ValueError(_say(exc)) from None
    finally:
        _SOURCES.reset(token)


def _say(exc: ValidationError) -> str:
    """pydantic's errors as one line per setting: 'sip_port: Input should be a valid integer (got 'x')'."""
    lines = []
    for e in exc.errors(include_url=False):
        where = ".".join(str(p) for p in e.get("loc", ()))
        msg = e.get("msg", "invalid").removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            lines.append(f"unknown setting {where}")
        elif where:
            lines.append(f"{where}: {msg} (got {e.get('input')!r})")
        else:
            lines.append(msg)
    return "; ".join(lines)


# Every socket the node listens on: (what, address field, port field).
LISTENERS = (
    ("SIP", "sip_address", "sip_port"),
    ("Kamailio RPC", "kamailio_rpc_address", "kamailio_rpc_port"),
    ("RTPengine ng", "rtpengine_address", "rtpengine_ng_port"),
    ("RTPengine CLI", "rtpengine_address", "rtpengine_cli_port"),
    ("API", "api_address", "api_port"),
    ("Prometheus", "prometheus_address", "prometheus_port"),
    ("media server", "sip_address", "media_server_port"),
    ("SIP over TLS", "sip_address", "sip_tls_port"),  # 0: none
    ("SIP over WSS", "sip_address", "sip_wss_port"),  # 0: none
    ("SIP over WS", "sip_address", "sip_ws_port"),  # 0: none
)
OPTIONAL_PORTS = ("sip_tls_port", "sip_wss_port", "sip_ws_port")


def _check_listeners(s: NodeSettings) -> None:
    """Addresses that are addresses, ports that are ports, no two listeners on one address and port, a media range."""
    taken: dict[tuple[str, int], str] = {}
    for _what, addr_field, port_field in LISTENERS:
        addr, port = getattr(s, addr_field), getattr(s, port_field)
        if port == 0 and port_field in OPTIONAL_PORTS:
            continue
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise ValueError(f"{addr_field} {addr!r} is not an IP address") from None
        if not 1 <= port <= 65535:
            raise ValueError(f"{port_field} {port} is not a port (1-65535)")
        other = taken.get((addr, port))
        if other is not None and other != port_field:
            raise ValueError(f"{port_field} {port} clashes with {other} on {addr}")
        taken[(addr, port)] = port_field
    if not 1024 <= s.rtp_port_min < s.rtp_port_max <= 65535:
        raise ValueError(
            f"rtp_port_min/rtp_port_max {s.rtp_port_min}-{s.rtp_port_max} must be a range within 1024-65535"
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m controlplane.node.settings FILE`: check a settings file as the node would load it (Ansible's
    `validate`, before the file is put in place); exit 1 with the setting named when it is wrong."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m controlplane.node.settings FILE", file=sys.stderr)
        return 2
    try:
        load_settings(args[0], env={})
    except (OSError, ValueError, TypeError) as exc:
        print(f"{args[0]}: {exc}", file=sys.stderr)
        return 1
    print(f"{args[0]}: ok")
    return 0


def _check_tls(s: NodeSettings) -> None:
    """A certificate comes with its key (both or neither), each an absolute path; the files themselves are read when
    the node starts (controlplane.node.tls), where a missing or unreadable one is named."""
    if bool(s.tls_certificate) != bool(s.tls_private_key):
        raise ValueError("tls_certificate and tls_private_key go together: set both, or neither (self-signed)")
    for field in ("tls_certificate", "tls_private_key", "tls_ca_file"):
        value = getattr(s, field)
        if value and not Path(value).is_absolute():
            raise ValueError(f"{field} {value!r} must be an absolute path")


def dmq_peer(peer: str) -> tuple[str, int]:
    """A DMQ peer "address:port" ("[v6]:port" for IPv6) as (address, port); ValueError naming what is wrong."""
    return host_port(peer, "dmq_peers")


def host_port(value: str, setting: str) -> tuple[str, int]:
    """ "address:port" ("[v6]:port" for IPv6) as (address, port); ValueError naming the setting and what is wrong."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ValueError(f"{setting}: {value!r} is not address:port") from None
    if not sep or not 1 <= number <= 65535:
        raise ValueError(f"{setting}: {value!r} is not address:port")
    return host, number


def _check_dmq(s: NodeSettings) -> None:
    if not s.dmq_port:
        if s.dmq_peers:
            raise ValueError("dmq_peers without dmq_port: set the node's own DMQ port too")
        return
    if not 1 <= s.dmq_port <= 65535:
        raise ValueError(f"dmq_port {s.dmq_port} is not a port (1-65535)")
    if s.dmq_port == s.sip_port or (s.dmq_port == s.kamailio_rpc_port and s.kamailio_rpc_address == s.sip_address):
        raise ValueError(f"dmq_port {s.dmq_port} clashes with the SIP or RPC listener")
    own = (s.sip_address, s.dmq_port)
    for peer in s.dmq_peers:
        if dmq_peer(peer) == own:
            raise ValueError(f"dmq_peers: {peer!r} is this node itself")
    nodes = len(s.dmq_peers) + 1
    if not 1 <= s.dmq_node_index <= nodes:
        raise ValueError(
            f"dmq_node_index {s.dmq_node_index} must be this node's place among the {nodes} SIP nodes (1-{nodes})"
        )


def _check_vip(s: NodeSettings) -> None:
    if not s.sip_vip:
        return
    try:
        vip = ipaddress.ip_address(s.sip_vip)
    except ValueError:
        raise ValueError(f"sip_vip {s.sip_vip!r} is not an IP address (without a prefix length)") from None
    if not s.dmq_port:
        raise ValueError("sip_vip without dmq_port: a shared address needs the nodes sharing it to replicate (DMQ)")
    if vip == ipaddress.ip_address(s.sip_address) or vip.version != ipaddress.ip_address(s.sip_address).version:
        raise ValueError(f"sip_vip {s.sip_vip} must be another address than sip_address, of the same family")


def _check_redis(s: NodeSettings) -> None:
    if s.redis_address:
        host_port(s.redis_address, "redis_address")
    if s.rtpengine_vip:
        try:
            ipaddress.ip_address(s.rtpengine_vip)
        except ValueError:
            raise ValueError(
                f"rtpengine_vip {s.rtpengine_vip!r} is not an IP address (without a prefix length)"
            ) from None
    if not s.rtpengine_redis:
        return
    host_port(s.rtpengine_redis, "rtpengine_redis")
    if not s.rtpengine_vip:
        raise ValueError("rtpengine_redis without rtpengine_vip: a media pair shares its calls and its address")
    dbs = [s.rtpengine_redis_db, *s.rtpengine_redis_peer_dbs]
    if not all(1 <= db <= 15 for db in dbs) or len(set(dbs)) != len(dbs) or not s.rtpengine_redis_peer_dbs:
        raise ValueError(
            f"rtpengine_redis_db {s.rtpengine_redis_db} and rtpengine_redis_peer_dbs {s.rtpengine_redis_peer_dbs}: "
            "distinct Redis databases 1-15, this node's and at least one other node's"
        )
    if any(c in s.rtpengine_redis_password for c in "@ \n\\"):
        raise ValueError(
            "rtpengine_redis_password must not contain '@', spaces, line breaks or backslashes (RTPengine's redis=)"
        )


LOCAL_WS_PORT = 8088


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _check_api(s: NodeSettings) -> None:
    if not 1.0 <= s.api_request_timeout_s <= 600.0:
        raise ValueError(f"api_request_timeout_s {s.api_request_timeout_s} must be between 1 and 600 seconds")
    if not 1.0 <= s.api_idle_timeout_s <= 3600.0:
        raise ValueError(f"api_idle_timeout_s {s.api_idle_timeout_s} must be between 1 and 3600 seconds")
    if not 8 <= s.api_max_connections <= 100_000:
        raise ValueError(f"api_max_connections {s.api_max_connections} must be between 8 and 100000")
    if not 4096 <= s.api_max_body_bytes <= 64 << 20:
        raise ValueError(f"api_max_body_bytes {s.api_max_body_bytes} must be between 4096 and 67108864 (64 MiB)")


def _check_calls(s: NodeSettings) -> None:
    if not (s.dialog_keepalive_s == 0 or 30 <= s.dialog_keepalive_s <= 3600):  # the dialog module refuses less than 30
        raise ValueError(f"dialog_keepalive_s {s.dialog_keepalive_s} must be 0 (off) or between 30 and 3600 seconds")
    if not 60 <= s.call_max_s <= 7 * 86400:
        raise ValueError(f"call_max_s {s.call_max_s} must be between 60 seconds and 7 days")


def _check_media(s: NodeSettings) -> None:
    from kemi.policy.announce import LANGUAGES

    if s.prompt_language not in LANGUAGES:
        raise ValueError(f"prompt_language {s.prompt_language!r}: the prompt sets are {', '.join(LANGUAGES)}")
    if not 1 <= s.media_server_workers <= 64:
        raise ValueError(f"media_server_workers {s.media_server_workers} must be between 1 and 64")
    if s.media_server and s.media_server_port + s.media_server_workers - 1 > 65535:
        raise ValueError("media_server_port + media_server_workers - 1 is not a port")
    span = range(s.media_server_port + 1, s.media_server_port + s.media_server_workers)
    for _what, addr_field, port_field in LISTENERS:
        if s.media_server and getattr(s, addr_field) == s.sip_address and getattr(s, port_field) in span:
            raise ValueError(f"{port_field} {getattr(s, port_field)} clashes with the media server's workers' ports")
    if not 0 <= s.prompt_lead_ms <= 5000:
        raise ValueError(f"prompt_lead_ms {s.prompt_lead_ms} must be between 0 and 5000")
    if s.prompt_dir and not Path(s.prompt_dir).is_dir():
        raise ValueError(f"prompt_dir {s.prompt_dir!r} is not a directory")
    if s.music_file and not (Path(s.music_file).is_absolute() and Path(s.music_file).is_file()):
        raise ValueError(f"music_file {s.music_file!r} is not an absolute path to a file")
    if any(c.isspace() for c in s.music_file):
        raise ValueError("music_file must not contain spaces (RTPengine's play_media flags are space-separated)")


def _check_prometheus(s: NodeSettings) -> None:
    """Prometheus' settings, refused with a clear message before anything starts (Prometheus itself would only
    log its complaint and exit)."""
    if not 1 <= s.prometheus_port <= 65535:
        raise ValueError(f"prometheus_port {s.prometheus_port} is not a port (1-65535)")
    if not 1.0 <= s.prometheus_scrape_interval_s <= 3600.0:
        raise ValueError(
            f"prometheus_scrape_interval_s {s.prometheus_scrape_interval_s} must be between 1 and 3600 seconds"
        )
    if not re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", s.prometheus_retention):
        raise ValueError(
            f"prometheus_retention {s.prometheus_retention!r} is not a Prometheus duration such as 15d or 12h"
        )
    missing = [f.strip() for f in s.prometheus_rule_files.split(",") if f.strip() and not Path(f.strip()).is_file()]
    if missing:
        raise ValueError(f"prometheus_rule_files: no such file: {', '.join(missing)}")


if __name__ == "__main__":
    raise SystemExit(main())
