"""Collect scored experiments into RESULTS.md (recipe stage 12).

One experiment per model (single seed):

    python -m espnet_s3net.bin.make_results --exp_dirs exp/asr_xlsr exp/asr_s3net_te exp/asr_s3net_lth \\
        --langs "es fr ..." --output exp/RESULTS.md [--high "fr es it ru zh-CN"] [--score score_wer]

One row per experiment (its directory name), one column per language, High / Low / Avg, and
the number of parameters of the experiment's model file (``--model_file`` name).

Several arms with several seeds each:

    python -m espnet_s3net.bin.make_results --langs "es fr ..." --output exp/RESULTS.md \\
        --arm xlsr=exp/a_seed1,exp/a_seed2,exp/a_seed3 --arm s3net_lth=exp/b_seed1,exp/b_seed2,exp/b_seed3 \\
        --control xlsr [--params xlsr=95000000 --params s3net_lth=95000000 | --params_file params.txt] \\
        [--masks s3net_lth=exp/subnets_lth/masks.pt] [--config conf/asr.yaml ...] [--n_resamples 10000 --seed 0]

Each experiment dir's ``decode_test_<lang>/<score>/utt_errors`` (written by
``espnet_s3net.bin.score``) gives per-utterance errors. RESULTS.md gets ESPnet's environment
block; per language and for High / Low / Avg the mean ± sd over seeds with the bootstrap
interval of that mean; the paper's comparison table (#params, High, Low, Avg); every arm
against the control in every column (paired bootstrap interval and p-value, sign test); a
picture of the rates by arm (``<output stem>_rates.png``), and with ``--masks`` the sharing
between the languages' masks per layer (``<output stem>_masks_<name>.png``). High defaults to
the paper's: the three languages with the most XLSR-10 pre-training hours (single-seed mode:
five). Arms whose experiments record different pre-trained starting models, or seeds scored
on different utterances, are refused. #params not given for an arm are counted from its
seeds' ``--model_file``.

``--distill_l2s_table`` (the recipe's Distill-L2S experiment, usually with ``--high ""``: its
languages are all low-resource) adds a table of every language's rate without the auxiliary
loss (the control) and with it (each other arm), with the paired difference; with
``--l2s_step_file`` (the JSON line of ``benchmark l2s_step``) also the loss's step-time cost.

``--distilxlsr_table`` (the recipe's DistilXLSR experiment) adds a table of teacher (the control)
and students: how each self-supervised model was made, #params and share of the teacher's,
per-language and Avg rates, and with ``--rtf_file`` (``espnet_s3net.bin.compare_rtf``) the
decoding real-time factor of each and its ratio to the teacher's, measured in one run.

``--pathways_table`` (the recipe's pathways experiment) adds a table of every arm's
per-language and Avg rates with the sparsity and the mean pairwise overlap (IoU) between the
languages' pathways, computed from the mask file each experiment's model used: its
``pathways/masks.pt`` (masks learned in fine-tuning), else its config's
``frontend_conf.mask_file`` (masks fixed before fine-tuning), else none (dense).
"""

import argparse
import os
import sys

from espnet_s3net.scoring.results import (
    PAPER_N_HIGH,
    collect,
    count_parameters,
    multi_seed_report,
    parse_arms,
    parse_assignments,
    parse_count,
    read_l2s_step,
    read_params_file,
    results_table,
)
from espnet_s3net.scoring.rtf import read_rtf_file

#: options of the multi-seed mode only
MULTI_SEED_OPTIONS = ("control", "params", "params_file", "masks", "config", "pathways_table", "distill_l2s_table",
                      "distilxlsr_table", "rtf_file", "l2s_step_file")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--exp_dirs", nargs="+", help="single-seed mode: one experiment dir per model")
    mode.add_argument("--arm", action="append", metavar="NAME=DIR1,DIR2,...",
                      help="multi-seed mode: an arm and its experiment dirs, one per seed; repeatable")
    parser.add_argument("--langs", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--high", default=None,
                        help="high-resource languages (default: the --n_high with the most XLSR-10 hours; with "
                             "--arm, \"\" for none: every language Low)")
    parser.add_argument("--n_high", type=int, default=None,
                        help=f"number of High languages when --high is not given (default: {PAPER_N_HIGH} as in "
                             "the paper with --arm, 5 with --exp_dirs)")
    parser.add_argument("--score", default="score_wer", help="score_wer (PER for phones) or score_cer")
    parser.add_argument("--model_file", default="valid.loss.ave.pth")
    parser.add_argument("--control", default=None, help="multi-seed mode: the arm the others are tested against")
    parser.add_argument("--params", action="append", metavar="NAME=INT",
                        help="multi-seed mode: #params of an arm; repeatable (default: counted from --model_file)")
    parser.add_argument("--params_file", default=None,
                        help="multi-seed mode: #params per arm, lines 'NAME INT' (--params take precedence)")
    parser.add_argument("--masks", action="append", metavar="NAME=PATH",
                        help="multi-seed mode: a mask file whose sharing between languages is shown; repeatable")
    parser.add_argument("--config", action="append", metavar="PATH",
                        help="multi-seed mode: a config file listed in the environment block; repeatable")
    parser.add_argument("--pathways_table", action="store_true",
                        help="multi-seed mode: add the pathways table (every arm's sparsity and overlap between its "
                             "languages' pathways, read from the mask file each experiment's model used)")
    parser.add_argument("--distill_l2s_table", action="store_true",
                        help="multi-seed mode: add the Distill-L2S table (each language's rate without the loss, "
                             "the control, and with it, with the paired difference)")
    parser.add_argument("--l2s_step_file", default=None,
                        help="multi-seed mode, with --distill_l2s_table: the JSON line of benchmark l2s_step (the "
                             "step-time cost of the loss)")
    parser.add_argument("--distilxlsr_table", action="store_true",
                        help="multi-seed mode: add the DistilXLSR table (teacher = the control, students: #params, "
                             "rates, and with --rtf_file the decoding RTF and its ratio to the teacher's)")
    parser.add_argument("--rtf_file", default=None,
                        help="multi-seed mode: RTF per arm measured in one run (espnet_s3net.bin.compare_rtf)")
    parser.add_argument("--n_resamples", type=int, default=10_000, help="bootstrap resamples of the test utterances")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--level", type=float, default=0.95, help="level of the bootstrap intervals")
    return parser


def main(argv=None) -> None:
    parser = get_parser()
    args = parser.parse_args(argv)
    langs = args.langs.split()
    high = args.high.split() if args.high is not None else None
    if args.exp_dirs and high == []:
        high = None
    if args.exp_dirs:
        given = [f"--{name}" for name in MULTI_SEED_OPTIONS if getattr(args, name)]
        if given:
            parser.error(f"{', '.join(given)} only with --arm (multi-seed mode)")
        single_seed(args, langs, high)
    else:
        if args.control is None:
            parser.error("--arm needs --control NAME (the arm the others are tested against)")
        try:
            arms = parse_arms(args.arm)
            params = read_params_file(args.params_file) if args.params_file else {}
            params.update({name: parse_count(value, f"--params {name}")
                           for name, value in parse_assignments(args.params, "params").items()})
            rtf_note, rtf = read_rtf_file(args.rtf_file) if args.rtf_file else ("", {})
            unknown = [name for name in rtf if name not in arms]
            if unknown:
                raise ValueError(f"{args.rtf_file} has an RTF of {', '.join(unknown)}, which is not an arm")
            if args.l2s_step_file and not args.distill_l2s_table:
                raise ValueError("--l2s_step_file goes with --distill_l2s_table")
            l2s_step = read_l2s_step(args.l2s_step_file) if args.l2s_step_file else None
            text = multi_seed_report(arms, args.control, langs, args.output, args.score, high,
                                     args.n_high or PAPER_N_HIGH, params, parse_assignments(args.masks, "masks"),
                                     args.config or (), args.n_resamples, args.seed, args.level, args.model_file,
                                     args.pathways_table, args.distill_l2s_table, args.distilxlsr_table, rtf,
                                     rtf_note, l2s_step)
        except (ValueError, FileNotFoundError) as exc:
            sys.exit(f"make_results: {exc}")
        print(text, end="")


def single_seed(args: argparse.Namespace, langs, high) -> None:
    from espnet_s3net.scoring.provenance import check_starting_models

    names = [os.path.basename(d.rstrip("/")) for d in args.exp_dirs]
    try:
        if len(set(names)) != len(names):
            raise ValueError(f"two experiment dirs have the same name (a row each): {' '.join(names)}")
        _, unchecked = check_starting_models({name: [d] for name, d in zip(names, args.exp_dirs)})
        rows = {name: collect(d, langs, args.score) for name, d in zip(names, args.exp_dirs)}
        params = {name: count_parameters(os.path.join(d, args.model_file)) for name, d in zip(names, args.exp_dirs)}
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"make_results: {exc}")
    for item in unchecked:
        print(f"make_results: warning: {item}", file=sys.stderr)
    metric = "PER" if args.score == "score_wer" else "CER"
    table = results_table(rows, params, langs, high, metric,
                          n_high=args.n_high or PAPER_N_HIGH)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("# Results\n\n" + table)
    print(table, end="")


if __name__ == "__main__":
    main()
