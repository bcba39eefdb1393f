"""``model: distill_l2s``: configuration errors, the loss in a step with the ``s3net`` frontend
(passthrough) and an ESPnet conformer, the teacher kept out of the model, named skips,
and ESPnet's ASR training (``espnet2.bin.asr_train``'s command line, run in this process)
end to end with single-language batches, then decoding without the teacher."""

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from language_data_dirs import asr_train_command, lang_data
from text_teachers_data import save_tiny_xlmr, train_tiny

from espnet_s3net.asr.distill_l2s_model import DistillL2SASRModel, teachers_loaded_at_build
from espnet_s3net.tasks.asr import S3NetASRTask

TOKENS = ["<blank>", "<unk>", "a", "b", "<sos/eos>"]
CONFORMER = ["--encoder", "conformer", "--encoder_conf", "output_size=16", "--encoder_conf", "attention_heads=2",
             "--encoder_conf", "linear_units=32", "--encoder_conf", "num_blocks=1", "--encoder_conf",
             "input_layer=linear"]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teacher")
    (tmp / "text").write_text("u1 a b a\nu2 b a b\n", encoding="utf-8")
    (tmp / "text_es").write_text("u3 la casa grande\n", encoding="utf-8")
    return train_tiny(tmp, steps=2, texts=[str(tmp / "text"), str(tmp / "text_es")])


def _args(tmp: Path, l2s: dict, *extra: str, ctc_weight: float = 1.0):
    (tmp / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    cli = ["--token_list", str(tmp / "tokens.txt"), "--token_type", "word", "--frontend", "s3net",
           "--frontend_conf", "xlsr_conf={name: xlsr_tiny}", "--normalize", "none", "--model", "distill_l2s",
           "--model_conf", f"ctc_weight={ctc_weight}", "--model_conf", f"distill_l2s_conf={l2s}",
           *(extra or ["--encoder", "passthrough"])]
    return S3NetASRTask.get_parser().parse_args(cli)


def _build(tmp: Path, l2s: dict, *extra: str, training: bool = True, **kwargs) -> DistillL2SASRModel:
    torch.manual_seed(0)
    args = _args(tmp, l2s, *extra, **kwargs)
    if training:
        with teachers_loaded_at_build():
            return S3NetASRTask.build_model(args)
    return S3NetASRTask.build_model(args)


def _batch(args_model, utts):
    """An ESPnet batch through the task's preprocessor and collate function (the trainer
    then takes ``lang`` out)."""
    preprocess = S3NetASRTask.build_preprocess_fn(args_model, True)
    rng = np.random.default_rng(0)
    items = [(utt, preprocess(utt, {"speech": (0.1 * rng.standard_normal(n)).astype(np.float32),
                                    "text": "a b a", "l2s_text": sentence, "lang": lang}))
             for utt, n, sentence, lang in utts]
    ids, batch = S3NetASRTask.build_collate_fn(args_model, True)(items)
    batch.pop("lang"), batch.pop("lang_lengths")
    return {**batch, "utt_id": ids}


@pytest.mark.parametrize("conf, ctc_weight, match", [
    ({"teacher_dir": "x", "lambda": -0.1}, 1.0, "lambda must be a finite number >= 0"),
    ({"teacher_dir": "x", "teacher": "bert"}, 1.0, "unknown teacher type 'bert'"),
    ({"teacher_dir": "x", "layer": 2}, 1.0, "unknown key"),
    ({"lambda": 1.0}, 1.0, "teacher_dir is required"),
    ({"teacher_dir": "x", "projection_size": 8}, 0.0, "needs a CTC branch"),
])
def test_bad_configuration_is_a_clear_error(tmp_path, conf, ctc_weight, match):
    with pytest.raises(ValueError, match=match):
        _build(tmp_path, conf, training=False, ctc_weight=ctc_weight)


def test_missing_teacher_dir_stops_training_but_not_decoding(tmp_path):
    conf = {"teacher_dir": str(tmp_path / "gone"), "projection_size": 16}
    with pytest.raises(ValueError, match="teacher_dir .*gone does not exist .*train_text_teacher"):
        _build(tmp_path, conf)
    model = _build(tmp_path, conf, training=False)
    assert model.teacher is None and model.distill_l2s.projection.out_features == 16
    with pytest.raises(ValueError, match="projection_size 8 != hidden size 16"):
        _build(tmp_path, {"teacher_dir": str(train_tiny(tmp_path, steps=1)), "projection_size": 8})


def test_step_with_s3net_frontend_trains_the_student_only(tmp_path, teacher_dir):
    args = _args(tmp_path, {"teacher_dir": str(teacher_dir), "lambda": 0.5})
    with teachers_loaded_at_build():
        model = S3NetASRTask.build_model(args)
    assert args.model_conf["distill_l2s_conf"]["projection_size"] == 16  # portable config.yaml
    assert not any("teacher" in k for k in model.state_dict()) and "distill_l2s.projection.weight" in model.state_dict()
    teacher_params = list(model.teacher.model.parameters())
    assert not {id(p) for p in teacher_params} & {id(p) for p in model.parameters()}
    before = [p.clone() for p in teacher_params]
    batch = _batch(args, [("es-1", 16000, "a b a", "es"), ("es-2", 12800, "b a b", "es")])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss, stats, _ = model(**batch)
    assert stats["loss_l2s"].item() > 0
    assert torch.allclose(stats["loss"], stats["loss_ctc"] + stats["loss_l2s"])
    loss.sum().backward()
    assert model.distill_l2s.projection.weight.grad.abs().sum() > 0
    assert model.frontend.xlsr.encoder.transformer.layers[-1].feed_forward.output_dense.weight.grad is not None
    optimizer.step()
    assert all(p.grad is None and torch.equal(p, b) for p, b in zip(teacher_params, before))
    assert not model.teacher.model.training
    assert model.skip_counts() == {"es": {"seen": 2, "skipped": 0}}


def test_lambda_zero_is_plain_ctc_without_running_the_teacher(tmp_path, teacher_dir, monkeypatch):
    args = _args(tmp_path, {"teacher_dir": str(teacher_dir), "lambda": 0.0})
    with teachers_loaded_at_build():
        model = S3NetASRTask.build_model(args)
    monkeypatch.setattr(type(model.teacher), "__call__", lambda *a, **k: pytest.fail("the teacher ran"))
    loss, stats, _ = model(**_batch(args, [("es-1", 16000, "a b a", "es")]))
    assert stats["loss_l2s"].item() == 0 and torch.equal(stats["loss"], stats["loss_ctc"])
    loss.sum().backward()
    assert model.distill_l2s.projection.weight.grad is None
    assert model.distill_l2s.unused_parameters_reason() and model.skip_counts() == {}


def test_conformer_encoder_with_huggingface_teacher_and_named_skips(tmp_path, caplog):
    xlmr = save_tiny_xlmr(tmp_path / "xlmr")
    model = _build(tmp_path, {"teacher": "huggingface", "teacher_dir": str(xlmr), "teacher_layer": 1}, *CONFORMER)
    assert model.distill_l2s.projection.in_features == 16
    args = _args(tmp_path, {"teacher": "huggingface", "teacher_dir": str(xlmr)}, *CONFORMER)
    batch = _batch(args, [("ky-1", 16000, "бир эки", "ky"), ("ky-2", 12800, "la casa", "ky")])
    with caplog.at_level(logging.WARNING):
        loss, stats, _ = model(**batch)
    assert torch.isfinite(loss).all() and stats["loss_l2s"].item() > 0
    assert model.skip_counts() == {"ky": {"seen": 2, "skipped": 1}}
    assert "skipped utterance ky-1 of language ky: all 2 tokens are unknown" in caplog.text
    del batch["l2s_text"]
    with pytest.raises(ValueError, match="l2s_text"):
        model(**batch)


def test_asr_train_end_to_end_and_decoding_without_the_teacher(tmp_path, teacher_dir, monkeypatch, caplog):
    lang_data(tmp_path / "train")
    (tmp_path / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    (tmp_path / "conf.yaml").write_text(f"""
frontend: s3net
frontend_conf:
    xlsr_conf:
        name: xlsr_tiny
encoder: passthrough
normalize: null
model: distill_l2s
model_conf:
    ctc_weight: 1.0
    distill_l2s_conf:
        teacher_dir: {teacher_dir}
        lambda: 0.3
batch_type: lang_numel
batch_bins: 48000
num_iters_per_epoch: 2
max_epoch: 1
optim: adam
num_workers: 0
num_att_plot: 0
""")
    text = ["train/text,l2s_text,text"]
    command = asr_train_command("exp", "--train_data_path_and_name_and_type", *text,
                                "--valid_data_path_and_name_and_type", *text)
    assert command[1:3] == ["-m", "espnet2.bin.asr_train"]
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO):
        S3NetASRTask.main(cmd=command[3:])  # in this process: ESPnet is imported already
    assert "loss_l2s=" in caplog.text and "Distill-L2S: teacher self_trained" in caplog.text
    config = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())
    assert config["model_conf"]["distill_l2s_conf"]["projection_size"] == 16
    state = torch.load(tmp_path / "exp" / "1epoch.pth", weights_only=True)
    assert "distill_l2s.projection.weight" in state and not any("teacher" in k for k in state)

    moved = tmp_path / "teacher_elsewhere"
    shutil.copytree(teacher_dir, moved)
    shutil.rmtree(teacher_dir)  # decoding needs no teacher
    try:
        model, _ = S3NetASRTask.build_model_from_file(tmp_path / "exp" / "config.yaml",
                                                      tmp_path / "exp" / "1epoch.pth")
        assert model.teacher is None
        out, lens = model.eval().encode(torch.zeros(1, 16000), torch.tensor([16000]))
        assert model.ctc.argmax(out).shape == (1, int(lens[0]))
    finally:
        shutil.copytree(moved, teacher_dir)
