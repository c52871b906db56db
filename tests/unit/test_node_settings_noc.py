"""Node settings that Prometheus or Kamailio would refuse: refused with a clear message before anything starts."""
from __future__ import annotations

import pytest

from controlplane.node.settings import load_settings


@pytest.mark.parametrize("field, value, message", [
    ("prometheus_port", "0", "not a port"),
    ("prometheus_scrape_interval_s", "0", "between 1 and 3600"),
    ("prometheus_retention", "two weeks", "not a Prometheus duration"),
    ("prometheus_rule_files", "/nonexistent/rules.yml", "no such file"),
    ("dialog_keepalive_s", "10", "0 \\(off\\) or between 30 and 3600"),  # the dialog module refuses less than 30
    ("dialog_keepalive_s", "-1", "0 \\(off\\) or between 30"),
    ("call_max_s", "5", "between 60 seconds and 7 days"),
])
def test_bad_settings_are_refused_with_a_clear_message(field, value, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        load_settings(env={}, var_dir=str(tmp_path), **{field: value})


def test_the_defaults_and_good_values_pass(tmp_path):
    rules = tmp_path / "r.yml"
    rules.write_text("groups: []\n")
    s = load_settings(env={}, var_dir=str(tmp_path), prometheus_retention="30d12h", prometheus_scrape_interval_s="5",
                      prometheus_rule_files=str(rules))
    assert s.prometheus_retention == "30d12h" and s.prometheus_scrape_interval_s == 5.0


def test_call_lifetime_settings_reach_kamailios_defines(tmp_path):
    from controlplane.node.render import render_kamailio

    text = render_kamailio(load_settings(env={}, var_dir=str(tmp_path), dialog_keepalive_s="0", call_max_s="7200")).read_text()
    assert "#!define CALL_MAX_S 7200" in text and "#!define DIALOG_KEEPALIVE_S 3600" in text  # off: no dialog asks for them


def test_listeners_are_addresses_and_ports_that_do_not_clash_and_the_check_command_names_the_setting(tmp_path):
    import json

    import pytest

    from controlplane.node.settings import load_settings, main

    for bad, named in (({"api_port": 5071}, "api_port 5071 clashes with kamailio_rpc_port"), ({"sip_port": 70000}, "sip_port 70000"),
                       ({"sip_address": "198.18.300.1"}, "sip_address '198.18.300.1'"), ({"rtp_port_min": 40000, "rtp_port_max": 30000}, "rtp_port")):
        with pytest.raises(ValueError, match=named.replace("(", r"\(")):
            load_settings(env={}, **bad)
        f = tmp_path / "bad.json"
        f.write_text(json.dumps(bad))
        assert main([str(f)]) == 1
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"sip_address": "198.18.1.11", "sip_port": 5060, "api_port": 5060}))  # other addresses: no clash
    assert main([str(good)]) == 0
