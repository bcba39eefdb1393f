"""RESULTS_distilxlsr.md (make_results --distilxlsr_table --rtf_file): teacher (the control) and
students, #params and share of the teacher's, per-language rates, RTF and its ratio from one run;
and the RTF file of compare_rtf."""

import os

import pytest
import yaml
from scored_dirs import reference, scored_experiment

from espnet_s3net.bin import make_results
from espnet_s3net.scoring.rtf import read_rtf_file, write_rtf_file

LANGS = ["es", "it"]
# ten utterances of ten tokens per language: r errors are a rate of r %
REF = reference(LANGS)


def _scored(exp_dir, errors_by_lang, num_layers):
    """A fine-tuning dir as stage 11 leaves it: decode_test_<lang>/score_wer of each language, and
    a config.yaml with the frontend's architecture (a student has fewer layers)."""
    scored_experiment(exp_dir, errors_by_lang, REF)
    with open(os.path.join(exp_dir, "config.yaml"), "w") as f:
        yaml.safe_dump({"frontend_conf": {"xlsr_conf": {"num_layers": num_layers, "embed_dim": 64}}}, f)
    return str(exp_dir)


def _rows(text, heading):
    section = text.split(f"## {heading}")[1].split("\n## ")[0]
    return {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ") and not line.startswith("| arm ")}


def test_distilxlsr_table(tmp_path):
    teacher = _scored(tmp_path / "teacher", {"es": 20, "it": 30}, 2)
    students = {"distilxlsr": _scored(tmp_path / "distilxlsr", {"es": 25, "it": 35}, 1),
                "distil_first_k": _scored(tmp_path / "first_k", {"es": 40, "it": 40}, 1)}
    rtf = tmp_path / "rtf.txt"
    write_rtf_file(str(rtf), {"teacher": {"rtf": 0.02, "ratio": 1.0}, "distilxlsr": {"rtf": 0.011, "ratio": 0.55},
                              "distil_first_k": {"rtf": 0.0105, "ratio": 0.525}}, "one run, 3 rounds")
    assert read_rtf_file(str(rtf)) == ("one run, 3 rounds", {"teacher": (0.02, 1.0), "distilxlsr": (0.011, 0.55),
                                                             "distil_first_k": (0.0105, 0.525)})
    output = tmp_path / "RESULTS_distilxlsr.md"
    args = ["--arm", f"teacher={teacher}", *(a for name, d in students.items() for a in ("--arm", f"{name}={d}")),
            "--control", "teacher", "--langs", " ".join(LANGS), "--high", "", "--output", str(output),
            "--n_resamples", "100", "--params", "teacher=2000000", "--params", "distilxlsr=1100000",
            "--params", "distil_first_k=1100000", "--rtf_file", str(rtf), "--distilxlsr_table"]
    make_results.main(args)
    text = output.read_text()
    rows = _rows(text, "DistilXLSR")
    assert list(rows) == ["teacher (control)", "distilxlsr", "distil_first_k"]
    assert rows["teacher (control)"][1:4] == ["the teacher (the starting model)", "2.0M", "100%"]
    assert rows["distilxlsr"][1:4] == ["layer jumping, shuffled phonemes", "1.1M", "55%"]
    assert rows["distilxlsr"][4].startswith("25.0 [") and rows["distilxlsr"][6].startswith("30.0 [")
    assert rows["distilxlsr"][7] == "+20.0%" and rows["teacher (control)"][7] == "-"  # Avg 30 vs 25
    assert rows["distilxlsr"][8:] == ["0.0110", "0.550"] and rows["teacher (control)"][8:] == ["0.0200", "1.000"]
    assert "measured in one run (one run, 3 rounds)" in text
    assert "### distilxlsr vs teacher" in text  # the paired tests as for every experiment

    # an RTF of an arm that is not one, and different architectures without the DistilXLSR table: refused
    write_rtf_file(str(rtf), {"teacher": {"rtf": 0.02, "ratio": 1.0}, "other": {"rtf": 0.01, "ratio": 0.5}}, "x")
    with pytest.raises(SystemExit, match="RTF of other, which is not an arm"):
        make_results.main(args)
    with pytest.raises(SystemExit, match="different XLSR architectures"):
        make_results.main(args[:args.index("--rtf_file")])
