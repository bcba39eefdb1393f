"""Every shipped training config: a training step that leaves a trainable parameter
without gradient is announced by the model, so DDP gets ``find_unused_parameters``."""

from pathlib import Path

import numpy as np
import pytest
import torch
from text_teachers_data import train_tiny

from espnet_s3net.asr.distill_l2s_model import teachers_loaded_at_build
from espnet_s3net.models.distill import XLSRDistillModel
from espnet_s3net.models.xlsr import XLSRModel, get_config
from espnet_s3net.tasks.asr import S3NetASRTask
from espnet_s3net.tasks.xlsr_distill import XLSRDistillTask
from espnet_s3net.tasks.xlsr_pretrain import XLSRPretrainTask
from espnet_s3net.train.masked_trainer import unused_parameters_reasons

CONF = Path(__file__).parents[3] / "egs2/commonvoice_s3net/ssl1/conf"
# the XLSR size each ASR config is fine-tuned from (the recipe gives the checkpoint)
ASR_XLSR = {"asr_ctc_tiny": "xlsr_tiny", "asr_ctc_small": "xlsr_small", "asr_ctc_base": "xlsr_base",
            "asr_conformer_ctc_att_example": "xlsr_small", "asr_ctc_pathways_tiny": "xlsr_tiny",
            "asr_ctc_pathways_small": "xlsr_small", "asr_ctc_l2s_tiny": "xlsr_tiny", "asr_ctc_l2s_small": "xlsr_small"}
# the teacher each distillation config distils (the recipe gives the checkpoint)
DISTILL_TEACHER = {"distill_xlsr_tiny": "xlsr_tiny", "distill_xlsr_small": "xlsr_small"}
CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml") if not p.stem.startswith("extract_"))


def test_every_training_config_is_covered():
    assert set(CONFIGS) == {f"pretrain_xlsr_{s}" for s in ("tiny", "small", "base", "large")} | {
        f"s3net_train_{s}" for s in ("tiny", "small", "base")} | set(ASR_XLSR) | set(DISTILL_TEACHER)


@pytest.fixture(scope="module")
def text_teacher(tmp_path_factory):
    """A tiny self-trained text teacher for the Distill-L2S configs (the recipe gives theirs)."""
    return train_tiny(tmp_path_factory.mktemp("text_teacher"), steps=1)


def _model(name: str, tmp_path: Path, text_teacher=None):
    if name in ASR_XLSR:
        (tmp_path / "tokens.txt").write_text("<blank>\n<unk>\na\nb\n<sos/eos>\n")
        args = S3NetASRTask.get_parser().parse_args(
            ["--config", str(CONF / f"{name}.yaml"), "--token_list", str(tmp_path / "tokens.txt"),
             "--token_type", "word"])
        args.frontend_conf = {**args.frontend_conf, "xlsr_conf": {"name": ASR_XLSR[name]}}
        # a pathways config's schedule is completed per arm by the recipe (sparsity, languages,
        # updates per round); an arm's masks mask gradients but leave none missing
        args.frontend_conf.pop("pathways", None)
        if args.model != "distill_l2s":
            return S3NetASRTask.build_model(args)
        l2s = {**args.model_conf["distill_l2s_conf"], "teacher_dir": str(text_teacher)}
        args.model_conf = {**args.model_conf, "distill_l2s_conf": l2s}
        with teachers_loaded_at_build():
            return S3NetASRTask.build_model(args), args
    if name in DISTILL_TEACHER:
        args = XLSRDistillTask.get_parser().parse_args(["--config", str(CONF / f"{name}.yaml")])
        teacher = XLSRModel(get_config(DISTILL_TEACHER[name]))
        return XLSRDistillModel(teacher, (args.model_conf or {}).get("xlsr_conf"), args.distill_conf)
    args = XLSRPretrainTask.get_parser().parse_args(["--config", str(CONF / f"{name}.yaml")])
    return XLSRPretrainTask.build_model(args)


def _l2s_batch(args):
    """A batch with sentences for the text teacher, through the task's preprocessor and
    collate function (the trainer then takes ``lang`` out)."""
    preprocess = S3NetASRTask.build_preprocess_fn(args, True)
    rng = np.random.default_rng(0)
    items = [(f"es-{i}", preprocess(f"es-{i}", {"speech": (0.1 * rng.standard_normal(n)).astype(np.float32),
                                                "text": "a b a", "l2s_text": "la casa", "lang": "es"}))
             for i, n in enumerate((8000, 6400))]
    ids, batch = S3NetASRTask.build_collate_fn(args, True)(items)
    batch.pop("lang"), batch.pop("lang_lengths")
    return {**batch, "utt_id": ids}


@pytest.mark.parametrize("name", CONFIGS)
def test_parameters_without_gradient_are_announced(name, tmp_path, request):
    torch.manual_seed(0)
    if name.startswith("asr_ctc_l2s"):
        model, args = _model(name, tmp_path, request.getfixturevalue("text_teacher"))
        batch = _l2s_batch(args)
    else:
        model = _model(name, tmp_path)
        batch = dict(speech=0.1 * torch.randn(2, 8000), speech_lengths=torch.tensor([8000, 6400]))
        if name in ASR_XLSR:
            batch.update(text=torch.tensor([[2, 3, 2], [2, 3, -1]]), text_lengths=torch.tensor([3, 2]))
    model.train()
    model(**batch)[0].backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused or unused_parameters_reasons(model), unused[:5]
