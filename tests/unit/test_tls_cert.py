"""The node's certificate handling (controlplane/node/tls.py) and its TLS settings: what an operator meets when a
file is wrong, and the self-signed pair `make run` makes."""

import time

import pytest

from controlplane.node import render, tls
from controlplane.node.settings import load_settings

NOW = time.time()


def test_a_self_signed_pair_names_the_node_and_its_addresses_and_lasts_a_year(tmp_path):
    info = tls.make_self_signed(tmp_path / "c.pem", tmp_path / "k.pem", "node7", ["127.0.0.1", "sip.example"])
    assert info.self_signed and "CN=node7" in info.subject
    assert set(info.names) == {"node7", "127.0.0.1", "sip.example"}
    assert 364 * 86400 < info.not_after - NOW < 366 * 86400
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert tls.check_pair(tmp_path / "c.pem", tmp_path / "k.pem").sha256 == info.sha256


def test_broken_files_are_named_with_what_is_wrong(tmp_path):
    a = tls.make_self_signed(tmp_path / "a.crt", tmp_path / "a.key", "a", [])
    tls.make_self_signed(tmp_path / "b.crt", tmp_path / "b.key", "b", [])
    with pytest.raises(tls.TlsProblem, match=r"b.key does not belong to certificate .*a.crt"):
        tls.check_pair(tmp_path / "a.crt", tmp_path / "b.key")
    (tmp_path / "junk.crt").write_text("hello")
    with pytest.raises(tls.TlsProblem, match="junk.crt: not a PEM certificate"):
        tls.check_pair(tmp_path / "junk.crt", tmp_path / "a.key")
    with pytest.raises(tls.TlsProblem, match="missing.crt: No such file"):
        tls.check_pair(tmp_path / "missing.crt", tmp_path / "a.key")
    (tmp_path / "junk.key").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(tls.TlsProblem, match="junk.key: not a PEM private key"):
        tls.check_pair(tmp_path / "a.crt", tmp_path / "junk.key")
    assert a.subject.endswith("CN=a") or "CN=a" in a.subject


def test_the_node_makes_its_own_pair_once_and_again_only_near_its_end(tmp_path):
    cert, key = tmp_path / "tls" / "c.crt", tmp_path / "tls" / "c.key"
    first, made = tls.ensure_certificate(cert, key, False, "n1", ["127.0.0.1"], NOW)
    assert made
    again, made = tls.ensure_certificate(cert, key, False, "n1", ["127.0.0.1"], NOW + 86400)
    assert not made and again.sha256 == first.sha256
    late, made = tls.ensure_certificate(cert, key, False, "n1", ["127.0.0.1"], first.not_after - 10 * 86400)
    assert made and late.sha256 != first.sha256
    key.write_text("broken")  # its own pair broken: made again, never a refusal to start
    _, made = tls.ensure_certificate(cert, key, False, "n1", ["127.0.0.1"], NOW)
    assert made


def test_a_configured_pair_is_never_replaced_a_broken_one_refused(tmp_path):
    tls.make_self_signed(tmp_path / "c.crt", tmp_path / "c.key", "op", [])
    (tmp_path / "c.key").write_text("oops")
    with pytest.raises(tls.TlsProblem, match="c.key"):
        tls.ensure_certificate(tmp_path / "c.crt", tmp_path / "c.key", True, "n1", [], NOW)
    assert (tmp_path / "c.key").read_text() == "oops"


def test_tls_settings_are_checked_when_they_load(tmp_path):
    with pytest.raises(ValueError, match="tls_certificate and tls_private_key go together"):
        load_settings(env={}, var_dir=str(tmp_path), tls_certificate="/etc/x.crt")
    with pytest.raises(ValueError, match="tls_ca_file 'ca.pem' must be an absolute path"):
        load_settings(env={}, var_dir=str(tmp_path), tls_ca_file="ca.pem")
    with pytest.raises(ValueError, match="sip_tls_port 5060 clashes"):
        load_settings(env={}, var_dir=str(tmp_path), sip_tls_port=5060)
    off = load_settings(env={}, var_dir=str(tmp_path), sip_tls_port=0)
    assert "WITH_TLS" not in render.kamailio_cfg(off)


def test_kamailio_is_told_the_pair_tls_12_and_up_and_the_cas(tmp_path):
    s = load_settings(env={}, var_dir=str(tmp_path), tls_ca_file="/etc/ssl/certs/ca-certificates.crt")
    info, made = render.prepare_tls(s, NOW)
    assert made and info.self_signed
    text = (s.run_dir / "tls.cfg").read_text()
    cert, key = s.tls_files
    assert f"certificate = {cert}" in text and f"private_key = {key}" in text
    assert text.count("method = TLSv1.2+") == 2 and "ca_list = /etc/ssl/certs/ca-certificates.crt" in text
    assert "require_certificate = yes" in text.split("[client:default]")[1]  # a trunk's server certificate is checked
    server = text.split("[server:default]")[1].split("[client:default]")[0]
    assert "verify_certificate = yes" in server and "ca_list = /etc/ssl/certs/ca-certificates.crt" in server
    plain = load_settings(env={}, var_dir=str(tmp_path / "b"))  # no CAs named: no client certificate checked, and no
    server = render.tls_cfg(plain).split("[server:default]")[1].split("[client:default]")[0]  # bundle copy per process
    assert "ca_list" not in server and "verify_certificate = no" in server
    assert "ca_list = /etc/ssl/certs/ca-certificates.crt" in render.tls_cfg(plain).split("[client:default]")[1]
    cfg = render.kamailio_cfg(s)
    assert f"#!define SIP_LISTEN_TLS tls:127.0.0.1:{s.sip_tls_port}" in cfg and "#!define WITH_TLS" in cfg
