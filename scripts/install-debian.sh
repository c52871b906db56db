#!/usr/bin/env bash
# Installs the Debian packages callmanager needs, if any are missing. Idempotent.
# Services shipped by the packages are never started: we run the daemons ourselves.
set -euo pipefail

PKGS=(
  kamailio                  # SIP proxy (core modules: tm, sl, rr, usrloc, registrar, auth, dialog, htable, jsonrpcs, ...)
  kamailio-python3-modules  # app_python3: KEMI in Python
  kamailio-extra-modules    # rtpengine module
  kamailio-utils-modules    # utils (http_client etc.)
  kamailio-redis-modules    # ndb_redis: the data center's Redis for the counters a cluster shares (fraud limits)
  kamailio-presence-modules # presence + presence_mwi: message waiting (voicemail) for phones that SUBSCRIBE
  kamailio-tls-modules      # tls: SIP over TLS (phones, trunks), certificates reloaded without a restart
  kamailio-websocket-modules # websocket: SIP over WS/WSS for browsers (WebRTC)
  openssl                   # certificate checks in tests and by hand (the node makes its own with Python's cryptography)
  rtpengine-daemon          # media relay (userspace)
  sip-tester                # SIPp for tests and benchmarks
  chromium                  # the web phone's browser tier (tests/browser): driven by Playwright, no browser download
  stunnel4                  # make bench: SIPp (built without TLS) reaches the node's TLS listener through it
  prometheus                # metrics server + promtool (rules checked and unit-tested; started by make run)
  python3-venv python3-dev  # Debian's Python 3.11, the one app_python3 embeds
  iproute2 procps
  linux-perf                # make bench ARGS=--profile: where Kamailio's CPU goes (perf record, a software clock event)
  openssh-server openssh-client ethtool  # the rollout lab (tests/lab): each lab host runs its own sshd; Ansible reaches it by ssh
  systemd                   # systemd-analyze verify checks the units the Ansible roles write
  supervisor                # the lab's service manager (lab hosts have no systemd; ansible/ selects it by one variable)
  postgresql redis-server keepalived  # the cluster's database, live state and virtual addresses (roles postgresql, redis, keepalived)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-debian: missing packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi

echo "install-debian: installing ${missing[*]}"
# Keep package postinst scripts from starting system services (we run our own daemons).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[ $created_policy -eq 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
