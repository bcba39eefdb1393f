"""Install check: versions of the key packages, the ESPnet plugin, sclite, espeak-ng, the CPU
masking passes and CUDA.

Usage: ``python -m espnet_s3net.bin.check_install``. Exits non-zero when a required
component is missing (sclite, the masking passes and CUDA are optional and only reported).
"""

import sys

from espnet_s3net.install_check import (
    check_cuda,
    check_espeak,
    check_mask_passes,
    check_packages,
    check_plugin,
    check_sclite,
)


def main(argv=None) -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    ok = True
    print("== espnet_s3net install check ==")
    print(f"python          {sys.version.split()[0]} ({sys.executable})")
    for name, version in check_packages():
        ok &= not version.startswith("MISSING")
        print(f"{name:15s} {version}")
    plugin = check_plugin()
    ok &= not plugin.startswith(("MISSING", "FAILED"))
    print(f"{'espnet plugin':15s} {plugin}")
    espeak = check_espeak()
    ok &= espeak.startswith("ok")
    print(f"{'espeak-ng':15s} {espeak}")
    print(f"{'sclite':15s} {check_sclite()}")
    print(f"{'masking passes':15s} {check_mask_passes()}")
    print(f"{'cuda':15s} {check_cuda()}")
    print("== install check " + ("passed ==" if ok else "FAILED =="))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
