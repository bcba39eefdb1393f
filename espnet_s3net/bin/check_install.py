"""Install check: versions of the key packages, sclite, espeak-ng and CUDA.

Usage: ``python -m espnet_s3net.bin.check_install``. Exits non-zero when a required
component is missing (sclite and CUDA are optional and only reported).
"""

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from typing import List, Tuple

#: (import name, distribution name) of every required package
REQUIRED = [
    ("torch", "torch"),
    ("torchaudio", "torchaudio"),
    ("espnet2", "espnet"),
    ("sentencepiece", "sentencepiece"),
    ("soundfile", "soundfile"),
    ("phonemizer", "phonemizer"),
    ("espeakng_loader", "espeakng-loader"),
    ("kaldiio", "kaldiio"),
    ("jiwer", "jiwer"),
    ("babel", "babel"),
    ("espnet_s3net", "espnet_s3net"),
]
SCLITE_FALLBACK = "/usr/lib/sctk/bin/sclite"


def check_packages() -> List[Tuple[str, str]]:
    """(name, version or 'MISSING: reason') for every required package."""
    rows = []
    for module, dist in REQUIRED:
        try:
            importlib.import_module(module)
            rows.append((dist, importlib.metadata.version(dist)))
        except Exception as exc:  # report every failure, not only ImportError
            rows.append((dist, f"MISSING: {exc}"))
    return rows


def check_sclite() -> str:
    path = shutil.which("sclite")
    if path is None and os.access(SCLITE_FALLBACK, os.X_OK):
        path = SCLITE_FALLBACK
    if path is None:
        return "not found (scoring falls back to jiwer; install Debian package sctk)"
    # sclite without arguments prints its usage (and version) and exits non-zero
    out = subprocess.run([path], capture_output=True, text=True).stdout
    version = next((line.strip() for line in out.splitlines() if "Version" in line), "")
    return f"ok ({path}{'; ' + version if version else ''})"


def check_espeak() -> str:
    try:
        import espeakng_loader
        from phonemizer.backend import EspeakBackend
        from phonemizer.backend.espeak.wrapper import EspeakWrapper

        EspeakWrapper.set_library(espeakng_loader.get_library_path())
        EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
        backend = EspeakBackend("es", language_switch="remove-flags")
        phones = backend.phonemize(["hola"], strip=True)[0]
        return f"ok (espeak-ng {backend.version()}; 'hola' -> {phones!r})"
    except Exception as exc:
        return f"FAILED: {exc}"


def check_cuda() -> str:
    import torch

    if not torch.cuda.is_available():
        return f"not visible (torch {torch.__version__}, built for CUDA {torch.version.cuda}); CPU only"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return f"{len(names)} device(s): {', '.join(names)}"


def main(argv=None) -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    ok = True
    print("== espnet_s3net install check ==")
    print(f"python          {sys.version.split()[0]} ({sys.executable})")
    for name, version in check_packages():
        ok &= not version.startswith("MISSING")
        print(f"{name:15s} {version}")
    espeak = check_espeak()
    ok &= espeak.startswith("ok")
    print(f"{'espeak-ng':15s} {espeak}")
    print(f"{'sclite':15s} {check_sclite()}")
    print(f"{'cuda':15s} {check_cuda()}")
    print("== install check " + ("passed ==" if ok else "FAILED =="))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
