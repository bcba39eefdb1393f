"""The recipe's pathways experiment (``--experiment pathways``): dense, language-agnostic pruned,
fixed S3Net masks, ASR pathways and dynamic pathways from the same starting model, config,
data, updates and seeds; RESULTS.md's pathways table.

Default run: bad input stops before anything runs, and stage 9 with a job command that only
records its command line (no training) shows what each arm gets. ``-m slow``: stages 0-12 on
the tiny corpus from a public-looking checkpoint (``hf_tiny``, ``--skip_pretrain true``)."""

import json
import re
from pathlib import Path

import pytest
import yaml
from shared_fixtures import copy_recipe, hf_tiny, record_jobs, run_tiny_recipe

from espnet_s3net.masks.mask_file import SubnetMasks

LANGS = "es fr"
ARMS = ("xlsr", "agnostic", "fixed_te", "pathways", "dynamic_pathways")
TINY = ["--asr_config", "conf/asr_ctc_pathways_tiny.yaml", "--pathway_method", "te"]


@pytest.mark.parametrize("args,message", [
    (["--experiment", "sparse"], "unknown --experiment 'sparse' (empty, pathways, distill_l2s or distilxlsr)"),
    (["--experiment", "pathways", "--pathway_sparsity", "1.0"],
     "pathway_sparsity must be a number in [0, 1), got '1.0'"),
    (["--experiment", "pathways", "--pathway_sparsity", "-0.1"], "got '-0.1'"),
    (["--experiment", "pathways", "--pathway_sparsity", "half"], "got 'half'"),
    # 3 updates: too few for 2 pruning rounds in the first half of the run
    ([*TINY, "--experiment", "pathways", "--asr_args", "--num_iters_per_epoch 3"],
     "the run has 3 updates: prune_share 0.5 of them is too few for 2 pruning rounds"),
    (["--asr_config", "conf/asr_ctc_tiny.yaml", "--finetune_models", "xlsr pathways"],
     "conf/asr_ctc_tiny.yaml has no frontend_conf.pathways block"),
])
def test_bad_input_stops_before_any_stage(tmp_path, args, message):
    recipe = copy_recipe(tmp_path)
    result = run_tiny_recipe(recipe, LANGS, *args, ok=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr, result.stdout + result.stderr
    assert not (recipe / "synth_cv").exists() and not (recipe / "exp").exists()  # stage 0 did not start


def _fake_inputs(recipe: Path) -> Path:
    """What stage 9 reads (fingerprints only: the job command does not train): data, token
    list, the starting checkpoint and stage 7's masks of fixed_te."""
    for split in ("train_multi", "dev_multi"):
        d = recipe / "dump" / "raw" / split
        d.mkdir(parents=True)
        for name in ("utt2num_samples", "utt2lang", "text_phn"):
            (d / name).write_text(f"{split} {name}\n")
    tokens = recipe / "data" / "token_list" / "phn" / "tokens.txt"
    tokens.parent.mkdir(parents=True)
    tokens.write_text("<blank>\n<unk>\na\n<sos/eos>\n")
    init = recipe.parent / "public" / "fake.pt"
    init.parent.mkdir()
    init.write_bytes(b"a public checkpoint")
    masks = recipe / "exp" / "init_fake" / "subnets_te_sparsity0.5" / "masks.pt"
    masks.parent.mkdir(parents=True)
    masks.write_bytes(b"te masks at 0.5")
    record_jobs(recipe)
    return init


def _asr_dir(root: Path, arm: str, seed: str) -> Path:
    parent = {"xlsr": root, "fixed_te": root / "subnets_te_sparsity0.5"}.get(arm, root / arm)
    return parent / f"asr_ctc_pathways_tiny_phn{seed}"


def _pathways_option(command: str):
    match = re.search(r"--frontend_conf pathways=(\S+) ", command)
    return None if match is None else yaml.safe_load(match.group(1))


def test_stage_9_arms_differ_only_in_their_masks(tmp_path):
    recipe = copy_recipe(tmp_path)
    init = _fake_inputs(recipe)
    common = ["--stage", "9", "--stop_stage", "9", "--experiment", "pathways", *TINY, "--skip_pretrain", "true",
              "--pretrain_init", str(init), "--seeds", "1 2", "--arm_nj", "10"]
    run_tiny_recipe(recipe, LANGS, *common)
    root = recipe / "exp" / "init_fake"
    stripped = {}
    for seed in ("_seed1", "_seed2"):
        for arm in ARMS:
            out = _asr_dir(root, arm, seed)
            command = (out / "train.log").read_text().splitlines()[0] + " "
            assert "--config conf/asr_ctc_pathways_tiny.yaml " in command and f"--seed {seed[-1]} " in command
            assert f"--frontend_conf init_checkpoint={init} " in command
            pathways = _pathways_option(command)
            record = yaml.safe_load((out / "experiment.yaml").read_text())
            assert yaml.safe_load(record["options"]["pathways"]) == pathways
            if arm in ("xlsr", "fixed_te"):
                assert pathways is None and "pathways=null" in command
            else:
                # 8 updates: 2 rounds of floor(0.5 · 8 / 2) = 2 updates
                assert {k: pathways[k] for k in ("target_sparsity", "rounds", "updates_per_round", "languages")} == {
                    "target_sparsity": 0.5, "rounds": 2, "updates_per_round": 2, "languages": ["es", "fr"]}
                assert (pathways["importance"], pathways["regrow_every"]) == {
                    "agnostic": ("magnitude", 0), "pathways": ("taylor", 0), "dynamic_pathways": ("taylor", 3)}[arm]
            fixed = f"--frontend_conf mask_file={root.relative_to(recipe)}/subnets_te_sparsity0.5/masks.pt "
            assert (fixed in command) == (arm == "fixed_te")
            # everything else is the same for every arm of a seed: config, data, updates, seed
            rest = re.sub(r"--frontend_conf (pathways|mask_file)=\S+ ", "", command)
            stripped.setdefault(seed, set()).add(rest.replace(str(out.relative_to(recipe)), "OUT"))
    assert all(len(commands) == 1 for commands in stripped.values()), stripped
    assert not (root / "xlsr_cont").exists() and not (root / "subnets_te").exists()  # no S3Net training

    # another sparsity: the pruned arms' experiments refuse to be reused
    result = run_tiny_recipe(recipe, LANGS, *common, "--pathway_sparsity", "0.7", ok=False)
    assert result.returncode != 0 and "options.pathways" in result.stderr, result.stderr[-2000:]


@pytest.mark.slow
def test_pathways_experiment_end_to_end(tmp_path):
    """Stages 0-12 of ``--experiment pathways`` on the tiny corpus, two languages, from ``hf_tiny``."""
    recipe = copy_recipe(tmp_path)
    hf = hf_tiny(tmp_path / "public" / "xlsr_tiny_hf")
    run_tiny_recipe(recipe, LANGS, "--experiment", "pathways", *TINY, "--skip_pretrain", "true", "--pretrain_init",
                    str(hf), "--arm_nj", "2")
    root = recipe / "exp" / "init_xlsr_tiny_hf"
    fixed = SubnetMasks.load(str(root / "subnets_te_sparsity0.5" / "masks.pt"))
    assert fixed.meta["method"] == "te" and fixed.meta["sparsity"] == 0.5
    assert "--sparsity 0.5" in (root / "subnets_te_sparsity0.5" / "extract.log").read_text().splitlines()[0]
    for arm in ("agnostic", "pathways", "dynamic_pathways"):
        out = _asr_dir(root, arm, "") / "pathways"
        assert sorted(p.name for p in out.glob("masks*.pt")) == ["masks.pt", "masks_round1.pt", "masks_round2.pt"]
        masks = SubnetMasks.load(str(out / "masks.pt"))
        assert masks.languages == ["es", "fr"] and masks.meta["sparsity"] == 0.5 and masks.meta["updates"] == 8
    agnostic = SubnetMasks.load(str(_asr_dir(root, "agnostic", "") / "pathways" / "masks.pt"))
    assert agnostic.packed("es").equal(agnostic.packed("fr"))  # one mask for all languages
    for arm in ARMS:
        assert (_asr_dir(root, arm, "") / "decode_test_fr" / "score_wer" / "utt_errors").exists()

    results = (recipe / "exp" / "RESULTS_pathways.md").read_text()
    section = results.split("## Pathways")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ") and not line.startswith("| arm ")}
    assert list(rows) == list(ARMS)
    assert rows["xlsr"][-2:] == ["0.00", "1.000"] and rows["agnostic"][-2:] == ["0.50", "1.000"]
    assert all(rows[arm][-2] == "0.50" for arm in ARMS[1:])  # one target sparsity for every pruned arm
    assert rows["fixed_te"][2] == "fixed before fine-tuning: te (layerwise)"
    assert "### pathways vs xlsr" in results  # paired tests against the dense model
    config = json.dumps(yaml.safe_load((_asr_dir(root, "dynamic_pathways", "") / "config.yaml").read_text())
                        ["frontend_conf"]["pathways"])
    assert '"regrow_every": 3' in config and '"importance": "taylor"' in config
