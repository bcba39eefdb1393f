import pytest
import torch
import yaml

from espnet_s3net.bin import count_params
from espnet_s3net.models.pretrain_model import XLSRPretrainModel


def test_counts_an_experiment_with_its_language_modules(tmp_path, capsys):
    conf = {"xlsr_conf": {"name": "xlsr_tiny"},
            "language_modules": {"type": "adapter", "languages": ["es", "fr"], "bottleneck": 8}}
    model = XLSRPretrainModel(**conf)
    torch.save(model.state_dict(), tmp_path / "model.pth")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model_conf": conf}))
    count_params.main(["--ssl_config", str(tmp_path / "config.yaml"), "--ssl_model_file", str(tmp_path / "model.pth")])
    total = int(capsys.readouterr().out.split()[0])
    assert total == sum(p.numel() for p in model.xlsr.parameters())
    plain = sum(p.numel() for p in XLSRPretrainModel({"name": "xlsr_tiny"}).xlsr.parameters())
    assert total > plain  # the adapters count


def test_config_without_checkpoint_is_refused(capsys):
    with pytest.raises(SystemExit):
        count_params.main(["--ssl_config", "c.yaml"])
    assert "--ssl_config needs --ssl_model_file" in capsys.readouterr().err
