"""Step time of CTC fine-tuning with the Distill-L2S auxiliary loss vs without it.

Two ESPnet ASR models from the same seed, as our ASR task builds them: the ``s3net`` frontend
(``--xlsr_config``, randomly initialised, or the model that ``--frontend_conf KEY=VALUE``
names, e.g. ``ssl_config=… --frontend_conf ssl_model_file=…`` as the recipe gives it; conv
feature encoder frozen, light time masking as in ``conf/asr_ctc_small.yaml``), the
``passthrough`` encoder and a CTC head;
one is ``model: espnet``, the other ``model: distill_l2s`` with the default
self-trained text teacher (``espnet_s3net.bin.train_text_teacher``'s default size,
trained here for ``--teacher_steps`` steps on the benchmark's sentences: its speed does
not depend on its weights), or ``--teacher``/``--teacher_dir`` for another one. A step:
forward on a fixed batch (``--batch`` utterances of ``--seconds`` s of noise, random
phone targets at 12 per second, sentences of 2.5 words per second for the teacher),
backward, Adam step, zero_grad.

Time, in this process on one CPU thread (or the GPU with a synchronize around each
timed call): after a warm-up round, each of ``--repeats`` rounds runs the plain step,
the Distill-L2S step, the teacher's forward alone on the batch's sentences
(``teacher_ms``: what a cache of teacher states would save) and the read of the same
states from a per-utterance ``.npy`` cache with padding into one tensor
(``cache_read_ms``: what the cache costs instead), in an order reversed every round.
``ratio`` is the median over rounds of the per-round ``l2s / plain``; target ≤ 1.10.
"""

import argparse
import os
import statistics
import tempfile
from typing import List

import numpy as np
import torch

from espnet_s3net.benchmarks._timing import alternating_rounds, on_device

WORDS = ("la casa grande del mercado está cerca del parque y el río corre hacia el mar "
         "bir eki üç dört beş kitap okul yol ev su").split()


def _sentences(batch: int, seconds: float) -> List[str]:
    words = max(1, round(2.5 * seconds))
    return [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(words)) for i in range(batch)]


def _build(args, token_list: List[str], distill_l2s_conf=None):
    """The ESPnet model our ASR task builds for ``frontend: s3net``, ``encoder: passthrough``,
    ``ctc_weight: 1.0`` (``model: espnet``, or ``distill_l2s`` with ``distill_l2s_conf``),
    assembled here without importing the task (ESPnet's task module takes seconds to import)."""
    from espnet2.asr.ctc import CTC
    from espnet2.asr.espnet_model import ESPnetASRModel

    from espnet_s3net.asr.distill_l2s_model import DistillL2SASRModel
    from espnet_s3net.asr.encoder.passthrough_encoder import PassthroughEncoder
    from espnet_s3net.asr.frontend.s3net import S3NetFrontend

    torch.manual_seed(0)
    source = args.frontend_conf or {"xlsr_conf": {"name": args.xlsr_config}}
    frontend = S3NetFrontend(**source, freeze_feature_encoder=True, mask_time_prob=0.05, mask_time_length=5)
    encoder = PassthroughEncoder(frontend.output_size())
    parts = dict(vocab_size=len(token_list), token_list=token_list, frontend=frontend, specaug=None, normalize=None,
                 preencoder=None, encoder=encoder, postencoder=None, decoder=None,
                 ctc=CTC(odim=len(token_list), encoder_output_size=encoder.output_size()), joint_network=None,
                 ctc_weight=1.0)
    if distill_l2s_conf is None:
        model = ESPnetASRModel(**parts)
    else:
        model = DistillL2SASRModel(**parts, distill_l2s_conf=distill_l2s_conf)
    return model.to(args.device).train()


class _Arm:
    def __init__(self, model, batch):
        self.model, self.batch = model, batch
        self.optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step(self, seed: int) -> None:
        torch.manual_seed(seed)
        loss = self.model(**{k: (v.clone() if torch.is_tensor(v) else v) for k, v in self.batch.items()})[0]
        loss.sum().backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark l2s_step", description=__doc__)
    parser.add_argument("--xlsr_config", default="xlsr_small", help="a named XLSR config, randomly initialised")
    parser.add_argument("--frontend_conf", action="append", default=[], metavar="KEY=VALUE",
                        help="instead: the s3net frontend's source model (ssl_config, ssl_model_file, init_checkpoint)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--teacher", default="self_trained", help="teacher type (with --teacher_dir)")
    parser.add_argument("--teacher_dir", default=None, help="an existing teacher; default: train one here")
    parser.add_argument("--teacher_steps", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args(argv)
    allowed = ("ssl_config", "ssl_model_file", "init_checkpoint")
    pairs = [item.partition("=") for item in args.frontend_conf]
    bad = [key for key, eq, value in pairs if key not in allowed or not eq or not value]
    if bad:
        parser.error(f"--frontend_conf takes {', '.join(allowed)} as KEY=VALUE, got {', '.join(bad)}")
    args.frontend_conf = {key: value for key, _, value in pairs}
    on_gpu = on_device(args.device)
    from espnet_s3net.asr.distill_l2s_model import teachers_loaded_at_build
    from espnet_s3net.text.teacher_lm import TeacherLMConfig, train_teacher
    from espnet_s3net.train.language_data import encode_language

    defaults = TeacherLMConfig(vocab_size=0)
    sentences = _sentences(args.batch, args.seconds)
    with tempfile.TemporaryDirectory(prefix="l2s_step_") as tmp:
        vocab = [f"p{i}" for i in range(60)]
        token_list = ["<blank>", "<unk>", *vocab, "<sos/eos>"]
        teacher_dir = args.teacher_dir
        if teacher_dir is None:
            text = os.path.join(tmp, "text")
            with open(text, "w", encoding="utf-8") as f:
                f.writelines(f"u{i} {s}\n" for i, s in enumerate(_sentences(64, args.seconds)))
            teacher_dir = os.path.join(tmp, "teacher")
            train_teacher([text], teacher_dir, vocab_size=200, steps=args.teacher_steps, batch_size=8,
                          log_interval=10 ** 9)
        plain = _build(args, token_list)
        with teachers_loaded_at_build():
            l2s = _build(args, token_list, {"teacher": args.teacher, "teacher_dir": teacher_dir})
        teacher = l2s.teacher.to(args.device)

        gen = torch.Generator().manual_seed(1)
        samples = int(16000 * args.seconds)
        phones = int(12 * args.seconds)
        codes = [torch.from_numpy(encode_language(s)) for s in sentences]
        batch = {
            "speech": torch.randn(args.batch, samples, generator=gen),
            "speech_lengths": torch.full((args.batch,), samples),
            "text": torch.randint(2, 2 + len(vocab), (args.batch, phones), generator=gen),
            "text_lengths": torch.full((args.batch,), phones),
        }
        batch = {k: v.to(args.device) for k, v in batch.items()}
        l2s_batch = {**batch, "l2s_text": torch.nn.utils.rnn.pad_sequence(codes, True, -1).to(args.device),
                     "l2s_text_lengths": torch.tensor([len(c) for c in codes], device=args.device)}
        plain_arm, l2s_arm = _Arm(plain, batch), _Arm(l2s, l2s_batch)

        states = teacher(sentences)
        cache = os.path.join(tmp, "cache")
        os.makedirs(cache)
        for i in range(args.batch):
            np.save(os.path.join(cache, f"u{i}.npy"), states.states[i, :int(states.lengths[i])].cpu().numpy())

        def read_cache(_):
            rows = [torch.from_numpy(np.load(os.path.join(cache, f"u{i}.npy"))) for i in range(args.batch)]
            return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True).to(args.device)

        times = alternating_rounds({
            "plain": plain_arm.step,
            "l2s": l2s_arm.step,
            "teacher": lambda _: teacher(sentences),
            "cache_read": read_cache,
        }, args.repeats, args.device)
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = statistics.median(a / b for a, b in zip(times["l2s"], times["plain"]))
    target = 1.10
    return {
        "ratio": ratio, "target": target, "meets_target": ratio <= target,
        "step_ms": {"plain": 1000 * median["plain"], "l2s": 1000 * median["l2s"]},
        "teacher_ms": 1000 * median["teacher"], "cache_read_ms": 1000 * median["cache_read"],
        "teacher_share": median["teacher"] / median["l2s"],
        "teacher": args.teacher if args.teacher_dir else
        f"self_trained default (dim {defaults.dim}, {defaults.layers} layers, ffn {defaults.ffn_dim})",
        "teacher_tokens": int(states.lengths.sum()),
        "xlsr_config": args.frontend_conf or args.xlsr_config, "device": args.device, "batch": args.batch,
        "seconds": args.seconds,
        "repeats": args.repeats, "threads": None if on_gpu else 1,
    }
