"""The cluster's node settings: a platform token from the vault must look like a secret."""
import pytest

from controlplane.node.settings import load_settings


@pytest.mark.parametrize("token", ["short", "cm_" + "x" * 40 + " y", "cm_" + "ä" * 40])
def test_a_platform_token_that_is_not_a_secret_is_refused_naming_the_setting(tmp_path, token):
    with pytest.raises(Exception, match="platform_token"):
        load_settings(env={}, var_dir=str(tmp_path), platform_token=token)


def test_a_vault_token_is_taken(tmp_path):
    assert load_settings(env={}, var_dir=str(tmp_path), platform_token="cm_" + "A1b2" * 10).platform_token.startswith("cm_")
