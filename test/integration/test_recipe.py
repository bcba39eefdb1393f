"""Runs the recipe on the tiny synthetic corpus in a temporary copy of the recipe dir."""

import shutil
import subprocess
from pathlib import Path

import soundfile as sf

from espnet_s3net.data.kaldi_dir import read_kaldi_map, validate_data_dir
from espnet_s3net.languages import XLSR10
from espnet_s3net.masks.mask_file import SubnetMasks

REPO = Path(__file__).resolve().parents[2]


def test_recipe_stages_on_tiny_corpus(tmp_path):
    recipe = tmp_path / "egs2" / "commonvoice_s3net" / "ssl1"
    shutil.copytree(REPO / "egs2" / "commonvoice_s3net" / "ssl1", recipe,
                    ignore=shutil.ignore_patterns("data", "dump", "exp", "synth_cv"))
    (tmp_path / "tools").symlink_to(REPO / "tools")
    result = subprocess.run(
        ["./run.sh", "--synth_size", "tiny", "--nj", "2", "--stop_stage", "12",
         "--pretrain_config", "conf/pretrain_xlsr_tiny.yaml", "--s3net_train_config", "conf/s3net_train_tiny.yaml",
         "--subnet_methods", "te lth random", "--asr_config", "conf/asr_ctc_tiny.yaml"],
        cwd=recipe, capture_output=True, text=True, timeout=900, env={"PATH": "/usr/bin:/bin", "COMMONVOICE": ""},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    raw = recipe / "dump" / "raw"
    for split in ("train", "dev", "test"):
        for lang in XLSR10:
            d = raw / f"{split}_{lang}"
            validate_data_dir(str(d))
            wav = read_kaldi_map(str(d / "wav.scp"))
            assert set(read_kaldi_map(str(d / "utt2lang")).values()) == {lang}
            assert set(read_kaldi_map(str(d / "text_phn"))) == set(wav)
            assert all(sf.info(p).samplerate == 16000 for p in wav.values())
    for union in ("train_multi", "dev_multi"):
        validate_data_dir(str(raw / union))
        assert set(read_kaldi_map(str(raw / union / "category2utt"))) == set(XLSR10)
    tokens = (recipe / "data" / "token_list" / "phn" / "tokens.txt").read_text().split("\n")[:-1]
    assert tokens[:2] == ["<blank>", "<unk>"] and tokens[-1] == "<sos/eos>" and len(tokens) > 50
    report = (recipe / "data" / "data_report.md").read_text()
    assert all(f"| {lang} | train |" in report for lang in XLSR10)
    exp = recipe / "exp"
    assert (exp / "xlsr_pretrain" / "valid.loss.ave.pth").exists()
    for method in ("te", "lth", "random"):
        masks = SubnetMasks.load(str(exp / f"subnets_{method}" / "masks.pt"))
        assert masks.languages == sorted(XLSR10) and masks.meta["method"] == method
        assert (exp / f"subnets_{method}" / "masks_report.md").exists()
        assert (exp / f"subnets_{method}" / "masks_iou_all.png").exists()
        s3net = exp / f"s3net_{method}"
        assert (s3net / "valid.loss.ave.pth").exists()
        assert (s3net / "masks.fingerprint").read_text().strip() == masks.fingerprint
        log = (s3net / "train.log").read_text()
        assert "[train] language" in log and "target p_l" in log
    results = (exp / "RESULTS.md").read_text()
    for model in ("asr_xlsr", "asr_s3net_te", "asr_s3net_lth"):
        row = next(line for line in results.splitlines() if line.startswith(f"| {model} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 2 + len(XLSR10) + 3
        assert all(0.0 <= float(c) <= 1000.0 for c in cells[2:])  # a PER for every language, High, Low, Avg
        assert (exp / model / "decode_test_es" / "score_wer" / "result.txt").exists()
    # every stage is restartable: a rerun of stages 3-5 leaves the outputs identical
    before = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file() and p.suffix != ".flac"}
    rerun = subprocess.run(["./run.sh", "--synth_size", "tiny", "--nj", "2", "--stage", "3", "--stop_stage", "5"],
                           cwd=recipe, capture_output=True, text=True, timeout=600,
                           env={"PATH": "/usr/bin:/bin", "COMMONVOICE": ""})
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file() and p.suffix != ".flac"}
    assert before == after
