"""Batched CTC greedy decoding of single-language test sets (recipe stage 10).

    python -m espnet_s3net.bin.asr_inference --asr_train_config exp/asr_xlsr/config.yaml \\
        --asr_model_file exp/asr_xlsr/valid.loss.ave.pth --data_root dump/raw \\
        --test_sets test_es test_fr --output_root exp/asr_xlsr

What it adds to ESPnet's ``espnet2.bin.asr_inference`` (which decodes these models too, one
utterance at a time, with beam search; give it ``--data_path_and_name_and_type
<set>/utt2lang,lang,text``): batches of utterances by length, all test sets in one process
with one model load, and the real-time factor. Each set's language (its ``utt2lang``)
chooses the sub-network; a language without a mask is an error, or with
``--missing_lang_mask dense`` a logged dense fallback. Writes
``<output_root>/decode_<set>/text`` (hypothesis tokens) and ``rtf``.

``--dtype float16 --sparse_kernels auto`` on a GPU of compute capability 8.0 or higher and a
mask file of pattern 2:4 computes each sub-network with PyTorch's semi-structured sparse
kernels (``espnet_s3net.asr.sparse_kernels``); elsewhere one logged line says why not and
the dense masked weights are used. Off by default: the reference figures stay those of the
dense masked float32 model, the same on every machine (the sparse kernels sum in another
order, and float16 / bfloat16 round).
"""

import argparse
import sys

from espnet_s3net.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asr_train_config", required=True)
    parser.add_argument("--asr_model_file", required=True)
    parser.add_argument("--data_root", required=True, help="dump dir holding the test sets")
    parser.add_argument("--test_sets", nargs="+", required=True)
    parser.add_argument("--output_root", required=True)
    parser.add_argument("--missing_lang_mask", default="error", choices=["error", "dense"])
    parser.add_argument("--batch_bins", type=int, default=1600000, help="padded samples per batch")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                        help="the model's dtype while decoding")
    parser.add_argument("--sparse_kernels", default="off", choices=["auto", "off"],
                        help="auto: 2:4 semi-structured sparse kernels where possible (CUDA, compute capability "
                             ">= 8.0, float16/bfloat16, mask pattern 2:4), else dense masked with a logged reason")
    parser.add_argument("--ngpu", type=int, default=0)
    return parser


def main(argv=None) -> None:
    setup_logging()
    args = get_parser().parse_args(argv)
    from espnet_s3net.asr.inference import decode_sets

    try:
        decode_sets(args.asr_train_config, args.asr_model_file, args.data_root, args.test_sets, args.output_root,
                    args.batch_bins, "cuda" if args.ngpu > 0 else "cpu", args.missing_lang_mask, args.dtype,
                    args.sparse_kernels == "auto")
    except ValueError as exc:
        sys.exit(f"asr_inference: {exc}")


if __name__ == "__main__":
    main()
