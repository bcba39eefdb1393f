"""Checks of an installation: package versions, the ESPnet plugin, espeak-ng, sclite, CUDA
(``python -m espnet_s3net.bin.check_install`` prints them)."""

import importlib
import importlib.metadata
import os
import shutil
import subprocess
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


def check_mask_passes() -> str:
    """The masking passes of masked training that read bit-packed masks (optional: without
    them eager ops run): the C library on CPU and, where CUDA is visible, the Triton kernels
    on the first GPU."""
    import torch

    from espnet_s3net.masks import mask_kernels

    if mask_kernels.load_cpu_passes():
        report = f"ok (built with the C compiler, cached in {mask_kernels.cache_dir()})"
    else:
        report = f"not built ({mask_kernels._library.error}); masked CPU training uses slower eager ops"
    if torch.cuda.is_available():
        device = torch.device("cuda", 0)
        if mask_kernels.load_gpu_passes(device):
            report += f"; {device}: Triton passes ok"
        else:
            report += (f"; {device}: no Triton passes ({mask_kernels.gpu_pass_errors[device]}), masked GPU "
                       "training uses PyTorch's kernels on a one-byte mask")
    return report


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


def check_plugin() -> str:
    """Whether ESPnet's own entry points know S3Net (``espnet_s3net.plugin``)."""
    import site

    from espnet_s3net import plugin

    if not plugin.enabled():
        return f"switched off ({plugin.ENV_SWITCH}=0)"
    paths = [os.path.join(d, plugin.PTH_NAME) for d in site.getsitepackages() + [site.getusersitepackages()]]
    found = [p for p in paths if os.path.isfile(p)]
    if not found:
        return f"MISSING: no {plugin.PTH_NAME} in site-packages (reinstall the package)"
    from espnet2.tasks.asr import ASRTask

    if ASRTask.__name__ != "S3NetASRTask":
        return f"FAILED: {found[0]} is there but espnet2.tasks.asr.ASRTask is {ASRTask.__name__}"
    return f"ok ({found[0]}: espnet2.bin.asr_train/asr_inference/pack know frontend s3net)"
