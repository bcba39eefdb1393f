"""Runs the recipe on the tiny synthetic corpus in a temporary copy of the recipe dir: every
stage for the ten languages and three extraction methods (slow), and every stage for two
languages and TE only (default run), which then decodes one language once more with ESPnet's
own inference (``--inference_tool espnet``).

Both fine-tune xlsr_small (``*_small`` configs, fewer updates through the recipe's ``*_args``
options): xlsr_tiny stays on CTC's all-blank plateau for hundreds of updates (PER 100 %).
Experiment directories are found where the recipe's naming puts them: each inside the one it
starts from, named from its config and the suffix of its extra args (see s3net.sh).
"""

import re
import subprocess
from pathlib import Path

import pytest
import soundfile as sf
from shared_fixtures import copy_recipe

from espnet_s3net.data.kaldi_dir import read_kaldi_map, validate_data_dir
from espnet_s3net.languages import XLSR10
from espnet_s3net.masks.mask_file import SubnetMasks

REPO = Path(__file__).resolve().parents[2]
ENV = {"PATH": "/usr/bin:/bin", "COMMONVOICE": ""}
SMALL = ["--pretrain_config", "conf/pretrain_xlsr_small.yaml", "--s3net_train_config", "conf/s3net_train_small.yaml",
         "--asr_config", "conf/asr_ctc_small.yaml"]


def _tag(config_stem: str, args: str = "") -> str:
    """The recipe's default tag: the config's name plus ESPnet's suffix of the extra args."""
    return config_stem + re.sub(r"[ |=/]", "", args.replace("--", "_"))


def _run(recipe: Path, langs, *args, timeout: int) -> None:
    result = subprocess.run(["./run.sh", "--synth_size", "tiny", "--nj", "2", "--langs", " ".join(langs), *args],
                            cwd=recipe, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _check_data(recipe: Path, langs) -> None:
    raw = recipe / "dump" / "raw"
    for split in ("train", "dev", "test"):
        for lang in langs:
            d = raw / f"{split}_{lang}"
            validate_data_dir(str(d))
            wav = read_kaldi_map(str(d / "wav.scp"))
            assert set(read_kaldi_map(str(d / "utt2lang")).values()) == {lang}
            assert set(read_kaldi_map(str(d / "text_phn"))) == set(wav)
            assert all(sf.info(p).samplerate == 16000 for p in wav.values())
    for union in ("train_multi", "dev_multi"):
        validate_data_dir(str(raw / union))
        assert set(read_kaldi_map(str(raw / union / "utt2lang")).values()) == set(langs)
        assert not (raw / union / "utt2category").exists() and not (raw / union / "category2utt").exists()
    tokens = (recipe / "data" / "token_list" / "phn" / "tokens.txt").read_text().split("\n")[:-1]
    assert tokens[:2] == ["<blank>", "<unk>"] and tokens[-1] == "<sos/eos>" and len(tokens) > 40
    report = (recipe / "data" / "data_report.md").read_text()
    assert all(f"| {lang} | train |" in report for lang in langs)


def _check_s3net(ssl: Path, method: str, s3net_tag: str, langs) -> None:
    subnets = ssl / f"subnets_{method}"
    masks = SubnetMasks.load(str(subnets / "masks.pt"))
    assert masks.languages == sorted(langs) and masks.meta["method"] == method
    assert Path(masks.meta["source_model"]).resolve() == (ssl / "valid.loss.ave.pth").resolve()
    assert (subnets / "masks_report.md").exists()
    assert (subnets / "masks_iou_all.png").exists()
    s3net = subnets / s3net_tag
    assert (s3net / "valid.loss.ave.pth").exists() and (s3net / "experiment.yaml").exists()
    assert (s3net / "masks.fingerprint").read_text().strip() == masks.fingerprint
    log = (s3net / "train.log").read_text()
    assert "[train] language" in log and "target p_l" in log


def _check_fine_tuning_learned(exp: Path, model: str, asr_exp: Path, langs) -> None:
    """A PER for every language, and an average below 100 %.

    100 % is what an empty hypothesis gets (all deletions): CTC's all-blank plateau, where a
    fine-tuning that learned only the blank prior stays. An untrained head or a training that
    does not update emits random phones and scores far above it (measured: 220-450 % with
    three updates); so does one trained on the wrong transcripts.
    """
    results = (exp / "RESULTS.md").read_text()
    row = next(line for line in results.splitlines() if line.startswith(f"| {model} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 2 + len(langs) + 3
    rates = [float(c) for c in cells[2:2 + len(langs)]]
    assert all(r >= 0.0 for r in rates), row
    assert float(cells[-1]) < 100.0, f"fine-tuning learned nothing: {row}"
    assert f"| {model} | {asr_exp.relative_to(exp.parent)} |" in results  # the row's experiment
    assert (asr_exp / f"decode_test_{langs[0]}" / "score_wer" / "result.txt").exists()


def _check_rerun_is_identical(recipe: Path, langs) -> None:
    """Stages 3-5 rerun leave their outputs identical."""
    raw = recipe / "dump" / "raw"
    before = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file() and p.suffix != ".flac"}
    _run(recipe, langs, "--stage", "3", "--stop_stage", "5", timeout=600)
    after = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file() and p.suffix != ".flac"}
    assert before == after


@pytest.mark.slow
def test_recipe_all_stages_ten_languages(tmp_path):
    recipe = copy_recipe(tmp_path)
    epochs = "--max_epoch 2"
    _run(recipe, XLSR10, "--stop_stage", "12", *SMALL, "--pretrain_args", epochs,
         "--subnet_methods", "te lth random", "--s3net_train_args", epochs, "--asr_args", epochs,
         "--finetune_models", "xlsr xlsr_cont s3net_te s3net_lth adapter gating", timeout=3000)
    _check_data(recipe, XLSR10)
    exp = recipe / "exp"
    ssl = exp / _tag("pretrain_xlsr_small", epochs)
    assert (ssl / "valid.loss.ave.pth").exists() and (ssl / "experiment.yaml").exists()
    s3net_tag = _tag("s3net_train_small", epochs)
    for method in ("te", "lth", "random"):
        _check_s3net(ssl, method, s3net_tag, XLSR10)
    asr_tag = _tag("asr_ctc_small_phn", epochs)
    _check_fine_tuning_learned(exp, "xlsr", ssl / asr_tag, XLSR10)
    for method in ("te", "lth"):
        _check_fine_tuning_learned(exp, f"s3net_{method}", ssl / f"subnets_{method}" / s3net_tag / asr_tag, XLSR10)
    cont = ssl / "xlsr_cont" / s3net_tag  # the control: the same continued training, no masks
    assert (cont / "valid.loss.ave.pth").exists() and not (cont / "masks.pt").exists()
    _check_fine_tuning_learned(exp, "xlsr_cont", cont / asr_tag, XLSR10)
    for model in ("adapter", "gating"):  # the paper's other adaptation methods, the same budget
        _check_fine_tuning_learned(exp, model, ssl / model / s3net_tag / asr_tag, XLSR10)
    _check_rerun_is_identical(recipe, XLSR10)


def test_recipe_all_stages_two_languages(tmp_path):
    langs = ["es", "fr"]
    recipe = copy_recipe(tmp_path)
    pretrain_args = "--max_epoch 1 --num_iters_per_epoch 10"
    _run(recipe, langs, *SMALL, "--pretrain_args", pretrain_args,
         "--subnet_methods", "te", "--s3net_train_args", "--max_epoch 1 --num_iters_per_epoch 10",
         "--finetune_models", "s3net_te", "--asr_args", "--max_epoch 1", timeout=900)
    _check_data(recipe, langs)
    exp = recipe / "exp"
    ssl = exp / "pretrain_xlsr_small_max_epoch1_num_iters_per_epoch10"
    assert ssl.name == _tag("pretrain_xlsr_small", pretrain_args)
    assert (ssl / "valid.loss.ave.pth").exists()
    s3net_tag = "s3net_train_small_max_epoch1_num_iters_per_epoch10"
    _check_s3net(ssl, "te", s3net_tag, langs)
    asr = ssl / "subnets_te" / s3net_tag / "asr_ctc_small_phn_max_epoch1"
    _check_fine_tuning_learned(exp, "s3net_te", asr, langs)
    assert (asr / f"decode_test_{langs[0]}" / "rtf").exists()  # written by the s3net tool

    # decoding es again with ESPnet's espnet2.bin.asr_inference (CTC prefix beam search: a
    # CTC-only model needs ctc_weight 1.0), its hypotheses scored alike
    _run(recipe, ["es"], *SMALL, "--pretrain_args", pretrain_args, "--subnet_methods", "te",
         "--s3net_train_args", "--max_epoch 1 --num_iters_per_epoch 10", "--finetune_models", "s3net_te",
         "--asr_args", "--max_epoch 1", "--stage", "10", "--inference_tool", "espnet",
         "--inference_args", "--beam_size 2 --ctc_weight 1.0", timeout=300)
    decode = asr / "decode_test_es"
    token = decode / "espnet" / "1best_recog" / "token"
    assert (decode / "text").read_text() == token.read_text() and not (decode / "rtf").exists()
    utts = {line.split()[0] for line in token.read_text().splitlines()}
    assert utts == set(read_kaldi_map(str(recipe / "dump" / "raw" / "test_es" / "wav.scp")))
    assert "--beam_size 2 --ctc_weight 1.0" in (decode / "decode.log").read_text()
    _check_fine_tuning_learned(exp, "s3net_te", asr, ["es"])
    _check_rerun_is_identical(recipe, langs)
