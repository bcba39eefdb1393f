"""Small language-tagged data dirs (utt2lang) and a starting S3Net model, shared by the tests."""

import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import soundfile as sf
import torch

from espnet_s3net.masks.mask_file import SubnetMasks, parameter_fingerprint
from espnet_s3net.masks.pruning import prunable_parameters, random_masks
from espnet_s3net.models.pretrain_model import XLSRPretrainModel
from espnet_s3net.models.xlsr import XLSRModel, get_config

LANGS = ("es", "fr")

#: the ASR config of :func:`train_asr`'s shared tiny CTC model (the ``tiny_ctc`` fixture):
#: xlsr_tiny ``s3net`` frontend (last layer) with random es/fr masks, passthrough encoder,
#: word tokens, two updates
TINY_CTC = """
frontend: s3net
frontend_conf:
    xlsr_conf:
        name: xlsr_tiny
    mask_file: masks.pt
encoder: passthrough
normalize: null
model_conf:
    ctc_weight: 1.0
batch_type: lang_numel
batch_bins: 48000
num_iters_per_epoch: 2
max_epoch: 1
optim: adam
optim_conf:
    lr: 1.0e-4
num_workers: 0
num_att_plot: 0
mask_source_check: false
"""


def lang_data(d: Path, nan_short: bool = False) -> Path:
    """Two utterances per language (1.0 s and 0.8 s of noise, text "a b a"); with
    ``nan_short`` the shorter one of each pair is NaN. A 2-utterance batch sorted by
    length gives the longer to rank 0 and the shorter to rank 1."""
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {name: [] for name in ("wav.scp", "text", "utt2lang", "utt2num_samples")}
    for lang in LANGS:
        for i, num in enumerate((16000, 12800)):
            utt = f"{lang}-s-{i}"
            audio = (0.1 * rng.standard_normal(num)).astype(np.float32)
            if nan_short and i == 1:
                audio[:] = np.nan
            sf.write(d / f"{utt}.wav", audio, 16000, subtype="FLOAT")
            for name, value in (("wav.scp", d / f"{utt}.wav"), ("text", "a b a"), ("utt2lang", lang),
                                ("utt2num_samples", num)):
                files[name].append(f"{utt} {value}")
    for name, lines in files.items():
        (d / name).write_text("\n".join(sorted(lines)) + "\n")
    return d


def start_model(tmp: Path) -> SubnetMasks:
    """The starting S3Net model (tmp/init.pth) and random masks for it (tmp/masks.pt)."""
    torch.manual_seed(0)
    model = XLSRPretrainModel({"name": "xlsr_tiny"})
    torch.save(model.state_dict(), tmp / "init.pth")
    params = prunable_parameters(model.xlsr)
    masks = SubnetMasks.from_dense({lang: random_masks(params, 0.5, "layerwise", i) for i, lang in enumerate(LANGS)},
                                   {"source_fingerprint": parameter_fingerprint(model.xlsr, list(params))})
    masks.save(str(tmp / "masks.pt"))
    return masks


def data_args(d: Path, text: bool = False, lang: bool = True):
    """ESPnet's train/valid data options for the data dir ``d`` (speech, language, text)."""
    out = []
    for split in ("train", "valid"):
        out += [f"--{split}_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound"]
        if lang:
            out += [f"--{split}_data_path_and_name_and_type", f"{d}/utt2lang,lang,text"]
        if text:
            out += [f"--{split}_data_path_and_name_and_type", f"{d}/text,text,text"]
        out += [f"--{split}_shape_file", f"{d}/utt2num_samples"]
    return out


def train_asr(tmp: Path, config: str, *args: str) -> subprocess.CompletedProcess:
    """An ESPnet ASR model of the YAML ``config`` (an xlsr_tiny ``s3net`` frontend with
    ``mask_file: masks.pt``) trained by ``python -m espnet2.bin.asr_train`` in ``tmp`` (paths
    relative to it), with more ``args``: data ``train/``, random es/fr masks ``masks.pt``,
    tokens ``tokens.txt``, output ``exp/``."""
    lang_data(tmp / "train")
    params = prunable_parameters(XLSRModel(get_config("xlsr_tiny")))
    SubnetMasks.from_dense({lang: random_masks(params, 0.5, "layerwise", i) for i, lang in enumerate(LANGS)},
                           {}).save(str(tmp / "masks.pt"))
    (tmp / "conf.yaml").write_text(config)
    (tmp / "tokens.txt").write_text("<blank>\n<unk>\na\nb\n<sos/eos>\n")
    return subprocess.run(asr_train_command("exp", *args), cwd=tmp, capture_output=True, text=True)


def asr_train_command(output_dir: str, *args: str) -> List[str]:
    """The ``python -m espnet2.bin.asr_train`` command of :func:`train_asr` (run in its dir)
    into ``output_dir``, with more ``args``."""
    return [sys.executable, "-m", "espnet2.bin.asr_train", "--config", "conf.yaml", "--output_dir", output_dir,
            "--token_type", "word", "--token_list", "tokens.txt", *data_args(Path("train"), text=True), *args]
