"""Write the report of a mask file next to it: per-language and per-layer sparsity,
pairwise sharing (IoU heatmaps, PNG) and the weights kept by all / one / no language.

    python -m espnet_s3net.bin.mask_report --masks exp/subnets_te/masks.pt
"""

import argparse
import sys

from espnet_s3net.masks.report import write_report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masks", required=True, help="mask file written by extract_subnets")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.masks)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"mask_report: {exc}")
    print(open(path, encoding="utf-8").read())


if __name__ == "__main__":
    main()
