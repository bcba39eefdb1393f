"""DistilXLSR distillation of an XLSR teacher into a smaller XLSR student with ESPnet's
training machinery.

Usage: ``python -m espnet_s3net.bin.distill_train --config conf/distill_xlsr_small.yaml
--output_dir exp/distill_xlsr_small --teacher_conf ssl_config=exp/pretrain/config.yaml
--teacher_conf ssl_model_file=exp/pretrain/valid.loss.ave.pth
--train_data_path_and_name_and_type dump/raw/train_en_shuffled/wav.scp,speech,sound
--train_data_path_and_name_and_type dump/raw/train_en_shuffled/utt2lang,lang,text
--train_shape_file dump/raw/train_en_shuffled/utt2num_samples
--valid_data_path_and_name_and_type ... --valid_shape_file ...``

All ESPnet training options apply (``--print_config``, ``--resume``, ``--ngpu``,
``--dist_launcher``, ``--multiprocessing_distributed``, ``--init_param``,
``--keep_nbest_models``, ``--best_model_criterion``); task options are ``--teacher_conf``,
``--model_conf`` (the student), ``--distill_conf`` and ``--lang_alpha``
(:mod:`espnet_s3net.tasks.xlsr_distill`). The experiment directory is read downstream as
a pre-trained XLSR model (``config.yaml`` + ``valid.loss.ave.pth``).
"""

from typing import Optional, Sequence

from espnet_s3net.tasks.xlsr_distill import XLSRDistillTask


def get_parser():
    """The task's argument parser (ESPnet options + task options)."""
    return XLSRDistillTask.get_parser()


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Parse ``cmd`` (default: ``sys.argv``) and run the distillation."""
    XLSRDistillTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
