import argparse
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from espnet2.schedulers.piecewise_linear_warmup_lr import PiecewiseLinearWarmupLR
from espnet2.tasks.abs_task import AbsTask

from espnet_s3net.tasks.language_task import LanguageTaskMixin
from espnet_s3net.tasks.xlsr_pretrain import XLSRPretrainTask
from espnet_s3net.train.masked_trainer import LanguageMaskTrainer

CONF_DIR = Path(__file__).parents[3] / "egs2" / "commonvoice_s3net" / "ssl1" / "conf"
CONFIGS = ["tiny", "small", "base", "large"]


def test_task_wiring():
    assert XLSRPretrainTask.trainer is LanguageMaskTrainer
    mro = XLSRPretrainTask.__mro__
    assert mro.index(LanguageTaskMixin) < mro.index(AbsTask)
    assert XLSRPretrainTask.required_data_names() == ("speech",)
    assert XLSRPretrainTask.optional_data_names() == ("lang",)
    args = argparse.Namespace()
    assert XLSRPretrainTask.build_preprocess_fn(args, train=True)("u", {"lang": "es"})["lang"].tolist() == [101, 115]
    collate = XLSRPretrainTask.build_collate_fn(args, train=True)
    uttids, batch = collate(
        [("a", {"speech": np.ones(3, dtype=np.float32)}),
         ("b", {"speech": np.ones(5, dtype=np.float32)})]
    )
    assert uttids == ["a", "b"]
    assert batch["speech"].shape == (2, 5) and batch["speech"][0, 3:].eq(0).all()
    assert batch["speech_lengths"].tolist() == [3, 5]


def test_parser_accepts_language_sampler_options():
    args = XLSRPretrainTask.get_parser().parse_args(
        [
            "--batch_type", "lang_numel",
            "--valid_batch_type", "lang_numel",
            "--lang_alpha", "0.3",
            "--model_conf", "{xlsr_conf: {name: xlsr_tiny}}",
            "--init", "/path/to/xlsr_53_56k.pt",
        ]
    )
    assert args.batch_type == "lang_numel" and args.lang_alpha == 0.3
    assert args.model_conf["xlsr_conf"] == {"name": "xlsr_tiny"}
    assert args.init == "/path/to/xlsr_53_56k.pt"


def test_init_conflict_is_reported():
    args = argparse.Namespace(
        model_conf={"xlsr_conf": {"name": "xlsr_tiny"}, "init_checkpoint": "a.pt"},
        init="b.pt",
    )
    with pytest.raises(ValueError, match="--init b.pt conflicts"):
        XLSRPretrainTask.build_model(args)


def test_init_alone_builds_the_checkpoint_architecture(tmp_path):
    """``--init`` with no xlsr_conf: the architecture comes from the checkpoint."""
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, codevector_dim=16, proj_codevector_dim=16,
        num_codevectors_per_group=8, num_codevector_groups=2)
    transformers.Wav2Vec2ForPreTraining(hf_config).save_pretrained(tmp_path / "hf")
    args = XLSRPretrainTask.get_parser().parse_args(["--init", str(tmp_path / "hf")])
    model = XLSRPretrainTask.build_model(args)
    assert model.xlsr.cfg.embed_dim == 32 and model.xlsr.cfg.num_layers == 1
    assert model.xlsr.cfg.conv_layers == [(16, 10, 5), (16, 3, 2)]


def test_print_config_lists_task_options():
    with pytest.raises(SystemExit) as exit_info:
        XLSRPretrainTask.main(cmd=["--print_config"])
    assert exit_info.value.code == 0
    out = io.StringIO()
    XLSRPretrainTask.print_config(file=out)
    printed = yaml.safe_load(out.getvalue())
    assert printed["batch_type"] == "folded"
    assert printed["lang_alpha"] == 0.5
    assert printed["model_conf"] == {}
    assert printed["init"] is None


@pytest.mark.parametrize("name", CONFIGS)
def test_recipe_configs_parse(name):
    config = CONF_DIR / f"pretrain_xlsr_{name}.yaml"
    args = XLSRPretrainTask.get_parser().parse_args(["--config", str(config)])
    assert args.batch_type == "lang_numel"
    assert args.lang_alpha == 0.5
    assert args.model_conf["xlsr_conf"]["name"] == f"xlsr_{name}"
    assert args.best_model_criterion == [["valid", "loss", "min"]]
    if name in ("base", "large"):
        assert args.use_amp is True
        assert args.optim_conf["betas"] == [0.9, 0.98]
        assert args.optim_conf["eps"] == 1.0e-6


@pytest.mark.parametrize("name", ["small", "base", "large"])
def test_schedule_warms_up_and_decays_to_zero_at_last_update(name):
    conf = yaml.safe_load((CONF_DIR / f"pretrain_xlsr_{name}.yaml").read_text())
    updates = conf["num_iters_per_epoch"] * conf["max_epoch"] // conf["accum_grad"]
    steps = conf["scheduler_conf"]["warmup_steps_list"]
    assert steps[-1] == updates, "the lr must reach 0 exactly at the last update"
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], **conf["optim_conf"])
    scheduler = PiecewiseLinearWarmupLR(optimizer, **conf["scheduler_conf"])
    peak, warmup = conf["optim_conf"]["lr"], steps[1]

    def lr_at(update: int) -> float:
        scheduler.last_epoch = update - 1
        return scheduler.get_lr()[0]

    assert lr_at(warmup // 2) == pytest.approx(peak / 2, rel=1e-3)
    assert lr_at(warmup) == pytest.approx(peak)
    assert lr_at(warmup + (updates - warmup) // 2) == pytest.approx(peak / 2, rel=1e-3)
    assert lr_at(updates) == pytest.approx(0.0, abs=1e-12)
