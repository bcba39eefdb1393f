"""Score hypotheses against references with sclite (recipe stage 11).

    python -m espnet_s3net.bin.score --ref dump/raw/test_es/text_phn \\
        --hyp exp/asr_xlsr/decode_test_es/text --output_dir exp/asr_xlsr/decode_test_es/score_wer --unit word

For phone transcripts ``--unit word`` gives the phoneme error rate (phones are the words).
The output dir gets ``ref.trn``, ``hyp.trn``, ``result.txt`` (sclite's report; without sclite,
jiwer's figures in its layout) and ``utt_errors``: ``<utt> <errors> <ref_len>`` per utterance
(errors = substitutions + deletions + insertions), which ``espnet_s3net.bin.make_results --arm``
resamples for its intervals and tests.
"""

import argparse
import os
import sys

from espnet_s3net.data.kaldi_dir import read_kaldi_map
from espnet_s3net.scoring.sclite import read_summary, score


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True)
    parser.add_argument("--hyp", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--unit", default="word", choices=["word", "char"])
    args = parser.parse_args(argv)
    try:
        rate = score(read_kaldi_map(args.ref), read_kaldi_map(args.hyp), args.output_dir, args.unit)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"score: {exc}")
    counts = read_summary(os.path.join(args.output_dir, "result.txt"), "Sum")
    print(f"{args.output_dir}: {rate:.1f}% ({counts['sub']:.0f} substituted, {counts['del']:.0f} deleted, "
          f"{counts['ins']:.0f} inserted of {counts['tokens']:.0f} {args.unit}s)")


if __name__ == "__main__":
    main()
