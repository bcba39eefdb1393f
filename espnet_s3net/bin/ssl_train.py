"""XLSR (wav2vec 2.0) pre-training with ESPnet's training machinery.

Usage: ``python -m espnet_s3net.bin.ssl_train --config conf/pretrain_xlsr_small.yaml
--output_dir exp/xlsr_pretrain --train_data_path_and_name_and_type
dump/raw/train_multi/wav.scp,speech,sound --train_data_path_and_name_and_type
dump/raw/train_multi/utt2lang,lang,text --train_shape_file
dump/raw/train_multi/utt2num_samples --valid_data_path_and_name_and_type
dump/raw/dev_multi/wav.scp,speech,sound --valid_data_path_and_name_and_type
dump/raw/dev_multi/utt2lang,lang,text --valid_shape_file
dump/raw/dev_multi/utt2num_samples``

All ESPnet training options apply (``--print_config``, ``--resume``, ``--ngpu``,
``--dist_launcher``, ``--multiprocessing_distributed``, ``--init_param``,
``--keep_nbest_models``, ``--best_model_criterion``); task options are
``--model_conf``, ``--init`` (public fairseq/Hugging Face checkpoint),
``--lang_alpha``; the ``lang`` data input (``utt2lang``) gives each utterance's language.
"""

from typing import Optional, Sequence

from espnet_s3net.tasks.xlsr_pretrain import XLSRPretrainTask


def get_parser():
    """The task's argument parser (ESPnet options + task options)."""
    return XLSRPretrainTask.get_parser()


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Parse ``cmd`` (default: ``sys.argv``) and run pre-training."""
    XLSRPretrainTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
