"""ESPnet task for DistilXLSR distillation of an XLSR teacher into a smaller XLSR student.

The model is :class:`espnet_s3net.models.distill.XLSRDistillModel`; data, batches,
trainer (:class:`LanguageMaskTrainer`), ``--resume``, ``--ngpu N`` / DDP and checkpoint
averaging are those of the pre-training task (:class:`XLSRPretrainTask`). Options:

- ``--teacher_conf``: where the teacher comes from, as for the ``s3net`` frontend:
  ``ssl_config`` + ``ssl_model_file`` (our pre-training, S3Net or distillation
  experiment), ``init_checkpoint`` (a fairseq ``.pt`` file or Hugging Face directory) or
  ``xlsr_conf`` (random weights: tests only); with ``mask_file`` + ``language`` the
  teacher is that language's sub-network (``mask_missing`` as for the frontend), and a
  teacher with language modules (adapters, gates) needs ``language`` too.
- ``--model_conf``: the student, as the pre-training task's ``model_conf`` (only
  ``xlsr_conf``): a named configuration (``{name: xlsr_base, num_layers: 6}``), or without
  ``name`` overrides of the teacher's configuration (``{num_layers: 6}``); absent: the
  teacher's configuration with half of its layers.
- ``--distill_conf``: :class:`~espnet_s3net.models.distill.DistillConfig` (``init``,
  ``layer_map``, ``loss_layers``, ``head``, ``l1_weight``, ``cos_weight``,
  ``freeze_feature_encoder``).

What the experiment directory holds is a pre-trained XLSR model: ``config.yaml`` has the
student's architecture as ``model_conf.xlsr_conf`` (the form :class:`XLSRPretrainTask`
writes), and every checkpoint (``valid.loss.ave.pth``, ``<N>epoch.pth``) holds the
student as ``xlsr.*``, plus the prediction heads of a narrower student (``distill_heads.*``,
skipped when loaded). So ``--frontend_conf ssl_config=<exp>/config.yaml
ssl_model_file=<exp>/valid.loss.ave.pth`` (fine-tuning, stage 9), sub-network extraction
(``--model_config``/``--model_file``), ``count_params`` and continued pre-training with
``--init_param`` read it as they read our pre-training. ``teacher_conf`` and the resolved
``distill_conf`` stay in ``config.yaml`` as the record of how the student was made.

Example::

    python -m espnet_s3net.bin.distill_train --config conf/distill_xlsr_small.yaml \\
        --teacher_conf ssl_config=exp/pretrain_xlsr_small/config.yaml \\
        --teacher_conf ssl_model_file=exp/pretrain_xlsr_small/valid.loss.ave.pth \\
        --train_data_path_and_name_and_type dump/raw/train_en_shuffled/wav.scp,speech,sound ...
"""

import argparse
import dataclasses
import logging

from espnet2.utils.nested_dict_action import NestedDictAction
from typeguard import typechecked

from espnet_s3net.models.distill import XLSRDistillModel
from espnet_s3net.models.pretrain_model import build_xlsr, portable_xlsr_conf
from espnet_s3net.models.xlsr import XLSRModel
from espnet_s3net.tasks.xlsr_pretrain import XLSRPretrainTask
from espnet_s3net.train.language_data import language_followers

#: keys of --teacher_conf: build_xlsr's sources and masks, and the teacher's language
TEACHER_KEYS = ("ssl_config", "ssl_model_file", "init_checkpoint", "xlsr_conf", "mask_file", "mask_missing",
                "language")
#: keys of --model_conf (the student)
STUDENT_KEYS = ("xlsr_conf",)


def teacher_name(conf: dict) -> str:
    """How messages name the teacher of ``--teacher_conf``."""
    for key in ("ssl_model_file", "init_checkpoint"):
        if conf.get(key):
            return str(conf[key])
    return f"the teacher ({conf.get('xlsr_conf')})"


def build_teacher(conf: dict) -> XLSRModel:
    """The teacher of ``--teacher_conf`` (see the module docstring), its language active."""
    conf = dict(conf or {})
    unknown = sorted(set(conf) - set(TEACHER_KEYS))
    if unknown:
        raise ValueError(f"unknown teacher_conf key(s) {unknown}; known: {', '.join(TEACHER_KEYS)}")
    language = conf.pop("language", None)
    if not any(conf.get(k) for k in ("ssl_config", "init_checkpoint", "xlsr_conf")):
        raise ValueError("--teacher_conf needs the teacher: ssl_config + ssl_model_file (an experiment of ours), "
                         "init_checkpoint (fairseq .pt / Hugging Face directory) or xlsr_conf")
    if conf.get("mask_file") and language is None:
        raise ValueError(f"teacher_conf.mask_file {conf['mask_file']} holds sub-networks of several languages: "
                         "choose the teacher's one with teacher_conf.language")
    teacher = build_xlsr(conf.get("xlsr_conf"), conf.get("init_checkpoint"), conf.get("ssl_config"),
                         conf.get("ssl_model_file"), conf.get("mask_file"), conf.get("mask_missing", "error"))
    followers = language_followers(teacher)
    if followers and language is None:
        raise ValueError(f"{teacher_name(conf)} has language modules: choose the teacher's language with "
                         "teacher_conf.language")
    if language is not None:
        if not followers:
            raise ValueError(f"teacher_conf.language {language} is given, but {teacher_name(conf)} has neither "
                             "language masks (teacher_conf.mask_file) nor language modules")
        for follower in followers:
            follower.activate(language)
        logging.info(f"teacher: {teacher_name(conf)} as language {language}")
    return teacher


class XLSRDistillTask(XLSRPretrainTask):
    """DistilXLSR: a frozen XLSR teacher's layers distilled into a smaller XLSR student."""

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument(
            "--model_conf", action=NestedDictAction, default=dict(),
            help="The student: xlsr_conf, a named XLSR configuration ({name: xlsr_base, num_layers: 6}) or, "
            "without name, overrides of the teacher's ({num_layers: 6}); default: the teacher's with half "
            "the layers")
        group.add_argument(
            "--teacher_conf", action=NestedDictAction, default=dict(),
            help="The teacher: ssl_config + ssl_model_file (our experiment), init_checkpoint (fairseq .pt or "
            "Hugging Face directory) or xlsr_conf; mask_file + language for one language's sub-network "
            "(mask_missing: error|dense); language also for a teacher with language modules")
        group.add_argument(
            "--distill_conf", action=NestedDictAction, default=dict(),
            help="init (layer_jump|first_k|shared|random), layer_map (teacher layer, 1-based, of each student "
            "layer; default evenly spaced ending at the teacher's last), loss_layers (student layers in the "
            "loss; default all), head (auto|linear|none), l1_weight, cos_weight, freeze_feature_encoder")

    @classmethod
    @typechecked
    def build_model(cls, args: argparse.Namespace) -> XLSRDistillModel:
        student_conf = dict(args.model_conf or {})
        unknown = sorted(set(student_conf) - set(STUDENT_KEYS))
        if unknown:
            raise ValueError(f"model_conf (the student) takes only {', '.join(STUDENT_KEYS)}, got {unknown}: the "
                             "student is a plain XLSR model")
        teacher_conf = dict(args.teacher_conf or {})
        teacher = build_teacher(teacher_conf)
        model = XLSRDistillModel(teacher, student_conf.get("xlsr_conf"), args.distill_conf,
                                 teacher_name(teacher_conf))
        params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        logging.info(f"XLSRDistillModel: student {params(model.xlsr)} parameters ({model.xlsr.cfg.num_layers} "
                     f"layers), teacher {params(teacher)} ({teacher.cfg.num_layers} layers, frozen); "
                     f"(student, teacher) layers of the loss: {model.pairs}")
        # config.yaml: the student as a pre-trained XLSR model (read by the s3net frontend,
        # extraction, count_params), and the resolved distillation options
        args.model_conf = {"xlsr_conf": portable_xlsr_conf(model.xlsr)}
        args.distill_conf = dataclasses.asdict(model.distill_conf)
        return model
