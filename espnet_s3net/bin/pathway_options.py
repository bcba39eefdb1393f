"""The pathway options of each fine-tuning arm of the recipe (stage 9), checked before training.

    python -m espnet_s3net.bin.pathway_options --asr_config conf/asr_ctc_pathways_small.yaml \\
        --asr_args "--max_epoch 2" --arms "xlsr agnostic fixed_lth pathways dynamic_pathways" \\
        --sparsity 0.5 --langs "es fr"

prints one line per arm, ``<arm> <value>``: the value of ``--frontend_conf pathways=<value>``
(compact JSON: the config's schedule with the recipe's target sparsity and languages, the
arm's importance and regrowth, ``updates_per_round: auto`` computed from the run's updates),
``null`` for an arm without a schedule when the config has one, ``-`` for nothing to pass.
A sparsity outside [0, 1), a schedule that does not fit the run's updates or a dynamic arm
that would never regrow: exit status 1 with the reason. See :mod:`espnet_s3net.recipe_pathways`.
"""

import sys

from espnet_s3net.recipe_pathways import arm_options, get_parser


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    try:
        lines = arm_options(args.asr_config, args.asr_args, args.arms.split(), args.sparsity, args.langs.split())
    except (ValueError, FileNotFoundError, TypeError) as exc:
        sys.exit(f"pathway_options: {exc}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
