"""ESPnet ASR training with the ``s3net`` frontend (``espnet_s3net.tasks.asr``).

Registers our classes, then runs ESPnet's ASR task ``main()``: every ESPnet ASR option
works (``--config``, ``--resume``, ``--ngpu``, ``--init_param``, ...), plus
``--batch_type lang_numel`` / ``--lang_alpha`` and the mask-aware trainer options
(``--mask_source_check``, ``--max_nonfinite_steps``).
"""

from espnet_s3net.tasks.asr import S3NetASRTask


def main(cmd=None) -> None:
    S3NetASRTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
