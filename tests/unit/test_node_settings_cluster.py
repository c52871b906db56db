"""The cluster's node settings: a platform token from the vault must look like a secret."""
import pytest

from controlplane.node.settings import ROOT, load_settings


@pytest.mark.parametrize("token", ["short", "cm_" + "x" * 40 + " y", "cm_" + "ä" * 40])
def test_a_platform_token_that_is_not_a_secret_is_refused_naming_the_setting(tmp_path, token):
    with pytest.raises(Exception, match="platform_token"):
        load_settings(env={}, var_dir=str(tmp_path), platform_token=token)


def test_a_vault_token_is_taken(tmp_path):
    assert load_settings(env={}, var_dir=str(tmp_path), platform_token="cm_" + "A1b2" * 10).platform_token.startswith("cm_")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"dmq_port": 5090, "dmq_peers": ["198.18.1.12"]}, "dmq_peers: '198.18.1.12' is not address:port"),
        ({"dmq_port": 5090, "dmq_peers": ["sip-b:5090"]}, "dmq_peers: 'sip-b:5090' is not address:port"),
        ({"dmq_port": 5090, "dmq_peers": ["198.18.1.12:99999"]}, "is not address:port"),
        ({"dmq_peers": ["198.18.1.12:5090"]}, "dmq_peers without dmq_port"),
        ({"dmq_port": 5090, "dmq_peers": ["127.0.0.1:5090"]}, "is this node itself"),
        ({"dmq_port": 5060}, "clashes with the SIP or RPC listener"),
        ({"dmq_port": 70000}, "is not a port"),
        ({"dmq_port": 5090, "dmq_peers": ["198.18.1.12:5090"]}, "dmq_node_index 0 must be this node's place among the 2"),
        ({"dmq_port": 5090, "dmq_peers": ["198.18.1.12:5090"], "dmq_node_index": 3}, r"among the 2 SIP nodes \(1-2\)"),
        ({"sip_vip": "198.18.1.10"}, "sip_vip without dmq_port"),
        ({"dmq_port": 5090, "dmq_node_index": 1, "sip_vip": "198.18.1.10/24"}, "sip_vip '198.18.1.10/24' is not an IP address"),
        ({"dmq_port": 5090, "dmq_node_index": 1, "sip_vip": "127.0.0.1"}, "another address than sip_address"),
        ({"dmq_port": 5090, "dmq_node_index": 1, "sip_vip": "2001:db8::10"}, "of the same family"),
    ],
)
def test_cluster_replication_settings_that_cannot_work_are_refused_naming_the_setting(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        load_settings(env={}, var_dir=str(tmp_path), sip_port=5060, **overrides)


def test_a_cluster_node_replicates_what_the_cluster_shares_and_a_single_node_nothing(tmp_path):
    from controlplane.node.render import kamailio_cfg

    single = kamailio_cfg(load_settings(env={}, var_dir=str(tmp_path)))
    assert "WITH_DMQ" not in single and "dmqreplicate" not in single and "notification_address" not in single
    node = load_settings(env={}, var_dir=str(tmp_path), sip_address="198.18.1.11", dmq_port=5090, dmq_node_index=2,
                         dmq_peers=["198.18.1.12:5090", "[2001:db8::2]:5090"])
    cfg = kamailio_cfg(node)
    assert '#!define DMQ_SERVER "sip:198.18.1.11:5090"' in cfg
    assert 'modparam("dmq", "notification_address", "sip:198.18.1.12:5090")' in cfg
    assert 'modparam("dmq", "notification_address", "sip:[2001:db8::2]:5090")' in cfg
    replicated = {line.split()[1] for line in cfg.splitlines() if "dmqreplicate=1" in line}
    assert replicated == {"HT_BAN", "HT_AUTHLOCK", "HT_STATUS", "HT_ACD"}  # per node: counters, calls, the drain flag
    # dialogs replicated too, numbered apart: this node (the 2nd of 3) makes dialogs 2, 5, 8...
    assert "#!define DIALOG_ID_START 2" in cfg and "#!define DIALOG_ID_STEP 3" in cfg
    assert "WITH_VIP" not in cfg and "WITH_VIP" not in single


def test_a_node_of_a_pair_listens_on_the_shared_address_first(tmp_path):
    from controlplane.node.render import kamailio_cfg

    node = load_settings(env={}, var_dir=str(tmp_path), sip_address="198.18.1.11", dmq_port=5090, dmq_node_index=1,
                         dmq_peers=["198.18.1.12:5090"], sip_vip="198.18.1.10")
    cfg = kamailio_cfg(node)
    assert "#!define WITH_VIP" in cfg and "#!define SIP_VIP_UDP udp:198.18.1.10:5060" in cfg
    assert "#!define SIP_VIP_TCP tcp:198.18.1.10:5060" in cfg
    main = (ROOT / "kamailio" / "kamailio.cfg").read_text()
    assert main.index("listen=SIP_VIP_UDP") < main.index("listen=SIP_LISTEN_UDP")  # the default socket: requests leave from it


@pytest.mark.parametrize(
    "address, message",
    [
        ("198.18.1.21", "redis_address: '198.18.1.21' is not address:port"),
        ("redis-fra:6379", "redis_address: 'redis-fra:6379' is not address:port"),
        ("198.18.1.21:0", "redis_address: '198.18.1.21:0' is not address:port"),
    ],
)
def test_a_redis_address_that_cannot_work_is_refused_naming_the_setting(tmp_path, address, message):
    with pytest.raises(ValueError, match=message):
        load_settings(env={}, var_dir=str(tmp_path), redis_address=address)


def test_a_node_with_the_data_centers_redis_counts_there(tmp_path):
    from controlplane.node import processes, render

    single = load_settings(env={}, var_dir=str(tmp_path))
    assert "WITH_REDIS" not in render.kamailio_cfg(single)
    assert processes.kamailio(single).env["CALLMANAGER_SHARED_COUNTERS"] == "0"
    node = load_settings(env={}, var_dir=str(tmp_path), node_name="fra-sip1", redis_address="198.18.1.21:6379")
    cfg = render.kamailio_cfg(node)
    assert '#!define REDIS_SERVER "name=cm;addr=198.18.1.21;port=6379"' in cfg
    env = processes.kamailio(node).env
    assert env["CALLMANAGER_SHARED_COUNTERS"] == "1" and env["CALLMANAGER_NODE_NAME"] == "fra-sip1"
    assert render.check_kamailio(render.render_kamailio(node)) is None  # Kamailio takes it (ndb_redis and its parameters)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"rtpengine_vip": "198.18.1.20/24"}, "rtpengine_vip '198.18.1.20/24' is not an IP address"),
        ({"rtpengine_redis": "198.18.1.21:6380"}, "rtpengine_redis without rtpengine_vip"),
        ({"rtpengine_vip": "198.18.1.20", "rtpengine_redis": "media:6380"}, "rtpengine_redis: 'media:6380' is not address:port"),
        ({"rtpengine_vip": "198.18.1.20", "rtpengine_redis": "198.18.1.21:6380"}, "at least one other node's"),
        ({"rtpengine_vip": "198.18.1.20", "rtpengine_redis": "198.18.1.21:6380", "rtpengine_redis_peer_dbs": [1]}, "distinct"),
        ({"rtpengine_vip": "198.18.1.20", "rtpengine_redis": "198.18.1.21:6380", "rtpengine_redis_db": 16,
          "rtpengine_redis_peer_dbs": [1]}, "1-15"),
        ({"rtpengine_vip": "198.18.1.20", "rtpengine_redis": "198.18.1.21:6380", "rtpengine_redis_peer_dbs": [2],
          "rtpengine_redis_password": "a@b"}, "must not contain '@'"),
    ],
)
def test_media_pair_settings_that_cannot_work_are_refused_naming_the_setting(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        load_settings(env={}, var_dir=str(tmp_path), **overrides)


def test_a_media_node_of_a_pair_relays_on_the_shared_address_and_follows_the_others_calls(tmp_path):
    from controlplane.node.render import rtpengine_conf

    single = rtpengine_conf(load_settings(env={}, var_dir=str(tmp_path), rtpengine_address="198.18.1.21"))
    assert "interface = 198.18.1.21\n" in single and "listen-ng = 198.18.1.21:2223\n" in single and "redis" not in single
    node = load_settings(env={}, var_dir=str(tmp_path), rtpengine_address="198.18.1.22", rtpengine_vip="198.18.1.20",
                         rtpengine_redis="198.18.1.21:6380", rtpengine_redis_password="pair-secret", rtpengine_redis_db=2,
                         rtpengine_redis_peer_dbs=[1])
    conf = rtpengine_conf(node)
    assert "interface = 198.18.1.20\n" in conf and "listen-ng = 198.18.1.20:2223\n" in conf
    assert "listen-cli = 198.18.1.22:9901\n" in conf  # the node's own
    assert "redis = pair-secret@198.18.1.21:6380/2\n" in conf and "subscribe-keyspace = 1\n" in conf
    assert "no-redis-required = true\n" in conf  # starts (and relays) when the pair's Redis is down


def test_a_media_redis_password_rtpengine_would_misread_is_refused(tmp_path):
    with pytest.raises(ValueError, match="backslashes"):
        load_settings(env={}, var_dir=str(tmp_path), rtpengine_vip="198.18.1.20", rtpengine_redis="198.18.1.21:6380",
                      rtpengine_redis_peer_dbs=[2], rtpengine_redis_password="a\\b")
