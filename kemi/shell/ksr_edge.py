"""Edge protection on Kamailio: bans, request counters, failed authentications, account cool-downs.

The verdicts are `kemi.policy.edge`'s; the counters live in htables every worker shares:
- ban <ip> = <cause>:<end>: a banned source, dropped silently; the table's autoexpire lifts it;
- edge r:<ip>:<slot> (all requests, counted by the message read itself: the bucket index modulo SLOTS) and
  s:<ip>:<bucket> (requests that did not authenticate, minus successful authentications): two fixed buckets
  make a sliding window;
- authfail acct:<user@realm> / src:<ip> / total (and total:REGISTER): failed digest authentications;
- authlock until:<user@realm> = epoch seconds of the cool-down's end; n:<user@realm>: cool-downs
  within a day (each doubles the next); seen:<user@realm>:<ip>: a refused address reported once.
What happened is spooled as fraud events (the control plane ingests them with the CDRs).
"""

from __future__ import annotations

import time
import uuid

import KSR

from kemi import contract as shm

from kemi.policy import edge as policy
from kemi.policy.auth import failure_counter_keys
from kemi.policy.edge import EdgeSettings

BAN, EDGE, AUTHFAIL, LOCK = shm.BAN.name, shm.EDGE.name, shm.AUTHFAIL.name, shm.AUTHLOCK.name
_EXEMPT_CACHE = 4096  # source addresses remembered per snapshot (exempt or not)
# User-Agents remembered (scanner or not): phones repeat theirs. Only short ones: the cache is bounded in bytes
# (4,096 x 256 characters), a longer (hostile) one is judged each time.
_AGENT_CACHE, _AGENT_KEY_MAX = 4096, 256
_PREVIOUS_CACHE = 65536  # sources whose previous bucket was read, per bucket (spoofed sources cannot grow it further)
SLOTS = 64  # the request counters' keys cycle through 64 bucket slots (64 windows: their items expired long before)


class Edge:
    def __init__(self, settings: EdgeSettings, spool) -> None:
        self.s = settings
        self.spool = spool
        self._exempt: dict[str, bool] = {}
        self._version = -1
        self.banned_now = ""  # the source this worker banned while handling the current request
        self._agents: dict[str, str] = {}  # User-Agent -> the scanner it names ('' none): phones repeat theirs
        self._previous: dict[
            str, int
        ] = {}  # "kind:ip" -> count of the previous bucket (read once per bucket and worker)
        self._previous_index = -1
        self._window = policy.window(time.time(), settings.window_s)  # the current request's bucket (request_counter)

    # ------------------------------------------------------------ who is exempt

    def exempt(self, ip: str, snap) -> bool:
        """Own nodes and SBCs (settings) and the trunks' addresses (snapshot) are never judged or banned (the message
        read counts their requests too; nothing reads those counts)."""
        if snap.version != self._version or len(self._exempt) > _EXEMPT_CACHE:
            self._exempt, self._version = {}, snap.version
        known = self._exempt.get(ip)
        if known is None:
            known = self._exempt[ip] = (
                policy.in_networks(ip, self.s.exempt) or snap.trunk_for_source(ip) is not None or snap.is_trusted(ip)
            )
        return known

    # ------------------------------------------------------------ every request

    def request_counter(self) -> str:
        """The htable item (a Kamailio name: $si is the source) the message read increments for this request ('' when
        edge protection is off). Its key names the window bucket's slot (the bucket index modulo SLOTS): a bounded set
        of names, so Kamailio parses each read format once; a slot comes round again long after its items expired."""
        if not self.s.enabled:
            return ""
        now = time.time()
        self._window = w = policy.window(now, self.s.window_s)
        return f"{EDGE}=>r:$si:{w.bucket % SLOTS}"

    def admit(self, ip: str, banned: str, user_agent: str, snap, requests: int = 0) -> bool:
        """False: drop the request without a word (banned, a scanner, or the source floods). `requests`: the source's
        count in the current bucket (this request included), incremented by the message read (`request_counter`)."""
        self.banned_now = ""
        if not self.s.enabled:
            return True
        if banned:
            return self.exempt(ip, snap)  # a ban from before an address was exempted does not hold
        if self.exempt(ip, snap):
            return True
        scanner = self._agents.get(user_agent)
        if scanner is None:
            scanner = policy.is_scanner(user_agent)
            if len(user_agent) <= _AGENT_KEY_MAX:
                if len(self._agents) >= _AGENT_CACHE:
                    self._agents.clear()
                self._agents[user_agent] = scanner
        if scanner:
            self.ban(ip, f"scanner user agent {user_agent[:60]!r}", kind="scanner")
            return False
        w = self._window
        if policy.needs_previous(requests, self.s.max_requests, w) and policy.over(
            requests, self._previous_count("r", ip, w, (w.bucket - 1) % SLOTS), self.s.max_requests, w
        ):
            self.ban(ip, f"more than {self.s.max_requests} requests in {self.s.window_s} s", kind="flood")
            return False
        return True

    def _count(self, kind: str, ip: str, limit: int, step: int = 1, weighted: bool = True) -> bool:
        """Count one request of `kind` from ip; True when the sliding window is over `limit`. In the request's
        bucket (`request_counter` took it when the request was read)."""
        w = self._window
        key = f"{kind}:{ip}:{w.bucket}"
        current = KSR.htable.sht_inc(EDGE, key) if step > 0 else KSR.htable.sht_dec(EDGE, key)
        if step < 0 or not policy.needs_previous(current, limit, w, weighted):
            return False
        return policy.over(current, self._previous_count(kind, ip, w, w.bucket - 1), limit, w, weighted)

    def _previous_count(self, kind: str, ip: str, w: policy.Window, previous_key: int) -> int:
        """The source's count in the previous bucket: closed (requests count in the current one), so each worker
        reads it once per source and bucket."""
        if w.bucket != self._previous_index or len(self._previous) >= _PREVIOUS_CACHE:
            self._previous, self._previous_index = {}, w.bucket
        source = f"{kind}:{ip}"
        previous = self._previous.get(source)
        if previous is None:
            value = KSR.htable.sht_get(EDGE, f"{source}:{previous_key}")
            previous = self._previous[source] = value if isinstance(value, int) else 0
        return previous

    def unauthenticated(self, ip: str, snap, why: str) -> bool:
        """A request that did not authenticate (challenged, refused, unanswerable). False: the source is banned now."""
        if not self.s.enabled or self.exempt(ip, snap):
            return True
        if self._count("s", ip, self.s.max_unauthenticated, weighted=False):
            self.ban(
                ip,
                f"more than {self.s.max_unauthenticated} requests in {self.s.window_s} s that did not authenticate "
                f"(last: {why})",
                kind="flood",
            )
            return False
        return True

    def insane(self, ip: str, port: object, method: str, call_id: str, snap) -> None:
        """A request the sanity checks refused (they answered it where it had a Via to answer to): noticed in the log,
        counted as one that did not authenticate."""
        KSR.notice(
            f"callmanager: refused a malformed request from {ip}:{port} ({method[:20]!a}, Call-ID {call_id[:80]!a}): "
            "sanity checks; answered when it has a Via to answer to\n"
        )
        self.unauthenticated(ip, snap, "malformed request")

    def authenticated(self, ip: str, snap) -> None:
        """A successful authentication pays back the challenge that preceded it."""
        if self.s.enabled and not self.exempt(ip, snap):
            self._count("s", ip, self.s.max_unauthenticated, step=-1)

    # ------------------------------------------------------------ digest authentication

    def locked_until(self, account: str) -> float:
        value = KSR.htable.sht_get(LOCK, f"until:{account}")
        return float(value) if isinstance(value, str) and value.isdigit() else 0.0

    def auth_failed(
        self,
        user: str,
        realm: str,
        ip: str,
        snap,
        why: str,
        tenant_id: int | None,
        user_id: int | None,
        count_account: bool = True,
        method: str = "",
    ) -> None:
        """Count a failed authentication; past the limits the source is banned and the account cools down."""
        account = policy.bounded_key(f"{user}@{realm}")
        key_account, key_source, key_total = failure_counter_keys(user, realm, ip)
        # atomic, shared by all workers (initval=0 creates the item)
        fails_account = KSR.htable.sht_inc(AUTHFAIL, key_account) if count_account else 0
        fails_source = KSR.htable.sht_inc(AUTHFAIL, key_source)
        KSR.htable.sht_inc(AUTHFAIL, key_total)
        if method == "REGISTER":
            KSR.htable.sht_inc(AUTHFAIL, "total:REGISTER")  # failed registrations, for the NOC
        if not self.s.enabled:
            return
        if count_account and self.s.auth_failures_account and fails_account >= self.s.auth_failures_account:
            earlier = KSR.htable.sht_inc(LOCK, f"n:{account}") - 1
            secs = policy.lock_seconds(earlier, self.s)
            KSR.htable.sht_sets(LOCK, f"until:{account}", str(int(time.time()) + secs))
            KSR.htable.sht_seti(AUTHFAIL, key_account, 0)
            self.event(
                "account_cooldown",
                f"{fails_account} failed authentications: refused for {secs} s",
                source=ip,
                account=account,
                tenant_id=tenant_id,
                user_id=user_id,
                detail={"failures": fails_account, "lock_s": secs, "lock_no": earlier + 1, "last": why},
            )
        if self.s.auth_failures_source and fails_source >= self.s.auth_failures_source and not self.exempt(ip, snap):
            self.ban(ip, f"{fails_source} failed authentications (last: {account}, {why})", kind="brute_force")

    def refused_address(self, account: str, ip: str, tenant_id: int | None, user_id: int | None) -> None:
        """The right password from an address the account may not be used from: reported once per address and day."""
        if KSR.htable.sht_inc(LOCK, f"seen:{account}:{ip}") == 1:
            self.event(
                "address_refused",
                f"the right password for {account} from {ip}, outside its allowed networks",
                source=ip,
                account=account,
                tenant_id=tenant_id,
                user_id=user_id,
                level=2,
            )

    # ------------------------------------------------------------ bans and events

    def ban(self, ip: str, reason: str, kind: str) -> None:
        KSR.htable.sht_sets(
            BAN, ip, f"{kind}:{int(time.time()) + self.s.ban_s}"
        )  # cause:end (the API shows what is left)
        self.banned_now = ip
        KSR.notice(f"callmanager: banned {ip} for {self.s.ban_s} s: {reason}\n")
        self.event("ban", reason, source=ip, detail={"cause": kind, "ban_s": self.s.ban_s})

    def event(
        self,
        kind: str,
        reason: str,
        *,
        source: str = "",
        account: str = "",
        tenant_id: int | None = None,
        user_id: int | None = None,
        level: int = 1,
        detail: dict | None = None,
    ) -> None:
        self.spool.put(
            {
                "type": "fraud_event",
                "id": str(uuid.uuid4()),
                "ts": time.time(),
                "kind": kind,
                "level": level,
                "source": source,
                "account": account,
                "tenant_id": tenant_id,
                "user_id": user_id,
                "reason": reason[:300],
                "detail": detail or {},
            }
        )
