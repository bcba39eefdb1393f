"""Every shipped training config: a training step that leaves a trainable parameter
without gradient is announced by the model, so DDP gets ``find_unused_parameters``."""

from pathlib import Path

import pytest
import torch

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
            "asr_ctc_pathways_small": "xlsr_small"}
# the teacher each distillation config distils (the recipe gives the checkpoint)
DISTILL_TEACHER = {"distill_xlsr_tiny": "xlsr_tiny", "distill_xlsr_small": "xlsr_small"}
CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml") if not p.stem.startswith("extract_"))


def test_every_training_config_is_covered():
    assert set(CONFIGS) == {f"pretrain_xlsr_{s}" for s in ("tiny", "small", "base", "large")} | {
        f"s3net_train_{s}" for s in ("tiny", "small", "base")} | set(ASR_XLSR) | set(DISTILL_TEACHER)


def _model(name: str, tmp_path: Path):
    if name in ASR_XLSR:
        (tmp_path / "tokens.txt").write_text("<blank>\n<unk>\na\nb\n<sos/eos>\n")
        args = S3NetASRTask.get_parser().parse_args(
            ["--config", str(CONF / f"{name}.yaml"), "--token_list", str(tmp_path / "tokens.txt"),
             "--token_type", "word"])
        args.frontend_conf = {**args.frontend_conf, "xlsr_conf": {"name": ASR_XLSR[name]}}
        # a pathways config's schedule is completed per arm by the recipe (sparsity, languages,
        # updates per round); an arm's masks mask gradients but leave none missing
        args.frontend_conf.pop("pathways", None)
        return S3NetASRTask.build_model(args)
    if name in DISTILL_TEACHER:
        args = XLSRDistillTask.get_parser().parse_args(["--config", str(CONF / f"{name}.yaml")])
        teacher = XLSRModel(get_config(DISTILL_TEACHER[name]))
        return XLSRDistillModel(teacher, (args.model_conf or {}).get("xlsr_conf"), args.distill_conf)
    args = XLSRPretrainTask.get_parser().parse_args(["--config", str(CONF / f"{name}.yaml")])
    return XLSRPretrainTask.build_model(args)


@pytest.mark.parametrize("name", CONFIGS)
def test_parameters_without_gradient_are_announced(name, tmp_path):
    torch.manual_seed(0)
    model = _model(name, tmp_path).train()
    speech = 0.1 * torch.randn(2, 8000)
    lengths = torch.tensor([8000, 6400])
    batch = dict(speech=speech, speech_lengths=lengths)
    if name in ASR_XLSR:
        batch.update(text=torch.tensor([[2, 3, 2], [2, 3, -1]]), text_lengths=torch.tensor([3, 2]))
    model(**batch)[0].backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused or unused_parameters_reasons(model), unused[:5]
