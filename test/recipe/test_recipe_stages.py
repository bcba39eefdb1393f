"""Recipe stages 6-9 on the tiny corpus (two languages, xlsr_tiny configs) in a temporary copy
of the recipe dir: experiment directories named from config and tag, a public checkpoint
instead of pre-training (--skip_pretrain true --pretrain_init) with arms trained two at a time
(--arm_nj 2), and experiments that refuse to be reused with a changed config."""

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
import torch
import yaml
from shared_fixtures import copy_recipe, hf_tiny

from espnet_s3net.masks.mask_file import SubnetMasks

REPO = Path(__file__).resolve().parents[2]
ENV = {"PATH": "/usr/bin:/bin", "COMMONVOICE": ""}
LANGS = "es fr"


def _run(recipe: Path, *args, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["./run.sh", "--synth_size", "tiny", "--nj", "2", "--langs", LANGS, *args],
                            cwd=recipe, capture_output=True, text=True, timeout=600, env=ENV)
    if ok:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.parametrize("script,args,message", [
    ("run.sh", ["--finetune_models", "xlsr_cont s3net"], "finetune_models: unknown model 's3net'"),
    ("run.sh", ["--seeds", "1 two"], "seeds must be non-negative integers, got 'two'"),
    ("run_paper.sh", ["--seeds", " "], "--seeds is empty; the comparison needs seeds"),
])
def test_bad_arms_and_seeds_stop_before_any_stage(tmp_path, script, args, message):
    recipe = copy_recipe(tmp_path)
    result = subprocess.run([f"./{script}", "--synth_size", "tiny", "--langs", LANGS, *args], cwd=recipe,
                            capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode != 0 and message in result.stdout + result.stderr, result.stdout + result.stderr
    assert not (recipe / "synth_cv").exists() and not (recipe / "exp").exists()


def _command(log: Path) -> str:
    """The command line that utils/run_local.sh writes at the top of a job's log."""
    return log.read_text().splitlines()[0] + " "


def _span(log: Path):
    """(start, end) of a job, from the times utils/run_local.sh writes in its log."""
    times = {}
    for line in log.read_text().splitlines():
        for key in ("Started", "Ended"):
            if line.startswith(f"# {key} at "):
                text = line[len(f"# {key} at "):].split(" (exit")[0]
                times[key] = datetime.strptime(text, "%a %b %d %H:%M:%S %Z %Y")
    return times["Started"], times["Ended"]


def test_public_checkpoint_through_stages_7_to_9_reads_no_pretraining(tmp_path):
    recipe = copy_recipe(tmp_path)
    hf = hf_tiny(tmp_path / "public" / "xlsr_tiny_hf")
    # where the default pre-training experiment would be: reading any of it would fail
    decoy = recipe / "exp" / "pretrain_xlsr_small"
    decoy.mkdir(parents=True)
    (decoy / "config.yaml").write_text("{{ not a config")
    (decoy / "valid.loss.ave.pth").write_bytes(b"not a checkpoint")
    _run(recipe, "--stop_stage", "9", "--skip_pretrain", "true", "--pretrain_init", str(hf),
         "--subnet_methods", "te", "--s3net_train_config", "conf/s3net_train_tiny.yaml",
         "--asr_config", "conf/asr_ctc_tiny.yaml", "--finetune_models", "xlsr xlsr_cont adapter", "--arm_nj", "2")

    exp = recipe / "exp"
    assert sorted(p.name for p in exp.iterdir()) == ["init_xlsr_tiny_hf", "pretrain_xlsr_small"]
    assert sorted(p.name for p in decoy.iterdir()) == ["config.yaml", "valid.loss.ave.pth"]
    root = exp / "init_xlsr_tiny_hf"
    masks = SubnetMasks.load(str(root / "subnets_te" / "masks.pt"))
    assert masks.languages == ["es", "fr"] and masks.meta["source_model"] == str(hf)
    assert f"--init {hf} " in _command(root / "subnets_te" / "extract.log")

    s3net = root / "subnets_te" / "s3net_train_tiny"
    assert (s3net / "valid.loss.ave.pth").exists()
    command = _command(s3net / "train.log")
    assert f"--init {hf} " in command and "--init_param" not in command
    assert yaml.safe_load((s3net / "experiment.yaml").read_text())["inputs"]["init"]["path"] == str(hf)

    # xlsr_cont: the same continued training from the same checkpoint, without masks
    cont = root / "xlsr_cont" / "s3net_train_tiny"
    assert (cont / "valid.loss.ave.pth").exists() and not (cont / "masks.pt").exists()
    command = _command(cont / "train.log")
    assert f"--init {hf} " in command and "mask_file" not in command
    cont_dir, s3net_dir = (str(d.relative_to(recipe)) for d in (cont, s3net))  # as the recipe names them
    assert command.replace(cont_dir, "OUT") == _command(s3net / "train.log").replace(
        f" --model_conf mask_file={s3net_dir}/masks.pt", "").replace(s3net_dir, "OUT")
    command = _command(cont / "asr_ctc_tiny_phn" / "train.log")
    assert f"ssl_config={cont_dir}/config.yaml" in command and "mask_file" not in command

    # adapter: the same continued training of per-language adapters, fine-tuned with them
    adapter = root / "adapter" / "s3net_train_tiny"
    command = _command(adapter / "train.log")
    assert "--model_conf language_modules={type: adapter, languages: [es, fr], bottleneck: 256}" in command
    state = torch.load(adapter / "asr_ctc_tiny_phn" / "valid.loss.ave.pth", weights_only=True)
    assert any("adapter" in key for key in state), sorted(state)[:5]

    # --arm_nj 2: the continued trainings ran two at a time
    spans = [_span(d / "train.log") for d in (s3net, cont, adapter)]
    assert max(start for start, _ in spans[:2]) < min(end for _, end in spans[:2]), spans
    assert spans[2][0] >= min(end for _, end in spans[:2]), spans

    asr = root / "asr_ctc_tiny_phn"
    assert (asr / "valid.loss.ave.pth").exists()
    command = _command(asr / "train.log")
    assert f"--frontend_conf init_checkpoint={hf} " in command and "ssl_config" not in command
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".log"):
            assert "pretrain_xlsr_small" not in path.read_text(errors="replace"), path

    # another checkpoint under the same name: its experiments are not those of the first
    shutil.rmtree(hf)
    hf_tiny(hf, seed=1)
    result = _run(recipe, "--stage", "7", "--stop_stage", "7", "--skip_pretrain", "true", "--pretrain_init", str(hf),
                  "--subnet_methods", "te", ok=False)
    assert result.returncode != 0
    assert "inputs.init.fingerprint" in result.stderr and "pass a new --pretrain_tag" in result.stderr


def test_changed_config_stops_the_stage_and_names_the_key(tmp_path):
    recipe = copy_recipe(tmp_path)
    pretrain = ["--pretrain_config", "conf/pretrain_xlsr_tiny.yaml", "--pretrain_args", "--max_epoch 1"]
    _run(recipe, "--stop_stage", "7", *pretrain, "--subnet_methods", "te")
    # the tag: the config's name and ESPnet's suffix of the extra args
    ssl = recipe / "exp" / "pretrain_xlsr_tiny_max_epoch1"
    assert (ssl / "valid.loss.ave.pth").exists() and (ssl / "subnets_te" / "masks.pt").exists()

    # unchanged: the finished experiments are reused
    result = _run(recipe, "--stage", "6", "--stop_stage", "7", *pretrain, "--subnet_methods", "te")
    assert "pre-training already finished" in result.stdout and "masks.pt exists" in result.stdout

    conf = recipe / "conf" / "pretrain_xlsr_tiny.yaml"
    conf.write_text(conf.read_text().replace("lr: 1.0e-4", "lr: 2.0e-4"))
    result = _run(recipe, "--stage", "6", "--stop_stage", "6", *pretrain, ok=False)
    assert result.returncode != 0
    assert "config.optim_conf.lr: 0.0001 -> 0.0002" in result.stderr, result.stderr[-2000:]
    assert "pass a new --pretrain_tag" in result.stderr and "pre-training with" not in result.stdout

    conf = recipe / "conf" / "extract_te.yaml"
    conf.write_text(conf.read_text().replace("sparsity: 0.5", "sparsity: 0.25"))
    result = _run(recipe, "--stage", "7", "--stop_stage", "7", *pretrain, "--subnet_methods", "te", ok=False)
    assert result.returncode != 0
    assert "config.sparsity: 0.5 -> 0.25" in result.stderr and "--subnets_tag" in result.stderr
    assert SubnetMasks.load(str(ssl / "subnets_te" / "masks.pt")).meta["sparsity"] == 0.5


@pytest.mark.slow
def test_seeds_give_one_experiment_per_seed_and_a_table_with_intervals(tmp_path):
    """--seeds "1 2": stages 8-11 per seed, stage 12's multi-seed RESULTS.md (xlsr_tiny)."""
    recipe = copy_recipe(tmp_path)
    _run(recipe, "--pretrain_config", "conf/pretrain_xlsr_tiny.yaml", "--pretrain_args", "--max_epoch 1",
         "--subnet_methods", "te", "--s3net_train_config", "conf/s3net_train_tiny.yaml",
         "--asr_config", "conf/asr_ctc_tiny.yaml", "--finetune_models", "xlsr_cont s3net_te", "--seeds", "1 2")
    ssl = recipe / "exp" / "pretrain_xlsr_tiny_max_epoch1"
    for seed in (1, 2):
        for cont in (ssl / "xlsr_cont" / f"s3net_train_tiny_seed{seed}",
                     ssl / "subnets_te" / f"s3net_train_tiny_seed{seed}"):
            assert f"--seed {seed}" in _command(cont / "train.log")
            asr = cont / f"asr_ctc_tiny_phn_seed{seed}"
            assert f"--seed {seed}" in _command(asr / "train.log")
            assert (asr / "decode_test_es" / "score_wer" / "utt_errors").exists()
    results = (recipe / "exp" / "RESULTS.md").read_text()
    assert "## Paired tests against the control (xlsr_cont)" in results and "### s3net_te vs xlsr_cont" in results
    assert "| xlsr_cont | 2 |" in results  # mean ± sd over 2 seeds [95% bootstrap interval]
    # #params of each arm's self-supervised model, counted by the recipe (the paper's column)
    params = dict(line.split() for line in (recipe / "exp" / "params.txt").read_text().splitlines())
    assert set(params) == {"xlsr_cont", "s3net_te"} and params["xlsr_cont"] == params["s3net_te"]
