"""The README's walk-through 'Using S3Net in another ESPnet recipe', run as written: its
shell and YAML blocks on an ML-SUPERB-style tiny corpus (transcripts tagged ``[lang]``), with
a tiny Hugging Face checkpoint and a mask file made for it standing in for the real paths."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
from shared_fixtures import hf_tiny

README = Path(__file__).resolve().parents[1] / "README.md"
SETS = ("train_10min_lid", "dev_10min_lid", "test_10min_lid")
LANGS = ("es", "fr")


def _blocks():
    """{name: text} of the fenced blocks after ``<!-- walkthrough: name -->``."""
    found = re.findall(r"<!-- walkthrough: (\S+) -->\n```\w*\n(.*?)```", README.read_text(), re.S)
    return dict(found)


def _corpus(root: Path) -> None:
    rng = np.random.default_rng(0)
    for name in SETS:
        d = root / "dump" / "raw" / name
        d.mkdir(parents=True)
        lines = {"wav.scp": [], "text": [], "utt2num_samples": []}
        for lang in LANGS:
            for i in range(2):
                utt = f"{lang}_{name}_{i}"
                audio = (0.1 * rng.standard_normal(12000 + 800 * i)).astype(np.float32)
                sf.write(d / f"{utt}.flac", audio, 16000)
                lines["wav.scp"].append(f"{utt} {d / f'{utt}.flac'}")
                lines["text"].append(f"{utt} [{lang}] a b a")
                lines["utt2num_samples"].append(f"{utt} {len(audio)}")
        for file, rows in lines.items():
            (d / file).write_text("\n".join(sorted(rows)) + "\n")


def _checkpoint_and_masks(root: Path) -> Path:
    """A tiny HF wav2vec2 directory and exp/subnets_te/masks.pt extracted-for-it (random)."""
    from espnet_s3net.masks.mask_file import SubnetMasks, parameter_fingerprint
    from espnet_s3net.masks.pruning import prunable_parameters, random_masks
    from espnet_s3net.models.checkpoint_import import from_checkpoint

    hf_tiny(root / "hf")
    xlsr = from_checkpoint(str(root / "hf"))
    params = prunable_parameters(xlsr)
    (root / "exp" / "subnets_te").mkdir(parents=True)
    SubnetMasks.from_dense({lang: random_masks(params, 0.5, "layerwise", i) for i, lang in enumerate(LANGS)},
                           {"source_fingerprint": parameter_fingerprint(xlsr, list(params))}
                           ).save(str(root / "exp" / "subnets_te" / "masks.pt"))
    return root / "hf"


def test_walkthrough_blocks_run_as_written(tmp_path):
    blocks = _blocks()
    assert set(blocks) == {"utt2lang", "config", "asr_args", "decode"}
    _corpus(tmp_path)
    hf = _checkpoint_and_masks(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def bash(script):
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    bash(blocks["utt2lang"])  # 1. utt2lang from the [lang] tags
    assert (tmp_path / "dump/raw/test_10min_lid/utt2lang").read_text().splitlines()[0] == "es_test_10min_lid_0 es"

    # 2. the config lines swapped into a CTC-only recipe config (ML-SUPERB's are), tiny budget
    lines = yaml.safe_load(blocks["config"])
    assert lines["frontend_conf"]["init_checkpoint"] == "/path/to/xlsr_53_56k.pt"
    lines["frontend_conf"]["init_checkpoint"] = str(hf)
    config = dict(model_conf={"ctc_weight": 1.0}, batch_bins=64000, num_iters_per_epoch=2, max_epoch=1,
                  num_workers=0, optim="adam", best_model_criterion=[["valid", "loss", "min"]],
                  keep_nbest_models=1, **lines)
    (tmp_path / "conf.yaml").write_text(yaml.safe_dump(config))
    # more tokens than ESPnet's default beam (20)
    tokens = ["<blank>", "<unk>", "[es]", "[fr]", "a", "b", *(f"x{i}" for i in range(20)), "<sos/eos>"]
    (tmp_path / "tokens.txt").write_text("\n".join(tokens) + "\n")

    # 3. training as asr.sh runs it, with the walk-through's asr_args
    (asr_args_option, asr_args), = [shlex.split(blocks["asr_args"])]
    assert asr_args_option == "--asr_args"
    inputs = []
    for split, name in (("train", "train_10min_lid"), ("valid", "dev_10min_lid")):
        d = f"dump/raw/{name}"
        inputs += [f"--{split}_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
                   f"--{split}_data_path_and_name_and_type", f"{d}/text,text,text",
                   f"--{split}_shape_file", f"{d}/utt2num_samples"]
    bash(shlex.join(["python", "-m", "espnet2.bin.asr_train", "--config", "conf.yaml", "--output_dir",
                     "exp/asr_train_asr_s3net", "--token_type", "word", "--token_list", "tokens.txt", *inputs,
                     *shlex.split(asr_args)]))

    result = bash(blocks["decode"])  # 4. decoding with each utterance's language
    hyps = (tmp_path / "exp/asr_train_asr_s3net/decode_test_10min_lid/1best_recog/token").read_text()
    assert sorted(line.split()[0] for line in hyps.splitlines()) == sorted(
        f"{lang}_test_10min_lid_{i}" for lang in LANGS for i in range(2))
    assert "Error" not in result.stderr.replace("[nltk_data] Error", "")
