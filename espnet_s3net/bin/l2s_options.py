"""The arms, low-resource languages and text teacher of the recipe's Distill-L2S experiment.

    python -m espnet_s3net.bin.l2s_options --asr_config conf/asr_ctc_l2s_small.yaml \\
        --langs "es fr it ky nl" [--high_langs "es fr it"] [--lambdas "0.1 1.0"] [--teacher_dir DIR]

prints ``low <lang> ...``, ``teacher <type> <dir or ->`` and one ``arm <name> <λ>`` line per arm
(``ctc`` with λ 0, then ``l2s`` with the config's λ or one ``l2s_lambda<λ>`` per swept value).
Bad input (λ < 0 or not a number, a config that is not ``model: distill_l2s``, a teacher
directory that does not exist or holds no text teacher, no low-resource language): exit status
1 with the reason. See :mod:`espnet_s3net.recipe_distill_l2s`.
"""

import sys

from espnet_s3net.recipe_distill_l2s import get_parser, plan


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    try:
        lines = plan(args.asr_config, args.lambdas, args.teacher_dir or None, args.langs.split(),
                     args.high_langs.split())
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"l2s_options: {exc}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
