"""Train the offline default text teacher of Distill-L2S on transcripts.

A small multilingual masked-LM encoder over sentencepiece pieces
(``espnet_s3net.text.teacher_lm``), trained on the given text files (one per language:
a data dir's ``text``, ``<utt> <sentence>`` per line, or ``--text_format plain``). The
output directory is what ``distill_l2s_conf: {teacher: self_trained, teacher_dir: ...}``
reads. Runs on CPU in minutes at the default size.

Example::

    python -m espnet_s3net.bin.train_text_teacher --output_dir exp/text_teacher \\
        --text data/train_es/text data/train_ky/text --steps 2000
"""

import argparse
import sys

import torch

from espnet_s3net.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", nargs="+", required=True, help="text files, one per language")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--text_format", choices=("kaldi", "plain"), default="kaldi")
    parser.add_argument("--vocab_size", type=int, default=2000,
                        help="sentencepiece pieces (fewer when the text has fewer)")
    parser.add_argument("--dim", type=int, default=128, help="hidden size (the projection size of the loss)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--ffn_dim", type=int, default=512)
    parser.add_argument("--max_len", type=int, default=128, help="positions per sentence, <s> and </s> included")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=64, help="sentences per step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="file (language) sampling probability ∝ sentences^alpha")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--log_interval", type=int, default=100)
    return parser


def main(argv=None) -> None:
    setup_logging()
    args = get_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from espnet_s3net.text.teacher_lm import train_teacher

    try:
        train_teacher(args.text, args.output_dir, text_format=args.text_format, vocab_size=args.vocab_size,
                      dim=args.dim, layers=args.layers, heads=args.heads, ffn_dim=args.ffn_dim,
                      max_len=args.max_len, dropout=args.dropout, steps=args.steps, batch_size=args.batch_size,
                      lr=args.lr, alpha=args.alpha, seed=args.seed, log_interval=args.log_interval)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"train_text_teacher: {exc}")


if __name__ == "__main__":
    main()
