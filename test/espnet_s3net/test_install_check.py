from espnet_s3net.install_check import check_mask_passes, check_plugin
from espnet_s3net.masks import mask_kernels


def test_plugin_is_installed_and_can_be_switched_off(monkeypatch):
    assert check_plugin().startswith("ok (") and "espnet_s3net_plugin.pth" in check_plugin()
    monkeypatch.setenv("ESPNET_S3NET_PLUGIN", "0")
    assert check_plugin() == "switched off (ESPNET_S3NET_PLUGIN=0)"


def test_mask_passes_are_reported_built_or_why_not(monkeypatch, tmp_path):
    monkeypatch.setenv("ESPNET_S3NET_CACHE", str(tmp_path))
    monkeypatch.setattr(mask_kernels, "_library", mask_kernels._Library())
    assert check_mask_passes().startswith("ok (") and str(tmp_path) in check_mask_passes()
    monkeypatch.setattr(mask_kernels, "_library", mask_kernels._Library())
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("ESPNET_S3NET_CACHE", str(tmp_path / "empty"))
    assert check_mask_passes().startswith("not built (") and "no-such-cc" in check_mask_passes()
