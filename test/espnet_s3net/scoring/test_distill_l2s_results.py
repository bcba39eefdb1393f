"""RESULTS_distill_l2s.md (make_results --distill_l2s_table --high ""): every language Low, each
language's rate without the loss (the control, plain CTC) and with it, the paired difference."""

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
