"""Distill-L2S as an ESPnet CTC ASR model: ``model: distill_l2s`` with ``distill_l2s_conf``.

:class:`DistillL2SASRModel` is ESPnet's ``ESPnetASRModel`` (any frontend, e.g. ``s3net``,
any encoder, e.g. ``passthrough`` or ``conformer``, CTC with or without an attention
decoder) plus the Distill-L2S auxiliary loss (:class:`espnet_s3net.asr.distill_l2s.L2SDistillLoss`)
on the encoder output that feeds CTC: its frames are shrunk by their CTC argmax, aligned
to the teacher's tokens, projected and pulled to a frozen text teacher's hidden states::

    model: distill_l2s
    model_conf:
        ctc_weight: 1.0
        distill_l2s_conf:
            teacher: self_trained        # or huggingface (XLM-R / InfoXLM directory)
            teacher_dir: exp/text_teacher
            teacher_layer: -1            # 0 = embeddings, i = layer i, -1 = last
            lambda: 1.0                  # weight of the auxiliary loss (>= 0)
            projection_size: null        # null: the teacher's hidden size (must equal it)

The loss is ``loss + λ · MSE`` and reported as ``loss_l2s`` (already weighted) next to
``loss_ctc``; the encoder, frontend and CTC head receive its gradient, the teacher none.
With ``lambda: 0`` (the plain CTC control) the teacher does not run and ``loss_l2s`` is 0.

**What the teacher reads.** The sentence of each utterance, given as one more ESPnet
data input named ``l2s_text`` (type ``text``, e.g. the data dir's normalised ``text``)::

    --train_data_path_and_name_and_type dump/raw/train/text,l2s_text,text
    --valid_data_path_and_name_and_type dump/raw/dev/text,l2s_text,text

The token ids the model trains on cannot be turned back into it: our CTC targets are
phones (``text_phn``), and even char/BPE tokens lose what the text tokenizer needs. A
data input is how ESPnet brings extra per-utterance data to ``forward`` (``**kwargs``).
:class:`L2STextPreprocessor` turns the sentence into code points so that ESPnet's
collate function pads it (``l2s_text`` (B, L), ``l2s_text_lengths``); it also copies the
utterance's language (the ``lang`` input, which the trainer takes out of the batch) as
``l2s_lang``, which names the language in skip messages. Decoding needs neither.

**Teacher cost: computed in the same step.** The teacher runs under ``torch.no_grad``
in every training and validation step, on the batch's sentences, on the device of the
encoder output. ``benchmark l2s_step`` measures both options on CPU (one thread,
``xlsr_small``, 4 × 4 s, default self-trained teacher): the teacher's forward costs
2.5-6 ms of a 125-190 ms step (2-4 %), reading the same states from a per-utterance
``.npy`` cache 0.6-0.9 ms; the step ratio was 0.99-1.08 over four runs. A cache is thus
slightly faster per step, by 2-4 % of the step, minus its own stage (one teacher pass over
all training sentences, ~1/epochs of the same-step cost). We compute in the step anyway:
the whole auxiliary loss already stays within the 1.10 step-time target, and a cache
would need a recipe stage, disk
(``N × E`` floats per utterance: ~0.1 MB for XLM-R large) and invalidation whenever
the teacher, its layer or the text changes. GPU: not measured yet (``benchmark l2s_step
--device cuda`` reports the same figures there).

**The teacher is not part of the model.** It is held outside the module tree: not in
``state_dict`` (checkpoints, ``valid.*.ave.pth``, ``espnet2.bin.pack``), not in
``parameters()`` (optimizer, ``--init``), not moved by ``model.to``, never in train mode,
parameters without ``requires_grad``. It is loaded when the model is built for
training (ESPnet's ``main_worker``: bad directories fail before the first step), or on
first use otherwise (:meth:`DistillL2SASRModel.load_teacher`). Building from
``config.yaml`` for decoding (``build_model_from_file``) loads no teacher: the
config holds ``projection_size`` (written at training time), the checkpoint the
projection; the teacher directory may be absent on the decoding machine.

**Skips.** A sentence the teacher's tokenizer cannot encode (all tokens unknown, none,
or an empty sentence) is left out of the auxiliary loss (its CTC loss stays); every
skip is counted per language (:meth:`DistillL2SASRModel.skip_counts`) and logged: the
first of each language with its utterance and reason, then at 10, 100, 1000, ...
skips.

Bad input (errors at build time): ``lambda`` < 0, an unknown teacher type or key, a
missing ``teacher_dir`` (training only), a directory that is not a text encoder, a
``teacher_layer`` the teacher does not have, ``projection_size`` other than the
teacher's hidden size, ``ctc_weight`` 0 (the shrinking needs a trained CTC head).
"""

import contextlib
import dataclasses
import logging
import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.torch_utils.device_funcs import force_gatherable

from espnet_s3net.asr.distill_l2s import L2SDistillLoss
from espnet_s3net.asr.text_teachers import (
    TEACHER_TYPES,
    TextTeacher,
    check_teacher_dir,
    load_text_teacher,
    teacher_hidden_size,
)
from espnet_s3net.train.language_data import LANG, decode_language, encode_language

#: data name of the teacher's text input (``<path>,l2s_text,text``)
L2S_TEXT = "l2s_text"
#: the batch key under which :class:`L2STextPreprocessor` copies the utterance's language
L2S_LANG = "l2s_lang"
UNKNOWN_LANGUAGE = "(no language)"

_LOAD_TEACHER_AT_BUILD = [False]


@contextlib.contextmanager
def teachers_loaded_at_build():
    """Within it, :class:`DistillL2SASRModel` loads (and checks) its teacher when built;
    the task's training entry point (``main_worker``) runs inside it."""
    before = _LOAD_TEACHER_AT_BUILD[0]
    _LOAD_TEACHER_AT_BUILD[0] = True
    try:
        yield
    finally:
        _LOAD_TEACHER_AT_BUILD[0] = before


@dataclasses.dataclass
class DistillL2SConf:
    """``distill_l2s_conf`` (see the module docstring)."""

    teacher_dir: str
    teacher: str = "self_trained"
    teacher_layer: int = -1
    lambda_: float = 1.0
    projection_size: Optional[int] = None

    @classmethod
    def from_dict(cls, conf: Optional[Dict]) -> "DistillL2SConf":
        if not isinstance(conf, dict) or not conf:
            raise ValueError("model distill_l2s needs model_conf.distill_l2s_conf with at least teacher_dir")
        keys = {"teacher", "teacher_dir", "teacher_layer", "lambda", "projection_size"}
        unknown = sorted(set(conf) - keys)
        if unknown:
            raise ValueError(f"distill_l2s_conf: unknown key(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(keys))}")
        teacher = conf.get("teacher", "self_trained")
        if teacher not in TEACHER_TYPES:
            raise ValueError(f"distill_l2s_conf: unknown teacher type {teacher!r}; "
                             f"choose from {', '.join(TEACHER_TYPES)}")
        lambda_ = conf.get("lambda", 1.0)
        if not isinstance(lambda_, (int, float)) or not math.isfinite(lambda_) or lambda_ < 0:
            raise ValueError(f"distill_l2s_conf: lambda must be a finite number >= 0, got {lambda_!r}")
        if not conf.get("teacher_dir"):
            raise ValueError("distill_l2s_conf: teacher_dir is required (the text teacher's directory)")
        projection_size = conf.get("projection_size")
        if projection_size is not None and (not isinstance(projection_size, int) or projection_size < 1):
            raise ValueError(f"distill_l2s_conf: projection_size must be a positive integer, got {projection_size!r}")
        layer = conf.get("teacher_layer", -1)
        if not isinstance(layer, int):
            raise ValueError(f"distill_l2s_conf: teacher_layer must be an integer, got {layer!r}")
        return cls(teacher_dir=str(conf["teacher_dir"]), teacher=teacher, teacher_layer=layer,
                   lambda_=float(lambda_), projection_size=projection_size)

    def to_dict(self) -> Dict:
        return {"teacher": self.teacher, "teacher_dir": self.teacher_dir, "teacher_layer": self.teacher_layer,
                "lambda": self.lambda_, "projection_size": self.projection_size}


class L2STextPreprocessor:
    """Wraps a task's preprocess function: the ``l2s_text`` sentence becomes its code points
    and, when the utterance has a ``lang``, it is copied as ``l2s_lang`` (module docstring)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, uid: str, data: Dict) -> Dict:
        if L2S_TEXT in data and isinstance(data[L2S_TEXT], str):
            data = {**data, L2S_TEXT: encode_language(data[L2S_TEXT].strip())}
            lang = data.get(LANG)
            if isinstance(lang, str) and lang.strip():
                data[L2S_LANG] = encode_language(lang.strip())
            elif isinstance(lang, np.ndarray):
                data[L2S_LANG] = lang.copy()
        return self.inner(uid, data) if self.inner is not None else data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


class DistillL2SASRModel(ESPnetASRModel):
    """ESPnet's CTC(/attention) ASR model with the Distill-L2S loss (module docstring).

    Args: those of ``ESPnetASRModel`` plus ``distill_l2s_conf`` (dict, see the module
    docstring).
    """

    def __init__(self, *args, distill_l2s_conf: Optional[Dict] = None, **kwargs):
        l2s_conf = DistillL2SConf.from_dict(distill_l2s_conf)
        if kwargs.get("ctc_weight", 0.5) == 0.0:
            raise ValueError("model distill_l2s needs a CTC branch (model_conf.ctc_weight > 0): the loss shrinks "
                             "the speech frames by their CTC argmax")
        super().__init__(*args, **kwargs)
        self.l2s_conf = l2s_conf
        self._teacher: Optional[TextTeacher] = None
        self._capture: Optional[List] = None
        self._skips: Dict[str, int] = {}
        self._seen: Dict[str, int] = {}
        projection_size = self.l2s_conf.projection_size
        if _LOAD_TEACHER_AT_BUILD[0]:
            self.load_teacher()
            projection_size = self._teacher.hidden_size
        elif projection_size is None:
            projection_size = teacher_hidden_size(self.l2s_conf.teacher, self.l2s_conf.teacher_dir)
        self.distill_l2s: Optional[L2SDistillLoss] = None
        if projection_size is not None:
            self.distill_l2s = L2SDistillLoss(self.ctc.ctc_lo.in_features, projection_size,
                                              self.l2s_conf.lambda_, blank=self.blank_id)
            self.l2s_conf.projection_size = projection_size
        else:
            logging.info("Distill-L2S: no projection_size and no teacher: built for decoding only")

    @property
    def teacher(self) -> Optional[TextTeacher]:
        """The loaded text teacher (not a submodule), or None."""
        return self._teacher

    def portable_conf(self) -> Dict:
        """``distill_l2s_conf`` with the resolved ``projection_size`` (for ``config.yaml``)."""
        return self.l2s_conf.to_dict()

    def load_teacher(self) -> TextTeacher:
        """Load the teacher (once) and check it against the configuration."""
        if self._teacher is None:
            conf = self.l2s_conf
            check_teacher_dir(conf.teacher, conf.teacher_dir)
            teacher = load_text_teacher(conf.teacher, conf.teacher_dir, conf.teacher_layer)
            if conf.projection_size is not None and conf.projection_size != teacher.hidden_size:
                raise ValueError(f"distill_l2s_conf: projection_size {conf.projection_size} != hidden size "
                                 f"{teacher.hidden_size} of the teacher {conf.teacher_dir}")
            logging.info(f"Distill-L2S: teacher {teacher.name}, layer {conf.teacher_layer}, hidden size "
                         f"{teacher.hidden_size}, lambda {conf.lambda_} (not part of the model's state)")
            self._teacher = teacher
        return self._teacher

    def skip_counts(self) -> Dict[str, Dict[str, int]]:
        """Per language: utterances seen by the loss and skipped (tokenizer could not encode)."""
        return {lang: {"seen": self._seen[lang], "skipped": self._skips.get(lang, 0)} for lang in self._seen}

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor):
        encoder_out, encoder_out_lens = super().encode(speech, speech_lengths)
        if self._capture is not None:
            self._capture.append((encoder_out, encoder_out_lens))
        return encoder_out, encoder_out_lens

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, text: torch.Tensor,
                text_lengths: torch.Tensor, **kwargs):
        sentences = kwargs.pop(L2S_TEXT, None)
        kwargs.pop(f"{L2S_TEXT}_lengths", None)
        langs = kwargs.pop(L2S_LANG, None)
        kwargs.pop(f"{L2S_LANG}_lengths", None)
        if sentences is None:
            raise ValueError(f"model distill_l2s needs each utterance's sentence as the data input '{L2S_TEXT}': "
                             f"add --train_data_path_and_name_and_type <data dir>/text,{L2S_TEXT},text (and the "
                             "same for --valid_data_path_and_name_and_type)")
        if self.distill_l2s is None:
            raise RuntimeError("Distill-L2S: this model was built for decoding (no projection); rebuild it for "
                               "training")
        texts = names = None
        if self.distill_l2s.lambda_ != 0:
            # read back from the device before the speech forward is queued, not after it (a wait for all of it)
            texts = [decode_language(row) for row in sentences.cpu()]
            names = None if langs is None else [decode_language(row) for row in langs.cpu()]
        self._capture = []
        try:
            loss, stats, weight = super().forward(speech, speech_lengths, text, text_lengths, **kwargs)
            encoder_out, encoder_out_lens = self._capture[0]
        finally:
            self._capture = None
        if isinstance(encoder_out, tuple):  # intermediate CTC outputs
            encoder_out = encoder_out[0]
        if texts is None:  # lambda 0, plain CTC: the teacher does not run
            loss_l2s = torch.zeros((), dtype=loss.dtype, device=loss.device)
        else:
            loss_l2s = self._l2s_loss(encoder_out, encoder_out_lens, texts, names, kwargs.get("utt_id"))
        loss = loss + loss_l2s
        stats["loss_l2s"] = loss_l2s.detach()
        stats["loss"] = loss.detach()
        return force_gatherable((loss, stats, weight), loss.device)

    def _l2s_loss(self, encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor, texts: List[str],
                  langs: Optional[List[str]], utt_ids: Optional[Sequence[str]]) -> torch.Tensor:
        teacher = self.load_teacher().to(encoder_out.device)
        out = teacher(texts)
        self._count_skips(out.skipped, langs, utt_ids)
        with torch.no_grad():
            ctc_logits = self.ctc.ctc_lo(encoder_out)
        return self.distill_l2s(encoder_out, encoder_out_lens, ctc_logits, out.states, out.lengths)

    def _count_skips(self, skipped: Sequence[Optional[str]], langs: Optional[List[str]],
                     utt_ids: Optional[Sequence[str]]) -> None:
        names = langs if langs is not None else [UNKNOWN_LANGUAGE] * len(skipped)
        for i, (reason, lang) in enumerate(zip(skipped, names)):
            self._seen[lang] = self._seen.get(lang, 0) + 1
            if reason is None:
                continue
            count = self._skips[lang] = self._skips.get(lang, 0) + 1
            if count == 1 or math.log10(count).is_integer():
                utt = utt_ids[i] if utt_ids is not None else f"#{i} of the batch"
                logging.warning(f"Distill-L2S: skipped utterance {utt} of language {lang}: {reason} "
                                f"(skip {count} of {self._seen[lang]} utterances of {lang} so far; its CTC loss "
                                "is kept)")
