"""DistilXLSR: distil an XLSR teacher into a shallower (optionally narrower) XLSR student.

DistilXLSR (Interspeech 2023, arXiv 2306.01303) compresses a cross-lingual model (XLSR-53
or XLS-R, 24 layers) into a student with about half of the parameters (the same width,
half of the transformer layers) trained on speech whose phonemes are shuffled
(:mod:`espnet_s3net.data.phoneme_shuffle`), and initialises the student's layers from every
other teacher layer ("layer jumping"). What this module implements:

- **layer map** (``layer_map``): student layer ``i`` (1-based) corresponds to teacher layer
  ``layer_map[i-1]``. Default: evenly spaced and ending at the teacher's last layer,
  ``round(i · N / S)`` for a teacher of N and a student of S layers: for S = N/2 every
  other layer (2, 4, ..., N), so the student's output layer starts as, and learns to
  predict, the teacher's output layer. A layer outside 1..N is an error naming it.
- **initialisation** (``init``): ``layer_jump`` copies teacher layer ``layer_map[i-1]``
  into student layer ``i``; ``first_k`` copies teacher layers 1..S (the usual
  "no layer jumping" baseline); ``shared`` copies only the parts outside the transformer
  layers; ``random`` copies nothing. Except for ``random``, the parts outside the layers
  (conv feature encoder, feature projection, positional convolution, the transformer's
  layer norm, mask embedding and pre-training heads) are copied wherever the student's
  tensor has the teacher's name and shape (what was not copied is logged); the layers
  copied by ``layer_jump``/``first_k`` must have the teacher's width, else an error. A
  teacher with a language's mask is copied as that language's sub-network (``W ⊙ m^l``,
  read from the mask file through its masker).
- **loss** (DistilHuBERT's layer-wise objective, which DistilXLSR distils with): for each
  student layer ``i`` in ``loss_layers`` (default all), its hidden states predict those of
  teacher layer ``layer_map[i-1]`` over the valid frames with
  ``l1_weight · mean|h_s - h_t| + cos_weight · mean(-log σ(cos(h_s, h_t)))`` (both 1.0
  by default), summed over the predicted layers. Prediction heads (``head``): ``auto``
  compares the student's layer output directly when it has the teacher's width (the
  layer-to-layer distillation of DistilXLSR, whose student keeps the width) and puts a
  linear head (student dim -> teacher dim) on each predicted layer of a narrower student;
  ``linear`` always uses linear heads, ``none`` never (a narrower student is then an
  error). Heads exist for training only: they live under ``distill_heads.`` in the
  checkpoints, which the loaders of pre-trained XLSR models skip.
- **teacher**: any :class:`XLSRModel` (built by the task with
  :func:`espnet_s3net.models.pretrain_model.build_xlsr`, so with a language's mask or
  language modules when asked), in eval mode, without gradients, not registered as a
  submodule: it is neither in the state dict nor in the optimizer nor in DDP's
  parameters; ``.to()``/``.cuda()`` move it with the model.
- **student**: a plain :class:`XLSRModel` as ``self.xlsr``, exactly as in
  :class:`~espnet_s3net.models.pretrain_model.XLSRPretrainModel`, so a checkpoint of this
  model is a checkpoint of a pre-trained XLSR model. Its parts the loss does not reach
  (mask embedding, quantizer, ``project_q``, ``final_proj``) are frozen. With
  ``freeze_feature_encoder`` (the default) its conv feature encoder is frozen too, and
  while that encoder equals the teacher's (it does after any init but ``random``) the
  student reuses the teacher's conv features instead of recomputing them: the conv
  encoder is the cross-lingual teacher's, fine-tuning keeps it frozen anyway (the
  ``s3net`` frontend's default), and a step then costs about half of a pre-training step
  of the teacher (``benchmark distil_step``). ``freeze_feature_encoder: false`` trains
  the student's own copy, as DistilHuBERT does (a step then costs about as much as a
  pre-training step of a small teacher, whose conv encoder dominates).
"""

import dataclasses
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet_s3net.models.xlsr import XLSRModel, get_config

INIT_MODES = ("layer_jump", "first_k", "shared", "random")
HEAD_MODES = ("auto", "linear", "none")
#: state-dict prefix of the prediction heads (training only; skipped by XLSR loaders)
HEADS_PREFIX = "distill_heads."
_LAYERS = "encoder.transformer.layers."
#: student parts the distillation loss never reaches: frozen
_UNUSED_PARTS = ("mask_emb", "quantizer", "project_q", "final_proj")
#: XLSRConfig fields that a copied layer must share with the teacher (shapes and meaning)
_LAYER_FIELDS = ("embed_dim", "ffn_dim", "num_heads", "layer_norm_first")


@dataclasses.dataclass
class DistillConfig:
    """The distillation options (``--distill_conf``); see the module docstring."""

    init: str = "layer_jump"
    layer_map: Optional[List[int]] = None
    loss_layers: Optional[List[int]] = None
    head: str = "auto"
    l1_weight: float = 1.0
    cos_weight: float = 1.0
    freeze_feature_encoder: bool = True

    def __post_init__(self):
        if self.init not in INIT_MODES:
            raise ValueError(f"distill_conf.init must be one of {', '.join(INIT_MODES)}, got {self.init!r}")
        if self.head not in HEAD_MODES:
            raise ValueError(f"distill_conf.head must be one of {', '.join(HEAD_MODES)}, got {self.head!r}")
        if self.l1_weight < 0 or self.cos_weight < 0 or self.l1_weight + self.cos_weight == 0:
            raise ValueError(f"distill_conf.l1_weight {self.l1_weight} and cos_weight {self.cos_weight} must be >= 0 "
                             "and not both 0")
        if self.layer_map is not None:
            self.layer_map = list(self.layer_map)
        if self.loss_layers is not None:
            self.loss_layers = list(self.loss_layers)

    @classmethod
    def from_dict(cls, conf: Optional[Dict]) -> "DistillConfig":
        """From ``--distill_conf``; an unknown key is an error naming the known ones."""
        conf = dict(conf or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(conf) - set(known))
        if unknown:
            raise ValueError(f"unknown distill_conf key(s) {unknown}; known: {', '.join(known)}")
        return cls(**conf)


def default_layer_map(student_layers: int, teacher_layers: int) -> List[int]:
    """Teacher layer (1-based) of each student layer: evenly spaced, the last on the
    teacher's last layer (every other layer for a student of half the depth)."""
    if not 0 < student_layers <= teacher_layers:
        raise ValueError(f"a student of {student_layers} layers cannot map onto the teacher's {teacher_layers} "
                         "layers one-to-one: give distill_conf.layer_map")
    return [math.floor(i * teacher_layers / student_layers + 0.5) for i in range(1, student_layers + 1)]


def check_layer_map(layer_map: Sequence, student_layers: int, teacher_layers: int, teacher_name: str) -> List[int]:
    """``layer_map`` as ints; a wrong length or a layer outside the teacher raises ValueError naming it."""
    if len(layer_map) != student_layers:
        raise ValueError(f"distill_conf.layer_map {list(layer_map)} has {len(layer_map)} entries; the student has "
                         f"{student_layers} layers (one teacher layer per student layer)")
    out = []
    for i, layer in enumerate(layer_map):
        if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= teacher_layers:
            raise ValueError(f"distill_conf.layer_map[{i}] = {layer!r} (student layer {i + 1}) points outside the "
                             f"teacher: {teacher_name} has layers 1..{teacher_layers}")
        out.append(layer)
    return out


def student_xlsr_conf(teacher: XLSRModel, xlsr_conf: Optional[Dict], layer_map: Optional[Sequence]) -> Dict:
    """The student's ``xlsr_conf``: ``xlsr_conf`` with a ``name`` is a named configuration
    (+ overrides); without one its fields override the teacher's configuration; absent,
    the teacher's configuration with ``len(layer_map)`` layers, or half the teacher's."""
    conf = dict(xlsr_conf or {})
    if "name" in conf:
        return conf
    base = dataclasses.asdict(teacher.cfg)
    if "num_layers" not in conf:
        conf["num_layers"] = len(layer_map) if layer_map is not None else max(1, teacher.cfg.num_layers // 2)
    return {"name": "xlsr_base", **base, **conf}


def build_student(teacher: XLSRModel, xlsr_conf: Optional[Dict], layer_map: Optional[Sequence]) -> XLSRModel:
    """A new (randomly initialised) student XLSR model (see :func:`student_xlsr_conf`)."""
    conf = student_xlsr_conf(teacher, xlsr_conf, layer_map)
    return XLSRModel(get_config(conf.pop("name"), **conf))


def effective_teacher_state(teacher: XLSRModel) -> Dict[str, torch.Tensor]:
    """The teacher's state dict as its forward uses it: with an active language's mask,
    each masked weight is ``W ⊙ m^l`` (the mask read from the masker's mask file)."""
    state = {k: v.detach() for k, v in teacher.state_dict().items()}
    masker = getattr(teacher, "language_masker", None)
    if masker is not None and masker.active is not None and masker.active in masker.masks.languages:
        for name, keep in masker.masks.dense(masker.active).items():
            state[name] = state[name] * keep.to(state[name].device)
    return state


def _layer_index(name: str) -> Optional[Tuple[int, str]]:
    """(0-based layer, rest of the name) of a transformer layer tensor, else None."""
    if not name.startswith(_LAYERS):
        return None
    index, _, rest = name[len(_LAYERS):].partition(".")
    return int(index), rest


@torch.no_grad()
def init_student(student: XLSRModel, teacher: XLSRModel, init: str, layer_map: Sequence[int]) -> Dict[str, List[str]]:
    """Copy the teacher's weights into ``student`` as ``init`` says (see the module
    docstring); ``layer_map``: teacher layer (1-based) of each student layer, used by
    ``layer_jump``. Returns ``{"copied": [...], "skipped": [...]}`` student tensor names
    (``skipped``: parts outside the layers whose name or shape the teacher lacks)."""
    if init not in INIT_MODES:
        raise ValueError(f"init must be one of {', '.join(INIT_MODES)}, got {init!r}")
    report = {"copied": [], "skipped": []}
    if init == "random":
        return report
    sources = {"layer_jump": list(layer_map), "first_k": list(range(1, student.cfg.num_layers + 1)),
               "shared": None}[init]
    if sources is not None:
        differ = [f"{f} {getattr(student.cfg, f)} vs {getattr(teacher.cfg, f)}" for f in _LAYER_FIELDS
                  if getattr(student.cfg, f) != getattr(teacher.cfg, f)]
        if differ:
            raise ValueError(f"init {init} copies whole teacher layers, but the student's layers differ from the "
                             f"teacher's ({'; '.join(differ)}): a narrower student uses init shared or random")
        if max(sources) > teacher.cfg.num_layers:
            raise ValueError(f"init {init} copies teacher layer {max(sources)}; the teacher has "
                             f"{teacher.cfg.num_layers} layers")
    teacher_state = effective_teacher_state(teacher)
    for name, tensor in student.state_dict().items():
        layer = _layer_index(name)
        if layer is not None:
            if sources is None:
                continue
            source = f"{_LAYERS}{sources[layer[0]] - 1}.{layer[1]}"
            if source not in teacher_state or teacher_state[source].shape != tensor.shape:
                raise ValueError(f"cannot copy teacher tensor {source} into student tensor {name} "
                                 f"{tuple(tensor.shape)}: the teacher lacks it or has another shape")
            tensor.copy_(teacher_state[source])
            report["copied"].append(name)
        elif name in teacher_state and teacher_state[name].shape == tensor.shape:
            tensor.copy_(teacher_state[name])
            report["copied"].append(name)
        else:
            report["skipped"].append(name)
    return report


def layer_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """(L1, -log σ(cos), cos) of ``pred`` against ``target`` (B, T, D), averaged over the
    ``valid`` frames (B, T) (L1 also over the D channels); computed in float32."""
    pred, target = pred[valid].float(), target[valid].float()
    l1 = (pred - target).abs().mean()
    cos = F.cosine_similarity(pred, target, dim=-1)
    return l1, -F.logsigmoid(cos).mean(), cos.mean()


class XLSRDistillModel(AbsESPnetModel):
    """A student XLSR model (``self.xlsr``) learning a frozen teacher's hidden layers.

    Args:
        teacher: the XLSR teacher (its language, if it has masks or language modules,
            already active); it is put in eval mode and frozen.
        xlsr_conf: the student (see :func:`student_xlsr_conf`).
        distill: the options (:class:`DistillConfig` or its dict).
        teacher_name: how messages name the teacher (its checkpoint).
    """

    def __init__(self, teacher: XLSRModel, xlsr_conf: Optional[Dict] = None, distill=None,
                 teacher_name: str = "the teacher"):
        super().__init__()
        conf = distill if isinstance(distill, DistillConfig) else DistillConfig.from_dict(distill)
        teacher.eval().requires_grad_(False)
        # not a submodule: no state dict entries, no optimizer, no DDP parameters (see _apply)
        object.__setattr__(self, "teacher", teacher)
        self.xlsr = student = build_student(teacher, xlsr_conf, conf.layer_map)
        if student.cfg.conv_layers != teacher.cfg.conv_layers:
            raise ValueError(f"the student's conv_layers {student.cfg.conv_layers} differ from the teacher's "
                             f"{teacher.cfg.conv_layers}: their frames must align for layer-to-layer distillation")
        n_student, n_teacher = student.cfg.num_layers, teacher.cfg.num_layers
        if conf.layer_map is None:
            conf.layer_map = default_layer_map(n_student, n_teacher)
        conf.layer_map = check_layer_map(conf.layer_map, n_student, n_teacher, teacher_name)
        if conf.loss_layers is None:
            conf.loss_layers = list(range(1, n_student + 1))
        for layer in conf.loss_layers:
            if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= n_student:
                raise ValueError(f"distill_conf.loss_layers has {layer!r}: the student has layers 1..{n_student}")
        self.distill_conf = conf
        #: (student layer, teacher layer) pairs of the loss
        self.pairs = [(s, conf.layer_map[s - 1]) for s in sorted(set(conf.loss_layers))]
        report = init_student(student, teacher, conf.init, conf.layer_map)
        logging.info(f"student initialised by {conf.init} (layer map {conf.layer_map}): {len(report['copied'])} "
                     f"tensors copied from {teacher_name}"
                     + (f"; not copied (no tensor of that name and shape in the teacher): {report['skipped']}"
                        if report["skipped"] else ""))
        # the teacher's pre-training heads are not used
        teacher.quantizer = teacher.project_q = teacher.final_proj = None
        s_dim, t_dim = student.cfg.embed_dim, teacher.cfg.embed_dim
        if conf.head == "none" and s_dim != t_dim:
            raise ValueError(f"distill_conf.head none compares hidden states directly, but the student's width "
                             f"{s_dim} differs from the teacher's {t_dim}: use head auto or linear")
        self.distill_heads = None
        if conf.head == "linear" or s_dim != t_dim:
            self.distill_heads = torch.nn.ModuleDict({str(s): torch.nn.Linear(s_dim, t_dim) for s, _ in self.pairs})
        for part in _UNUSED_PARTS:
            getattr(student, part).requires_grad_(False)
        if conf.freeze_feature_encoder:
            student.feature_extractor.requires_grad_(False)
        self._shares_features: Optional[bool] = None
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_shares_features", None))

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    def unused_parameters_reason(self) -> Optional[str]:
        """Why a training step may leave parameters without gradient (DDP), or None."""
        return self.xlsr.unused_parameters_reason()

    def shares_features(self) -> bool:
        """Whether the student reuses the teacher's conv features: its conv encoder is
        frozen and equal to the teacher's (checked again after a state dict is loaded)."""
        if not self.distill_conf.freeze_feature_encoder:
            return False
        if self._shares_features is None:
            mine, theirs = self.xlsr.feature_extractor.state_dict(), self.teacher.feature_extractor.state_dict()
            self._shares_features = mine.keys() == theirs.keys() and all(
                torch.equal(mine[k], theirs[k]) for k in mine)
        return self._shares_features

    def distill_loss(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The loss and its terms on a batch of waveforms (B, S) with lengths (B,)."""
        teacher, student = self.teacher, self.xlsr
        share = self.shares_features()
        with torch.no_grad():
            t_features, t_frames = teacher.extract_features(speech, speech_lengths)
            t_states, t_layers = teacher.encode_features(t_features, t_frames)
        if share:
            s_features, frames = t_features, t_frames
        else:
            s_features, frames = student.extract_features(speech, speech_lengths)
        s_states, s_layers = student.encode_features(s_features, frames)
        valid = torch.arange(s_states[0].shape[1], device=speech.device)[None, :] < frames[:, None]
        l1_sum = cos_sum = sim_sum = 0.0
        per_layer = {}
        ran = 0
        for s, t in self.pairs:
            if s not in s_layers:  # skipped by LayerDrop
                continue
            pred = s_states[s_layers.index(s)]
            if self.distill_heads is not None:
                pred = self.distill_heads[str(s)](pred)
            l1, cos_term, sim = layer_loss(pred, t_states[t_layers.index(t)], valid)
            l1_sum, cos_sum, sim_sum = l1_sum + l1, cos_sum + cos_term, sim_sum + sim.detach()
            per_layer[f"cos_s{s}_t{t}"] = sim.detach()
            ran += 1
        if ran == 0:  # every predicted layer dropped: a zero loss that keeps the graph
            zero = s_states[-1].sum() * 0.0
            l1_sum = cos_sum = zero
            sim_sum = zero.detach()
        conf = self.distill_conf
        loss = conf.l1_weight * l1_sum + conf.cos_weight * cos_sum
        return {"loss": loss, "l1": l1_sum, "cos_term": cos_sum, "cos": sim_sum / max(ran, 1), "per_layer": per_layer}

    def forward(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Loss, statistics and batch weight of a batch of waveforms (B, S) at 16 kHz."""
        out = self.distill_loss(speech, speech_lengths)
        stats = dict(loss=out["loss"].detach(), loss_l1=out["l1"].detach(), loss_cos=out["cos_term"].detach(),
                     cos=out["cos"])
        if not self.training or self.xlsr.cfg.layer_drop == 0:  # the same keys in every step
            stats.update(out["per_layer"])
        loss, stats, weight = force_gatherable((out["loss"], stats, speech.shape[0]), out["loss"].device)
        return loss, stats, weight

    def collect_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs) -> Dict[str, torch.Tensor]:
        return {}
