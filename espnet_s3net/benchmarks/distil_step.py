"""DistilXLSR distillation step vs a plain pre-training step of the teacher: time ratio.

Three arms on the same fixed batch (``--batch`` utterances of ``--seconds`` s of noise):

- ``pretrain``: the teacher (``--config`` with ``--teacher_layers`` layers, default the
  config's) in training mode, one wav2vec 2.0 step as the pre-training task runs it
  (forward with fixed span masks and distractors, backward, Adam step, zero_grad);
- ``distil``: one step of :class:`espnet_s3net.models.distill.XLSRDistillModel` with that
  teacher (a copy: frozen, eval mode, forward only) and a student of ``--student_layers``
  layers (default half of the teacher's) initialised by layer jumping, with the default
  distillation options (the student's conv feature encoder frozen, so it reuses the
  teacher's conv features): teacher forward, student forward, layer-to-layer loss,
  backward, Adam step on the student's trainable parameters, zero_grad;
- ``distil_conv_trained``: the same with ``freeze_feature_encoder: false`` (the student
  computes and trains its own conv feature encoder, as DistilHuBERT does).

Time, in this process (one CPU thread, or the GPU with a synchronize around each timed
call): after a warm-up round, each of ``--repeats`` rounds runs the three steps, in an
order reversed every round; ``time_ratio`` is the median over rounds of distil / pretrain
(paired within a round, so the machine's drift cancels), ``time_ratio_conv_trained`` that
of distil_conv_trained / pretrain. Target: ``time_ratio`` <= 1.0 (the teacher only runs
forward, the student is half as deep).
"""

import argparse
import copy
import statistics
from functools import partial
from typing import List

import torch

from espnet_s3net.benchmarks._timing import alternating_rounds, on_device
from espnet_s3net.benchmarks._xlsr_step import StepArm, fixed_batch

TARGET = 1.0


class DistilArm:
    """A distillation model in training mode and Adam on its trainable parameters."""

    def __init__(self, model, device: str):
        self.model = model.to(device).train()
        self.optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step(self, batch, seed: int) -> None:
        """One distillation step on the fixed batch (its waveforms and lengths)."""
        torch.manual_seed(seed)
        self.model(batch[0], batch[1])[0].backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def main(argv: List[str]) -> dict:
    from espnet_s3net.models.distill import XLSRDistillModel
    from espnet_s3net.models.xlsr import XLSRModel, get_config

    parser = argparse.ArgumentParser(prog="benchmark distil_step", description=__doc__)
    parser.add_argument("--config", default="xlsr_small", help="the teacher's named XLSR configuration")
    parser.add_argument("--teacher_layers", type=int, default=None, help="default: the config's")
    parser.add_argument("--student_layers", type=int, default=None, help="default: half of the teacher's")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args(argv)
    on_gpu = on_device(args.device)

    overrides = {} if args.teacher_layers is None else {"num_layers": args.teacher_layers}
    torch.manual_seed(0)
    teacher = XLSRModel(get_config(args.config, **overrides))
    student_layers = args.student_layers or max(1, teacher.cfg.num_layers // 2)
    arms = {name: DistilArm(XLSRDistillModel(copy.deepcopy(teacher), {"num_layers": student_layers},
                                             {"init": "layer_jump", "freeze_feature_encoder": frozen}), args.device)
            for name, frozen in (("distil", True), ("distil_conv_trained", False))}
    teacher.to(args.device).train()
    pretrain = StepArm(teacher, None, None)
    batch = fixed_batch(teacher, args.batch, args.seconds, args.device)
    times = alternating_rounds({"pretrain": lambda r: pretrain.step(batch, r),
                                **{name: partial(arm.step, batch) for name, arm in arms.items()}},
                               args.repeats, args.device)

    def ratio(name: str) -> float:
        return statistics.median(d / p for d, p in zip(times[name], times["pretrain"]))

    def params(module) -> int:
        return sum(p.numel() for p in module.parameters())

    return {
        "time_ratio": ratio("distil"), "target": TARGET, "meets_target": ratio("distil") <= TARGET,
        "time_ratio_conv_trained": ratio("distil_conv_trained"),
        "median_s": {name: statistics.median(values) for name, values in times.items()},
        "teacher_params": params(teacher), "student_params": params(arms["distil"].model.xlsr),
        "teacher_layers": teacher.cfg.num_layers, "student_layers": student_layers,
        "layer_map": arms["distil"].model.distill_conf.layer_map,
        "config": args.config, "device": args.device, "batch": args.batch, "seconds": args.seconds,
        "repeats": args.repeats, "threads": None if on_gpu else 1,
    }
