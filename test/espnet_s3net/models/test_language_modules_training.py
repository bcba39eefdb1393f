"""Language adapters trained in the (continued) pre-training stage reach fine-tuning: a short
``espnet_s3net.bin.ssl_train`` run with ``model_conf.language_modules``, then the s3net
frontend built from that experiment (and from its portable config)."""

from pathlib import Path

import pytest
import torch
import yaml
from language_data_dirs import LANGS, data_args, lang_data

from espnet_s3net.asr.frontend.s3net import S3NetFrontend
from espnet_s3net.bin import ssl_train
from espnet_s3net.models.language_modules import LanguageAdapters

CONF = Path(__file__).parents[3] / "egs2/commonvoice_s3net/ssl1/conf/pretrain_xlsr_tiny.yaml"
MODULES = {"type": "adapter", "languages": list(LANGS), "bottleneck": 8}
PREFIX = "xlsr.language_modules."


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapters")
    conf = yaml.safe_load(CONF.read_text())
    conf["model_conf"]["language_modules"] = MODULES
    conf.update(max_epoch=1, num_iters_per_epoch=4, batch_bins=32000)
    conf["optim_conf"]["lr"] = 1.0e-3
    (tmp / "conf.yaml").write_text(yaml.safe_dump(conf))
    ssl_train.main(["--config", str(tmp / "conf.yaml"), "--output_dir", str(tmp / "exp"), "--ngpu", "0",
                    *data_args(lang_data(tmp / "data"))])
    return tmp / "exp"


def test_pretraining_trains_the_adapters(experiment):
    config = yaml.safe_load((experiment / "config.yaml").read_text())
    assert config["model_conf"]["language_modules"] == MODULES
    state = torch.load(experiment / "1epoch.pth", map_location="cpu", weights_only=True)
    ups = {lang: state[f"{PREFIX}adapters.{lang}.0.up.weight"] for lang in LANGS}
    assert any(up.abs().sum() > 0 for up in ups.values())   # trained away from the zero init


def test_the_frontend_keeps_the_trained_adapters(experiment):
    state = torch.load(experiment / "1epoch.pth", map_location="cpu", weights_only=True)
    frontend_conf = {"ssl_config": str(experiment / "config.yaml"), "ssl_model_file": str(experiment / "1epoch.pth")}
    frontend = S3NetFrontend(**frontend_conf)
    modules = frontend.xlsr.language_modules
    assert isinstance(modules, LanguageAdapters) and modules.languages == tuple(LANGS)
    own = {k: v for k, v in frontend.state_dict().items() if k.startswith(PREFIX)}
    assert own and all(torch.equal(v, state[k]) for k, v in own.items())
    assert len(own) == sum(k.startswith(PREFIX) for k in state)

    # the same conf given again is accepted; other modules than the trained ones are not
    S3NetFrontend(**frontend_conf, language_modules=MODULES)
    with pytest.raises(ValueError, match="was trained with language_modules"):
        S3NetFrontend(**frontend_conf, language_modules={**MODULES, "bottleneck": 4})

    # the portable config (what a fine-tuned model's config.yaml holds) rebuilds them, and
    # with the checkpoint's weights the features are the same
    portable = S3NetFrontend.portable_conf(frontend_conf, frontend.xlsr)
    assert "ssl_config" not in portable
    assert portable["language_modules"] == {**MODULES, "activation": "relu", "layer_norm": True}
    rebuilt = S3NetFrontend(**portable)
    rebuilt.load_state_dict(frontend.state_dict())
    speech, lengths = torch.randn(2, 8000), torch.tensor([8000, 7000])
    frontend.eval(), rebuilt.eval()
    with torch.no_grad():
        for lang in LANGS:
            modules.activate(lang)
            rebuilt.xlsr.language_modules.activate(lang)
            torch.testing.assert_close(rebuilt(speech, lengths)[0], frontend(speech, lengths)[0], rtol=0, atol=0)
