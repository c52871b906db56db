"""`cm` finds the API and the token of the node started from this checkout, whatever port it was given."""
import json

from controlplane.cli import client


def test_cm_finds_a_node_started_on_another_port(tmp_path, monkeypatch):
    var = tmp_path / "var"
    (var / "run").mkdir(parents=True)
    monkeypatch.setenv("CALLMANAGER_VAR_DIR", str(var))
    monkeypatch.delenv("CM_URL", raising=False)
    monkeypatch.delenv("CM_TOKEN", raising=False)
    assert client.default_url().endswith(":8080/rpc")  # nothing started: the defaults
    (var / "run" / "node-settings.json").write_text(json.dumps({"var_dir": str(var), "api_port": 9123, "api_address": "127.0.0.5"}))
    (var / "admin.token").write_text("cm_started_node_token\n")
    assert client.default_url() == "http://127.0.0.5:9123/rpc"
    assert client.default_token() == "cm_started_node_token"
    monkeypatch.setenv("CM_URL", "http://127.0.0.1:1/rpc")
    assert client.default_url() == "http://127.0.0.1:1/rpc"  # the environment still wins
