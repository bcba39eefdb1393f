"""RESULTS_distill_l2s.md (make_results --distill_l2s_table --high ""): every language Low, each
language's rate without the loss (the control, plain CTC) and with it, the paired difference."""

import json

import pytest
from scored_dirs import reference, scored_experiment

from espnet_s3net.bin import make_results

LANGS = ["ky", "tt"]
# ten utterances of ten tokens per language: r errors are a rate of r %
REF = reference(LANGS)


def _scored(exp_dir, errors_by_lang):
    """A seed's dir as stage 12 assembles it: decode_test_<lang>/score_wer of each language."""
    return scored_experiment(exp_dir, errors_by_lang, REF)


def test_distill_l2s_table(tmp_path, capsys):
    # ctc seeds: ky 40 / 50 %, tt 20 %; l2s seeds: ky 30 / 30 %, tt 20 %
    ctc = [_scored(tmp_path / f"ctc_{k}", {"ky": ky, "tt": 20}) for k, ky in enumerate((40, 50))]
    l2s = [_scored(tmp_path / f"l2s_{k}", {"ky": 30, "tt": 20}) for k in range(2)]
    output = tmp_path / "RESULTS_distill_l2s.md"
    make_results.main(["--arm", f"ctc={','.join(ctc)}", "--arm", f"l2s={','.join(l2s)}", "--control", "ctc",
                       "--langs", " ".join(LANGS), "--high", "", "--output", str(output), "--n_resamples", "200",
                       "--params", "ctc=10", "--params", "l2s=10", "--distill_l2s_table"])
    text = output.read_text()
    assert "High: -; Low: ky tt" in text  # no High language: every language is Low
    section = text.split("## Distill-L2S")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ") and not line.startswith("| language ")}
    assert list(rows) == ["ky", "tt", "Avg"]
    assert rows["ky"][1].startswith("45.0 ± 7.1 [") and rows["ky"][2].startswith("30.0 ± 0.0 [")
    assert rows["ky"][3] == "-15.00" and rows["tt"][3] == "0.00" and rows["Avg"][3] == "-7.50"
    assert rows["tt"][4:] == ["[0.00, 0.00]", "1.000"]  # no difference on any utterance
    assert "### l2s vs ctc" in text  # the paired tests against plain CTC as well
    assert (tmp_path / "RESULTS_distill_l2s_rates.png").exists()


def test_step_time_of_the_benchmark_goes_under_the_table(tmp_path):
    ctc = _scored(tmp_path / "ctc", {"ky": 40, "tt": 20})
    l2s = _scored(tmp_path / "l2s", {"ky": 30, "tt": 20})
    step = {"benchmark": "l2s_step", "ratio": 1.0412, "target": 1.1, "step_ms": {"plain": 180.2, "l2s": 187.6},
            "teacher_ms": 3.21, "cache_read_ms": 0.72, "repeats": 7, "batch": 4, "seconds": 4.0, "device": "cpu",
            "threads": 1}
    (tmp_path / "step.json").write_text("log line\n" + json.dumps(step) + "\n")
    output = tmp_path / "R.md"
    args = ["--arm", f"ctc={ctc}", "--arm", f"l2s={l2s}", "--control", "ctc", "--langs", " ".join(LANGS),
            "--high", "", "--output", str(output), "--n_resamples", "50", "--params", "ctc=10", "--params", "l2s=10"]
    make_results.main([*args, "--distill_l2s_table", "--l2s_step_file", str(tmp_path / "step.json")])
    section = output.read_text().split("## Distill-L2S")[1].split("\n## ")[0]
    assert "Step time with the loss: **1.041** × the plain CTC step" in section
    assert "plain 180 ms, with the loss 188 ms, of which the teacher's forward 3.2 ms" in section
    assert "batch 4 × 4 s, cpu, 1 thread; target ≤ 1.1" in section
    with pytest.raises(SystemExit, match="goes with --distill_l2s_table"):
        make_results.main([*args, "--l2s_step_file", str(tmp_path / "step.json")])
    (tmp_path / "bad.json").write_text('{"benchmark": "masked_step"}\n')
    with pytest.raises(SystemExit, match="does not end with the JSON line of benchmark l2s_step"):
        make_results.main([*args, "--distill_l2s_table", "--l2s_step_file", str(tmp_path / "bad.json")])
