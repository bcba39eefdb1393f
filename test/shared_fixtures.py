"""Fixtures shared by several test folders: a tiny public-looking checkpoint, a copy of the
recipe directory, a job command that only records what the recipe would run, and a run of
the recipe copy on the tiny synthetic corpus."""

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def hf_tiny(path: Path, seed: int = 0) -> Path:
    """A Hugging Face wav2vec2 pre-training model directory with xlsr_tiny's architecture
    (20 ms frames, so the recipe's ``*_tiny`` configs fit it)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.Wav2Vec2Config(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        conv_dim=(32,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_bias=False,
        feat_extract_norm="group", do_stable_layer_norm=False, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, num_codevector_groups=2, num_codevectors_per_group=16, codevector_dim=32,
        proj_codevector_dim=32)
    transformers.Wav2Vec2ForPreTraining(config).save_pretrained(path)
    return path


def copy_recipe(tmp_path: Path) -> Path:
    """The recipe directory copied under ``tmp_path`` (without data and experiments), with
    ``tools`` beside it as in the repository."""
    recipe = tmp_path / "egs2" / "commonvoice_s3net" / "ssl1"
    shutil.copytree(REPO / "egs2" / "commonvoice_s3net" / "ssl1", recipe,
                    ignore=shutil.ignore_patterns("data", "dump", "exp", "synth_cv"))
    (tmp_path / "tools").symlink_to(REPO / "tools")
    return recipe


# a job command that writes its command line where utils/run_local.sh would and runs nothing
RECORD_JOB = """#!/usr/bin/env bash
mkdir -p "$(dirname "$1")"
log=$1; shift
echo "# $*" > "${log}"
"""


def record_jobs(recipe: Path) -> None:
    """Make every job of the recipe copy ``recipe`` (cmd.sh's train, cuda and decode commands)
    write its command line as the first line of its log instead of running."""
    (recipe / "utils" / "record_job.sh").write_text(RECORD_JOB)
    (recipe / "utils" / "record_job.sh").chmod(0o755)
    (recipe / "cmd.sh").write_text("export train_cmd=utils/record_job.sh cuda_cmd=utils/record_job.sh "
                                   "decode_cmd=utils/record_job.sh\n")


def run_tiny_recipe(recipe: Path, langs: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """``./run.sh --synth_size tiny --nj 2 --langs LANGS ARGS`` in the recipe copy ``recipe``, with
    a plain PATH and no Common Voice release; with ``ok`` its exit status must be 0."""
    result = subprocess.run(["./run.sh", "--synth_size", "tiny", "--nj", "2", "--langs", langs, *args], cwd=recipe,
                            capture_output=True, text=True, timeout=1800,
                            env={"PATH": "/usr/bin:/bin", "COMMONVOICE": ""})
    if ok:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result
