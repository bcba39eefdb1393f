"""Shuffled-phoneme speech for DistilXLSR: a data dir whose utterances' phoneme segments are
shuffled (``espnet_s3net.data.phoneme_shuffle``).

    python -m espnet_s3net.bin.shuffle_phonemes --asr_train_config exp/asr/config.yaml \\
        --asr_model_file exp/asr/valid.loss.ave.pth --data_dir dump/raw/train_es \\
        --out_dir dump/raw/train_es_shuffled

The segment boundaries come from a CTC forced alignment of each utterance's phoneme
transcript (``--text``, default ``text_phn``) with the given phoneme CTC model (the recipe's
fine-tuned model; with language sub-networks, the data dir's language is used). Utterances
that cannot be aligned are skipped, named in ``<out_dir>/skipped.tsv``.
"""

import argparse
import sys

from espnet_s3net.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asr_train_config", required=True)
    parser.add_argument("--asr_model_file", required=True)
    parser.add_argument("--data_dir", required=True, help="one language's data dir (wav.scp, text_phn, utt2lang)")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--text", default="text_phn", help="the data dir's phoneme transcript file")
    parser.add_argument("--frame_shift", type=int, default=320,
                        help="samples per encoder frame (wav2vec 2.0 at 16 kHz: 320)")
    parser.add_argument("--fade_ms", type=float, default=5.0, help="fade in and out of every segment")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ngpu", type=int, default=0)
    return parser


def main(argv=None) -> None:
    setup_logging()
    args = get_parser().parse_args(argv)
    from espnet_s3net.asr.inference import CTCEmissions, set_language, use_language
    from espnet_s3net.data.phoneme_shuffle import shuffle_data_dir
    from espnet_s3net.tasks.asr import S3NetASRTask

    device = "cuda" if args.ngpu > 0 else "cpu"
    try:
        model, _ = S3NetASRTask.build_model_from_file(args.asr_train_config, args.asr_model_file, device)
        use_language(model, set_language(args.data_dir))
        token_ids = {token: i for i, token in enumerate(model.token_list)}
        shuffle_data_dir(args.data_dir, args.out_dir, CTCEmissions(model, device), token_ids, model.blank_id,
                         args.frame_shift, args.seed, round(args.fade_ms * 16), args.text)
    except ValueError as exc:
        sys.exit(f"shuffle_phonemes: {exc}")


if __name__ == "__main__":
    main()
