"""One template engine (Jinja2) for every daemon's configuration, and the check Ansible runs before a host's settings
are put in place: each file is checked as its daemon would read it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.node import render
from controlplane.node.settings import load_settings


def test_the_rendered_files_carry_the_settings_and_pass_their_daemons_checks(tmp_path):
    s = load_settings(env={}, var_dir=str(tmp_path / "var"), sip_address="198.18.1.11", sip_port=5070, rtpengine_address="198.18.1.21",
                      rtp_port_min=40000, rtp_port_max=40999, kamailio_log_prefix=True)
    cfg = render.kamailio_cfg(s)
    assert "#!define SIP_LISTEN_UDP udp:198.18.1.11:5070" in cfg and '#!define RTPENGINE_NG "udp:198.18.1.21:2223"' in cfg
    assert "#!define WITH_LOG_PREFIX" in cfg and f'"unix:{tmp_path}/var/run/kamailio_ctl"' in cfg
    conf = render.rtpengine_conf(s)
    assert "interface = 198.18.1.21" in conf and "port-min = 40000" in conf and "port-max = 40999" in conf
    assert render.check_all(s, tmp_path / "scratch") == []


def test_a_value_that_would_break_out_of_a_kamailio_string_is_refused(tmp_path):
    s = load_settings(env={}, var_dir=str(tmp_path / 'v"; loadmodule "evil.so'))
    problems = render.check_all(s, tmp_path / "scratch")
    assert any(p.startswith("kamailio-node.cfg:") and "cannot go into a Kamailio string" in p for p in problems), problems


def test_each_check_can_fail(tmp_path):
    s = load_settings(env={}, var_dir=str(tmp_path / "var"))
    k = tmp_path / "k.cfg"
    k.write_text(render.kamailio_cfg(s).replace("#!define CHILDREN 2", "#!define CHILDREN two"))
    assert "kamailio -c refused" in render.check_kamailio(k)
    r = tmp_path / "r.conf"
    r.write_text(render.rtpengine_conf(s).replace("listen-ng = 127.0.0.1:2223", "listen-ng = 127.0.0.1") + "port-maxx = 3\n")
    problem = render.check_rtpengine(r)
    assert "unknown option port-maxx" in problem and "listen-ng = '127.0.0.1' has no port" in problem
    p = tmp_path / "p.yml"
    p.write_text(render.prometheus_yml([{"address": "a:1", "node": "n", "datacenter": "d"}]).replace("scrape_interval:", "scrape_intervall:", 1))
    assert "promtool refused" in render.check_prometheus(p)


def test_the_check_command_is_what_ansible_runs(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"node_name": "fra-sip1", "sip_address": "198.18.1.11", "var_dir": str(tmp_path / "var")}))
    assert render.main(["check", str(good)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sip_port": "five"}))
    assert render.main(["check", str(bad)]) == 1
    assert "sip_port" in capsys.readouterr().err
    assert not (tmp_path / "var").exists()  # a check writes nothing where the node lives


def test_make_run_and_the_prometheus_role_share_one_template():
    role = Path(render.ROOT / "ansible" / "roles" / "prometheus" / "tasks" / "main.yml").read_text()
    assert render.PROMETHEUS_TEMPLATE.split("/")[-1] in role
    copies = [p for p in render.ROOT.rglob("*.j2") if ".venv" not in p.parts and p.name in ("node.cfg.j2", "rtpengine.conf.j2", "prometheus.yml.j2")]
    assert len(copies) == 3, copies


