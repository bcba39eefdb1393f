from espnet_s3net.install_check import check_plugin


def test_plugin_is_installed_and_can_be_switched_off(monkeypatch):
    assert check_plugin().startswith("ok (") and "espnet_s3net_plugin.pth" in check_plugin()
    monkeypatch.setenv("ESPNET_S3NET_PLUGIN", "0")
    assert check_plugin() == "switched off (ESPNET_S3NET_PLUGIN=0)"
