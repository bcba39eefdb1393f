"""The recipe's DistilXLSR experiment (``--experiment distilxlsr``): three students distilled from the
starting model (the teacher) on one source language's speech, shuffled or not, with or without
layer jumping; the teacher and the students fine-tuned on the other languages with the same config,
data, updates and seeds; RESULTS_distilxlsr.md.

Default run: bad input stops before anything runs, and stages 8-9 with a job command that only
records its command line (no training) show what each student and arm gets. ``-m slow``: stages
0-12 on the tiny corpus from a public-looking checkpoint (``hf_tiny``, ``--skip_pretrain true``)."""

import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from shared_fixtures import copy_recipe, hf_tiny, record_jobs, run_tiny_recipe

LANGS = "es fr it"  # fr has the most XLSR-10 hours: the default source language
TINY = ["--asr_config", "conf/asr_ctc_tiny.yaml", "--distill_config", "conf/distill_xlsr_tiny.yaml"]
STUDENTS = {"distilxlsr": ("layer_jump", "shuffled"), "distil_first_k": ("first_k", "shuffled"),
            "distil_unshuffled": ("layer_jump", "unshuffled")}


@pytest.mark.parametrize("args,message", [
    (["--experiment", "distil"], "unknown --experiment 'distil' (empty, pathways, distill_l2s or distilxlsr)"),
    (["--experiment", "distilxlsr", "--distill_source_lang", "ru"], "--distill_source_lang ru is not one of --langs"),
    (["--experiment", "distilxlsr", "--langs", "fr"], "--langs has only the source language fr"),
])
def test_bad_input_stops_before_any_stage(tmp_path, args, message):
    recipe = copy_recipe(tmp_path)
    result = run_tiny_recipe(recipe, LANGS, *args, ok=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr, result.stdout + result.stderr
    assert not (recipe / "synth_cv").exists() and not (recipe / "exp").exists()  # stage 0 did not start


def _data_dir(d: Path, lang: str, utts, files=("utt2num_samples", "utt2lang", "text_phn", "wav.scp")):
    d.mkdir(parents=True)
    for name in files:
        value = {"utt2lang": lang, "utt2num_samples": "16000", "text_phn": "a b a", "wav.scp": "/x.flac"}[name]
        (d / name).write_text("".join(f"{u} {value}\n" for u in utts))


def _fake_inputs(recipe: Path) -> Path:
    """What stages 8-9 read (fingerprints only: the job command does not train): per-language data,
    the token list, the starting checkpoint, the aligner, and the shuffled sets (as if made)."""
    raw = recipe / "dump" / "raw"
    for lang in LANGS.split():
        for split in ("train", "dev"):
            _data_dir(raw / f"{split}_{lang}", lang, [f"{lang}_{split}_{i}" for i in range(12)])
    for split in ("train", "dev"):  # the aligner skipped one utterance of each
        _data_dir(raw / f"{split}_fr_shuffled", "fr", [f"fr_{split}_{i}" for i in range(11)])
        (raw / f"{split}_fr_shuffled" / ".done").touch()
    tokens = recipe / "data" / "token_list" / "phn" / "tokens.txt"
    tokens.parent.mkdir(parents=True)
    tokens.write_text("<blank>\n<unk>\na\nb\n<sos/eos>\n")
    init = recipe.parent / "public" / "fake.pt"
    init.parent.mkdir()
    init.write_bytes(b"a public checkpoint")
    record_jobs(recipe)
    return init


def _command(log: Path, out: Path, recipe: Path) -> str:
    return (log.read_text().splitlines()[0] + " ").replace(str(out.relative_to(recipe)), "OUT")


def test_stages_8_9_arms_differ_only_as_they_should(tmp_path):
    recipe = copy_recipe(tmp_path)
    init = _fake_inputs(recipe)
    root = recipe / "exp" / "init_fake"
    aligner = root / "asr_ctc_tiny_phn_seed1"
    common = ["--experiment", "distilxlsr", *TINY, "--skip_pretrain", "true", "--pretrain_init", str(init),
              "--seeds", "1 2", "--arm_nj", "10"]
    # no aligner (the main experiment's xlsr fine-tuning of stage 7/9): a clear message
    result = run_tiny_recipe(recipe, LANGS, "--stage", "8", "--stop_stage", "8", *common, ok=False)
    assert "aligned by the phoneme CTC model exp/init_fake/asr_ctc_tiny_phn_seed1/valid.loss.ave.pth, which " \
           "does not exist: run stage 7 first" in result.stdout + result.stderr, result.stdout + result.stderr
    aligner.mkdir(parents=True)
    (aligner / "valid.loss.ave.pth").write_bytes(b"a phoneme CTC model")

    run_tiny_recipe(recipe, LANGS, "--stage", "8", "--stop_stage", "8", *common)
    raw = recipe / "dump" / "raw"
    # the fine-tuning data: every language but the source; the unshuffled twins: the shuffled utterances
    assert sorted(set((raw / "train_multi_no_fr" / "utt2lang").read_text().split()) & {"es", "fr", "it"}) == \
        ["es", "it"]
    assert (raw / "train_fr_unshuffled" / "text_phn").read_text().count("\n") == 11
    commands = set()
    for arm, (init_name, data) in STUDENTS.items():
        out = root / "distilxlsr_fr" / arm / "distill_xlsr_tiny"
        command = _command(out / "train.log", out, recipe)
        assert "espnet_s3net.bin.distill_train --config conf/distill_xlsr_tiny.yaml " in command
        assert f"--teacher_conf init_checkpoint={init} " in command
        assert f"--distill_conf init={init_name} " in command
        assert f"dump/raw/train_fr_{data}/wav.scp,speech,sound " in command
        assert f"dump/raw/dev_fr_{data}/utt2num_samples " in command
        commands.add(command.replace(f"init={init_name}", "INIT").replace(f"_fr_{data}/", "_fr_DATA/"))
        # the finished distillation, for stage 9
        (out / "valid.loss.ave.pth").write_bytes(f"student {arm}".encode())
    assert len(commands) == 1, commands  # nothing else differs

    run_tiny_recipe(recipe, LANGS, "--stage", "9", "--stop_stage", "9", *common)
    for seed in ("1", "2"):
        commands = set()
        for arm in ("teacher", *STUDENTS):
            parent = root / "distilxlsr_fr" / arm
            out = (parent if arm == "teacher" else parent / "distill_xlsr_tiny") / f"asr_ctc_tiny_phn_seed{seed}"
            command = _command(out / "train.log", out, recipe)
            assert "espnet2.bin.asr_train --config conf/asr_ctc_tiny.yaml " in command and f"--seed {seed} " in command
            assert "dump/raw/train_multi_no_fr/text_phn,text,text " in command
            if arm == "teacher":
                frontend = f"--frontend_conf init_checkpoint={init} "
            else:
                student = (parent / "distill_xlsr_tiny").relative_to(recipe)
                frontend = (f"--frontend_conf ssl_config={student}/config.yaml "
                            f"--frontend_conf ssl_model_file={student}/valid.loss.ave.pth ")
                record = yaml.safe_load((out / "experiment.yaml").read_text())
                assert record["inputs"]["ssl_model"]["path"] == f"{student}/valid.loss.ave.pth"
            assert frontend in command
            commands.add(command.replace(frontend, "FRONTEND "))
        assert len(commands) == 1, commands  # the arms differ only in the model the frontend starts from

    # another source language whose set is too small to shuffle: a clear message
    result = run_tiny_recipe(recipe, LANGS, "--stage", "8", "--stop_stage", "8", *common, "--distill_source_lang", "es",
                  "--distill_min_utts", "13", ok=False)
    assert "the source set is too small to shuffle: dump/raw/train_es has 12 utterance(s) with at least 2 " \
           "phonemes (text_phn); the distillation needs at least 13" in result.stderr, result.stderr[-2000:]


def _rows(text: str, heading: str):
    section = text.split(f"## {heading}")[1].split("\n## ")[0]
    return {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ") and not line.startswith("| arm ")}


@pytest.mark.slow
def test_distilxlsr_experiment_end_to_end(tmp_path):
    """Stages 0-12 of ``--experiment distilxlsr`` on the tiny corpus, three languages, from ``hf_tiny``
    (2 layers: the students have 1)."""
    recipe = copy_recipe(tmp_path)
    hf = hf_tiny(tmp_path / "public" / "xlsr_tiny_hf")
    common = ["--experiment", "distilxlsr", *TINY, "--skip_pretrain", "true", "--pretrain_init", str(hf),
              "--arm_nj", "2", "--distill_min_utts", "2", "--distill_rtf_args", "--rounds 2"]
    start = time.time()
    run_tiny_recipe(recipe, LANGS, *common)
    print(f"stages 0-12: {time.time() - start:.0f} s")
    root = recipe / "exp" / "init_xlsr_tiny_hf"
    raw = recipe / "dump" / "raw"
    shuffled = (raw / "train_fr_shuffled" / "wav.scp").read_text().splitlines()
    assert shuffled and all("train_fr_shuffled/data/" in line for line in shuffled)
    assert (raw / "train_fr_unshuffled" / "wav.scp").read_text().count("\n") == len(shuffled)
    for arm in STUDENTS:
        config = yaml.safe_load((root / "distilxlsr_fr" / arm / "distill_xlsr_tiny" / "config.yaml").read_text())
        assert config["model_conf"]["xlsr_conf"]["num_layers"] == 1
        assert config["distill_conf"]["init"] == STUDENTS[arm][0]
    results = (recipe / "exp" / "RESULTS_distilxlsr.md").read_text()
    rows = _rows(results, "DistilXLSR")
    assert list(rows) == ["teacher (control)", *STUDENTS]
    teacher_params = int((recipe / "exp" / "params_distilxlsr.txt").read_text().split()[1])
    params = dict(line.split() for line in (recipe / "exp" / "params_distilxlsr.txt").read_text().splitlines())
    assert all(int(params[arm]) < teacher_params for arm in STUDENTS)
    assert all(re.fullmatch(r"\d+\.\d{4}", row[-2]) for row in rows.values())  # every arm's RTF
    assert rows["teacher (control)"][-1] == "1.000" and "in 2 alternating round(s)" in results
    assert "Low: es it" in results or "High: es it" in results  # the source language is not scored

    # a rerun reuses everything; another distillation setting is refused
    run_tiny_recipe(recipe, LANGS, *common, "--stage", "7", "--stop_stage", "9")
    result = run_tiny_recipe(recipe, LANGS, *common, "--stage", "8", "--stop_stage", "8", "--distill_tag",
                             "distill_xlsr_tiny", "--distill_args", "--max_epoch 1", ok=False)
    assert result.returncode != 0 and "args: '' -> '--max_epoch 1'" in result.stderr, result.stderr[-2000:]
    shutil.rmtree(recipe / "synth_cv")
