"""The record of what a recipe experiment was started with, and the refusal to reuse it with
other settings (espnet_s3net.recipe_experiment, bin/check_experiment)."""

import subprocess
import sys

import pytest
import yaml

from espnet_s3net.recipe_experiment import RECORD, ExperimentChanged, check_experiment, describe, fingerprint

CONFIG = """# a comment
optim: adam
optim_conf:
    lr: 1.0e-3
    betas: [0.9, 0.98]
max_epoch: 2
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "train.yaml").write_text(CONFIG)
    (tmp_path / "model.pth").write_bytes(b"weights")
    return tmp_path


def _record(files, args="--max_epoch 2", **options):
    return describe(str(files / "train.yaml"), args, {"init_param": str(files / "model.pth")}, options)


def test_first_run_records_then_the_same_settings_pass(files):
    exp = files / "exp" / "a"
    assert check_experiment(str(exp), _record(files, token_type="phn")) == "new"
    stored = yaml.safe_load((exp / RECORD).read_text())
    assert stored["config"]["optim_conf"] == {"lr": 1.0e-3, "betas": [0.9, 0.98]}
    assert stored["args"] == "--max_epoch 2" and stored["options"] == {"token_type": "phn"}
    assert stored["inputs"]["init_param"]["path"] == str(files / "model.pth")
    assert stored["inputs"]["init_param"]["fingerprint"].startswith("7 bytes, sha256 ")
    # layout, comments and the spacing of the args string do not count
    (files / "train.yaml").write_text("max_epoch: 2\noptim_conf: {betas: [0.9, 0.98], lr: 0.001}\noptim: adam\n")
    assert check_experiment(str(exp), _record(files, args=" --max_epoch  2 ", token_type="phn")) == "same"


def test_changed_settings_are_refused_naming_every_key(files):
    exp = files / "exp" / "a"
    check_experiment(str(exp), _record(files))
    (files / "train.yaml").write_text(CONFIG.replace("lr: 1.0e-3", "lr: 2.0e-3").replace("max_epoch: 2\n", ""))
    (files / "model.pth").write_bytes(b"other weights")
    with pytest.raises(ExperimentChanged) as err:
        check_experiment(str(exp), _record(files, args="--max_epoch 3"), tag_option="s3net_tag")
    message = str(err.value)
    for expected in ("config.optim_conf.lr: 0.001 -> 0.002", "config.max_epoch: 2 -> (absent)",
                     "args: '--max_epoch 2' -> '--max_epoch 3'", "inputs.init_param.fingerprint",
                     "pass a new --s3net_tag", f"or remove {exp}"):
        assert expected in message, message
    assert "config.optim:" not in message and "config.optim_conf.betas" not in message
    # the record is left as it was
    assert yaml.safe_load((exp / RECORD).read_text())["config"]["optim_conf"]["lr"] == 1.0e-3


def test_a_directory_with_files_but_no_record_is_adopted_with_a_warning(files, caplog):
    exp = files / "exp" / "old"
    exp.mkdir(parents=True)
    (exp / "checkpoint.pth").write_bytes(b"x")
    assert check_experiment(str(exp), _record(files)) == "adopted"
    assert "no record" in caplog.text and (exp / RECORD).exists()


def test_fingerprint_of_a_directory_follows_names_and_contents(tmp_path):
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"abc")
    first = fingerprint(str(d))
    assert first.startswith("5 bytes, sha256 ") and fingerprint(str(d)) == first
    (d / "model.safetensors").write_bytes(b"abd")
    assert fingerprint(str(d)) != first
    (d / "model.safetensors").write_bytes(b"abc")
    (d / "config.json").rename(d / "other.json")
    assert fingerprint(str(d)) != first
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fingerprint(str(tmp_path / "nope"))


def _check(files, *args):
    return subprocess.run([sys.executable, "-m", "espnet_s3net.bin.check_experiment", "--exp_dir",
                           str(files / "exp"), "--config", str(files / "train.yaml"),
                           "--input", f"init={files / 'model.pth'}", "--tag_option", "pretrain_tag", *args],
                          capture_output=True, text=True)


def test_entry_point_exit_status_and_message(files):
    assert _check(files, "--args=--max_epoch 2", "--option", "langs=es fr").returncode == 0
    assert _check(files, "--args=--max_epoch 2", "--option", "langs=es fr").returncode == 0
    result = _check(files, "--args=--max_epoch 2", "--option", "langs=es")
    assert result.returncode == 1
    assert "options.langs: 'es fr' -> 'es'" in result.stderr and "--pretrain_tag" in result.stderr
    result = _check(files, "--option", "no_value")
    assert result.returncode == 2 and "NAME=VALUE" in result.stderr
