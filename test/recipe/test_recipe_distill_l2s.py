"""The recipe's Distill-L2S experiment (``--experiment distill_l2s``): plain CTC and CTC + the
Distill-L2S loss on each low-resource language, from the same starting model, config, data,
updates and seeds; the text teacher trained by stage 8; RESULTS_distill_l2s.md.

Default run: bad input stops before anything runs, and stages 8-9 with a job command that only
records its command line (no training) show what the teacher and each arm get. ``-m slow``:
stages 0-12 on the tiny corpus from a public-looking checkpoint (``hf_tiny``,
``--skip_pretrain true``)."""

import re
from pathlib import Path

import pytest
import yaml
from shared_fixtures import copy_recipe, hf_tiny, record_jobs, run_tiny_recipe

LANGS = "es ky tt"
TINY = ["--asr_config", "conf/asr_ctc_l2s_tiny.yaml"]


@pytest.mark.parametrize("args,message", [
    (["--experiment", "l2s"], "unknown --experiment 'l2s' (empty, pathways, distill_l2s or distilxlsr)"),
    (["--experiment", "distill_l2s", "--high_langs", "es", "--l2s_lambdas", "0.1 -1"],
     "λ must be a finite number >= 0, got '-1'"),
    (["--experiment", "distill_l2s", "--high_langs", "es", "--l2s_teacher_dir", "/nonexistent/xlmr"],
     "--l2s_teacher_dir /nonexistent/xlmr does not exist"),
    (["--experiment", "distill_l2s", "--langs", "es fr it"], "no low-resource language"),
])
def test_bad_input_stops_before_any_stage(tmp_path, args, message):
    recipe = copy_recipe(tmp_path)
    result = run_tiny_recipe(recipe, LANGS, *args, ok=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr, result.stdout + result.stderr
    assert not (recipe / "synth_cv").exists() and not (recipe / "exp").exists()  # stage 0 did not start


def _fake_inputs(recipe: Path, langs) -> Path:
    """What stages 8-9 read (fingerprints only: the job command does not train): per-language
    data, token list, the starting checkpoint."""
    for lang in langs:
        for split in ("train", "dev"):
            d = recipe / "dump" / "raw" / f"{split}_{lang}"
            d.mkdir(parents=True)
            for name in ("utt2num_samples", "utt2lang", "text_phn", "text"):
                (d / name).write_text(f"{split} {lang} {name}\n")
    tokens = recipe / "data" / "token_list" / "phn" / "tokens.txt"
    tokens.parent.mkdir(parents=True)
    tokens.write_text("<blank>\n<unk>\na\n<sos/eos>\n")
    init = recipe.parent / "public" / "fake.pt"
    init.parent.mkdir()
    init.write_bytes(b"a public checkpoint")
    record_jobs(recipe)
    return init


def test_stages_8_9_arms_differ_only_in_lambda(tmp_path):
    recipe = copy_recipe(tmp_path)
    init = _fake_inputs(recipe, ("es", "ky", "tt"))
    common = ["--experiment", "distill_l2s", *TINY, "--high_langs", "es", "--skip_pretrain", "true",
              "--pretrain_init", str(init), "--arm_nj", "10"]
    # stage 9 before the teacher exists: a clear error
    result = run_tiny_recipe(recipe, LANGS, "--stage", "9", "--stop_stage", "9", *common, ok=False)
    assert "the text teacher exp/text_teacher_steps5 is not trained" in result.stdout + result.stderr \
        or "the text teacher exp/text_teacher is not trained" in result.stdout + result.stderr
    # stage 8: the teacher, on every language's training transcripts (High ones too)
    run_tiny_recipe(recipe, LANGS, "--stage", "8", "--stop_stage", "8", *common, "--l2s_teacher_args", "--steps 5")
    teacher = recipe / "exp" / "text_teacher_steps5"
    command = (teacher / "train.log").read_text().splitlines()[0] + " "
    assert "-m espnet_s3net.bin.train_text_teacher --text dump/raw/train_es/text dump/raw/train_ky/text " \
           "dump/raw/train_tt/text --output_dir exp/text_teacher_steps5 --steps 5 " in command
    for name in ("teacher.yaml", "model.pth", "spm.model"):  # as the training would leave it
        (teacher / name).write_text(name)

    run_tiny_recipe(recipe, LANGS, "--stage", "9", "--stop_stage", "9", *common, "--l2s_teacher_args", "--steps 5",
         "--l2s_lambdas", "0.1 2")
    root = recipe / "exp" / "init_fake" / "distill_l2s_text_teacher_steps5"
    stripped = set()
    for arm, lam in (("ctc", "0"), ("l2s_lambda0.1", "0.1"), ("l2s_lambda2", "2")):
        for lang in ("ky", "tt"):  # the Low languages, each fine-tuned alone; es is High
            out = root / arm / "asr_ctc_l2s_tiny_phn" / lang
            command = (out / "train.log").read_text().splitlines()[0] + " "
            assert "--config conf/asr_ctc_l2s_tiny.yaml " in command
            assert f"--frontend_conf init_checkpoint={init} " in command
            assert f"--model_conf distill_l2s_conf.lambda={lam} " in command
            assert "--model_conf distill_l2s_conf.teacher=self_trained " in command
            assert "--model_conf distill_l2s_conf.teacher_dir=exp/text_teacher_steps5 " in command
            for split in ("train", "dev"):
                for name in ("wav.scp,speech,sound", "text_phn,text,text", "utt2lang,lang,text", "text,l2s_text,text"):
                    assert f"dump/raw/{split}_{lang}/{name} " in command
            assert "_multi/" not in command
            record = yaml.safe_load((out / "experiment.yaml").read_text())
            assert record["options"]["l2s_lambda"] == lam and "teacher" in record["inputs"]
            # everything else is the same for every arm of a language: config, data, updates, seed
            rest = re.sub(r"--model_conf distill_l2s_conf.lambda=\S+ ", "", command)
            stripped.add(rest.replace(str(out.relative_to(recipe)), "OUT").replace(f"_{lang}/", "_LANG/"))
    assert len(stripped) == 1, stripped
    assert not (root / "ctc" / "asr_ctc_l2s_tiny_phn" / "es").exists()
    assert not (recipe / "exp" / "init_fake" / "xlsr_cont").exists()  # no S3Net training


@pytest.mark.slow
def test_distill_l2s_experiment_end_to_end(tmp_path):
    """Stages 0-12 of ``--experiment distill_l2s`` on the tiny corpus (es High, ky Low), from
    ``hf_tiny``, with the self-trained teacher."""
    recipe = copy_recipe(tmp_path)
    hf = hf_tiny(tmp_path / "public" / "xlsr_tiny_hf")
    run_tiny_recipe(recipe, "es ky", "--experiment", "distill_l2s", *TINY, "--high_langs", "es", "--skip_pretrain",
                    "true", "--pretrain_init", str(hf), "--arm_nj", "2", "--seeds", "1 2",
                    "--l2s_teacher_args", "--steps 20 --dim 32 --ffn_dim 64 --vocab_size 100")
    teacher = recipe / "exp" / "text_teacher_steps20_dim32_ffn_dim64_vocab_size100"
    assert (teacher / "teacher.yaml").exists()
    root = recipe / "exp" / "init_xlsr_tiny_hf" / f"distill_l2s_{teacher.name}"
    for arm, lam in (("ctc", 0.0), ("l2s", 1.0)):
        for seed in ("1", "2"):
            out = root / arm / f"asr_ctc_l2s_tiny_phn_seed{seed}" / "ky"
            config = yaml.safe_load((out / "config.yaml").read_text())
            assert config["model"] == "distill_l2s" and config["seed"] == int(seed)
            assert config["model_conf"]["distill_l2s_conf"]["lambda"] == lam
            assert (out / "decode_test_ky" / "score_wer" / "utt_errors").exists()
            assert not (out / "decode_test_es").exists()
            log = (out / "train.log").read_text()
            assert "loss_l2s" in log
    results = (recipe / "exp" / "RESULTS_distill_l2s.md").read_text()
    section = results.split("## Distill-L2S")[1].split("\n## ")[0]
    rows = [line.split("|")[1].strip() for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| language ")]
    assert rows == ["ky", "Avg"]
    assert "### l2s vs ctc" in results and "High: -; Low: ky" in results
