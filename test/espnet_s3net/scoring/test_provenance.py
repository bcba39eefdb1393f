"""Starting models of experiments (the recipe's experiment.yaml chain, config.yaml), seeds, environment."""

import os

import pytest
import yaml

from espnet_s3net.recipe_experiment import fingerprint
from espnet_s3net.scoring import provenance as pv


def _record(exp_dir, inputs):
    os.makedirs(exp_dir, exist_ok=True)
    record = {"config_file": "conf/x.yaml", "config": {}, "args": "",
              "inputs": {name: {"path": path, "fingerprint": fp} for name, (path, fp) in inputs.items()},
              "options": {}}
    with open(os.path.join(exp_dir, "experiment.yaml"), "w") as f:
        yaml.safe_dump(record, f)


INIT = ("/models/xlsr_53.pt", "9 bytes, sha256 " + "9" * 64)
DATA = {"train_multi/utt2lang": ("dump/raw/train_multi/utt2lang", "1 bytes, sha256 " + "0" * 64)}


def _recipe(root, ssl_name, fingerprint, mode="scratch", seed=1):
    """The recipe's layout and records (paths relative to the recipe dir) of the fine-tunings of
    xlsr, xlsr_cont and s3net_lth for one seed. ``mode``: pre-training from scratch, pre-training
    from the public checkpoint ``INIT`` (``init``), or no pre-training (``skip``: experiments
    start from ``INIT``, in the ``init_<tag>`` dir that records it)."""
    ssl = f"exp/{ssl_name}"
    if mode == "skip":
        _record(root / ssl, {"init": INIT})
        start = {"init": INIT}
    else:
        _record(root / ssl, {**DATA, "init": INIT} if mode == "init" else DATA)
        (root / ssl / "valid.loss.ave.pth").write_bytes(b"pretrained")
        start = {"ssl_model": (f"{ssl}/valid.loss.ave.pth", fingerprint)}
    tokens = {"token_list": ("data/tokens.txt", "2 bytes, sha256 " + "2" * 64)}
    runs = {"xlsr": root / ssl / f"asr_ctc_seed{seed}"}
    _record(runs["xlsr"], {**start, **tokens})
    for arm, continued, masks in (("s3net_lth", f"{ssl}/subnets_lth/s3net_train_seed{seed}", True),
                                  ("xlsr_cont", f"{ssl}/xlsr_cont/s3net_train_seed{seed}", False)):
        mask_input = {"masks": (f"{ssl}/subnets_lth/masks.pt", "3 bytes, sha256 " + "3" * 64)} if masks else {}
        _record(root / continued, {**start, **mask_input, **DATA})
        (root / continued / "valid.loss.ave.pth").write_bytes(arm.encode())
        runs[arm] = root / continued / f"asr_ctc_seed{seed}"
        own = {"ssl_model": (f"{continued}/valid.loss.ave.pth", f"5 bytes, sha256 {arm[0] * 64}")}
        _record(runs[arm], {**own, **({"masks": (f"{continued}/masks.pt", mask_input["masks"][1])} if masks else {}),
                            **tokens})
    return {arm: str(d) for arm, d in runs.items()}


PRETRAINED = "10 bytes, sha256 " + "1" * 64


def test_the_chain_of_records_leads_to_the_pretrained_model(tmp_path, monkeypatch):
    runs = _recipe(tmp_path / "recipe", "pretrain_small", PRETRAINED)
    monkeypatch.chdir(tmp_path)  # recorded paths are relative to the recipe dir: found from the experiment
    for exp in runs.values():
        model = pv.starting_model(exp)
        assert model.key == PRETRAINED and model.path == "exp/pretrain_small/valid.loss.ave.pth"
    # stage 12 reads experiments through links named after the model
    (tmp_path / "rows").mkdir()
    os.symlink(runs["s3net_lth"], tmp_path / "rows" / "s3net_lth")
    assert pv.starting_model(str(tmp_path / "rows" / "s3net_lth")).key == PRETRAINED
    starts, unchecked = pv.check_starting_models({"xlsr": [runs["xlsr"]], "xlsr_cont": [runs["xlsr_cont"]],
                                                  "s3net_lth": [str(tmp_path / "rows" / "s3net_lth")]})
    assert unchecked == [] and starts[runs["xlsr"]].describe() == "exp/pretrain_small/valid.loss.ave.pth (sha256 " \
        "111111111111)"


@pytest.mark.parametrize("mode, expected", [("skip", INIT[1]), ("init", PRETRAINED)])
def test_a_public_checkpoint_start(tmp_path, monkeypatch, mode, expected):
    runs = _recipe(tmp_path, "init_xlsr53" if mode == "skip" else "pretrain_small", PRETRAINED, mode)
    monkeypatch.chdir(tmp_path)
    assert {arm: pv.starting_model(d).key for arm, d in runs.items()} == dict.fromkeys(runs, expected)


@pytest.mark.parametrize("mode", ["scratch", "init"])
def test_arms_from_different_pretrained_models_are_refused(tmp_path, monkeypatch, mode):
    a = _recipe(tmp_path, "pretrain_a", "10 bytes, sha256 " + "a" * 64, mode)
    b = _recipe(tmp_path, "pretrain_b", "10 bytes, sha256 " + "b" * 64, mode)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"arms start from different pre-trained models.*xlsr, xlsr_cont from "
                                         r"exp/pretrain_a.*s3net_lth from exp/pretrain_b"):
        pv.check_starting_models({"xlsr": [a["xlsr"]], "xlsr_cont": [a["xlsr_cont"]], "s3net_lth": [b["s3net_lth"]]})
    with pytest.raises(ValueError, match="the seeds of arm xlsr start from different pre-trained models"):
        pv.check_starting_models({"xlsr": [a["xlsr"], b["xlsr"]]})


def test_seeds_of_one_starting_model_agree(tmp_path, monkeypatch):
    runs = [_recipe(tmp_path, "pretrain_small", PRETRAINED, seed=seed) for seed in (1, 2, 3)]
    monkeypatch.chdir(tmp_path)
    arms = {arm: [r[arm] for r in runs] for arm in runs[0]}
    starts, unchecked = pv.check_starting_models(arms)
    assert unchecked == [] and {m.key for m in starts.values()} == {PRETRAINED}


def test_config_yaml_without_a_record(tmp_path):
    checkpoint = tmp_path / "xlsr.pt"
    checkpoint.write_bytes(b"weights")
    for name, layers in (("a", 12), ("b", 12), ("c", 24)):
        (tmp_path / name).mkdir()
        config = {"seed": 1, "frontend_conf": {"init_checkpoint": str(checkpoint),
                                               "xlsr_conf": {"name": "xlsr_base", "num_layers": layers,
                                                             "embed_dim": 768, "dropout": 0.1 if name == "a" else 0}}}
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    model = pv.starting_model(str(tmp_path / "a"))
    assert model.key == fingerprint(str(checkpoint)) and model.how == "init_checkpoint of config.yaml"
    # a training setting (dropout) differs: same architecture
    pv.check_starting_models({"a": [str(tmp_path / "a")], "b": [str(tmp_path / "b")]})
    with pytest.raises(ValueError, match="different XLSR architectures.*num_layers=24"):
        pv.check_starting_models({"a": [str(tmp_path / "a")], "c": [str(tmp_path / "c")]})
    assert pv.duplicate_seeds({"a": [str(tmp_path / "a"), str(tmp_path / "b")]}) == [
        f"arm a: {tmp_path / 'a'}, {tmp_path / 'b'} all record seed 1 in config.yaml"]


def test_what_cannot_be_checked_is_reported_not_refused(tmp_path):
    (tmp_path / "bare").mkdir()
    _record(tmp_path / "moved", {"ssl_model": ("exp/gone/valid.loss.ave.pth", "1 bytes, sha256 ee")})
    starts, unchecked = pv.check_starting_models({"a": [str(tmp_path / "bare")], "b": [str(tmp_path / "moved")]})
    assert starts[str(tmp_path / "bare")].describe() == "not checked"
    assert any("no experiment.yaml" in line and "bare" in line for line in unchecked)
    assert any("exp/gone/valid.loss.ave.pth" in line and "not found" in line for line in unchecked)


def test_environment_block(tmp_path):
    config = tmp_path / "asr.yaml"
    config.write_text("batch_bins: 1\n")
    block = pv.environment([str(config)])
    assert block.startswith("## Environments\n- date: `")
    for line in ("- python version: `", "- espnet version: `espnet ", "- pytorch version: `pytorch ", "- Git hash: "):
        assert line in block
    assert f"  - `{config}` (sha256 `" in block
    with pytest.raises(FileNotFoundError, match="config file .*missing.yaml does not exist"):
        pv.environment([str(tmp_path / "missing.yaml")])


def test_scoring_tool(tmp_path):
    (tmp_path / "j").write_text("computed with jiwer (sclite not found)\n| Sum/Avg | 1 1 | 0 0 0 0 0 0 |\n")
    (tmp_path / "s").write_text("\n       | SPKR   | # Snt # Wrd |\n")
    assert pv.scoring_tool(str(tmp_path / "j")) == "jiwer" and pv.scoring_tool(str(tmp_path / "s")) == "sclite"
