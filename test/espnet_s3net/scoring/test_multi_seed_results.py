"""RESULTS.md of arms with several seeds: tables, paired tests, pictures, refusals."""

import os

import pytest
import torch
import yaml
from scored_dirs import reference, scored_experiment

from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.scoring import sclite
from espnet_s3net.scoring.results import multi_seed_report, parse_arms, parse_assignments, read_params_file

LANGS = ["es", "sv-SE"]
REF = reference(LANGS)


@pytest.fixture
def arms(tmp_path):
    # xlsr seeds: es 30 / 40 / 50 %, sv-SE 20 % each; s3net_lth seeds: es 10 / 20 %, sv-SE 10 / 10 %
    xlsr = [scored_experiment(tmp_path / f"xlsr_{k}", {"es": es, "sv-SE": 20}, REF)
            for k, es in enumerate((30, 40, 50))]
    s3net = [scored_experiment(tmp_path / f"lth_{k}", {"es": es, "sv-SE": 10}, REF) for k, es in enumerate((10, 20))]
    return {"xlsr": xlsr, "s3net_lth": s3net}


def _masks(path, langs, p, method="lth", scope="layerwise"):
    gen = torch.Generator().manual_seed(0)
    shapes = {f"encoder.layers.{i}.fc1.weight": (8, 6) for i in range(2)}
    dense = {lang: {n: torch.rand(s, generator=gen) < p for n, s in shapes.items()} for lang in langs}
    SubnetMasks.from_dense(dense, {"method": method, "scope": scope, "sparsity": 1 - p}).save(str(path))
    return str(path)


def test_report_by_hand(tmp_path, arms):
    config = tmp_path / "asr.yaml"
    config.write_text("seed: 0\n")
    masks = {"s3net_lth": _masks(tmp_path / "lth.pt", LANGS, 0.5), "s3net_te": _masks(tmp_path / "te.pt", LANGS, 0.7)}
    output = tmp_path / "out" / "RESULTS.md"
    text = multi_seed_report(arms, "xlsr", LANGS, str(output), high=["es"],
                             params={"xlsr": 95_000_000, "s3net_lth": 95_040_000}, masks=masks, configs=[str(config)],
                             n_resamples=500)
    assert output.read_text() == text
    assert "## Environments" in text and f"  - `{config}` (sha256 `" in text
    assert "High: es; Low: sv-SE; Avg: all" in text
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("| xlsr | 3 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert [c.split(" [")[0] for c in cells[2:]] == ["40.0 ± 10.0", "20.0 ± 0.0", "40.0 ± 10.0", "20.0 ± 0.0",
                                                     "30.0 ± 5.0"]
    assert "| s3net_lth | 2 | 15.0 ± 7.1 [" in text
    assert "| xlsr (control) | 95M | 40.0 ± 10.0 | 20.0 ± 0.0 | 30.0 ± 5.0 |" in text
    assert "| s3net_lth | 95M | 15.0 ± 7.1 | 10.0 ± 0.0 | 12.5 ± 3.5 |" in text
    # the ablation: the control without sub-networks, then each arm's mask file described
    ablation = text.split("## Ablation: how the sub-networks are found")[1].split("##")[0]
    assert "| none | xlsr | - | 40.0 ± 10.0 | 20.0 ± 0.0 | 30.0 ± 5.0 |" in ablation
    assert "| layerwise LTH | s3net_lth | 0.50 | 15.0 ± 7.1 | 10.0 ± 0.0 | 12.5 ± 3.5 |" in ablation
    assert "s3net_te" not in ablation  # a mask file of no arm
    assert "### s3net_lth vs xlsr" in text
    es = next(line for line in lines if line.startswith("| es | 15.0 | 40.0 | -25.00 |"))
    # seed-mean errors of es_u0..u4: xlsr 10, 10, 10, 6.7, 3.3; s3net_lth 10, 5, 0, 0, 0; the rest 0
    assert es.split("|")[7].strip() == "4 / 0"
    sv = next(line for line in lines if line.startswith("| sv-SE | 10.0 | 20.0 | -10.00 |"))
    assert sv.split("|")[7].strip() == "1 / 0"
    assert "Test utterances: es 10 (100 tokens), sv-SE 10 (100 tokens)." in text
    for png in ("RESULTS_rates.png", "RESULTS_masks_s3net_lth.png", "RESULTS_masks_s3net_te.png"):
        assert (output.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in text
    assert "| layer0 |" in text and "| all |" in text and "## Mask sharing" in text
    assert "starting model not checked (no experiment.yaml" in text


def test_global_sub_networks_are_ablation_rows(tmp_path, arms):
    arms["random_global"] = arms.pop("s3net_lth")
    masks = {"random_global": _masks(tmp_path / "rg.pt", LANGS, 0.5, "random", "global")}
    text = multi_seed_report(arms, "xlsr", LANGS, str(tmp_path / "R.md"), masks=masks, n_resamples=10)
    comparison, ablation = (text.split(f"## {title}")[1].split("##")[0]
                            for title in ("Comparison of methods", "Ablation: how the sub-networks are found"))
    assert "| xlsr (control) |" in comparison and "random_global" not in comparison
    assert "| global RANDOM | random_global | 0.50 | 12.5 ± 3.5 | - | 12.5 ± 3.5 |" in ablation  # High: both
    assert "### random_global vs xlsr" in text  # still tested against the control


def test_high_defaults_to_the_papers_three(tmp_path, arms):
    langs = ["sv-SE", "it", "es", "fr", "tr"]
    for d in arms["xlsr"] + arms["s3net_lth"]:
        scored_experiment(d, {lang: 10 for lang in langs if lang not in LANGS},
                          {f"{lang}_u{i}": "a b c d e f g h i j" for lang in langs for i in range(10)})
    text = multi_seed_report(arms, "xlsr", langs, str(tmp_path / "R.md"), n_resamples=10)
    assert "High: it es fr; Low: sv-SE tr; Avg: all" in text


def test_bad_input_is_named(tmp_path, arms):
    out = str(tmp_path / "RESULTS.md")
    with pytest.raises(ValueError, match="the control dense is not an arm; arms: xlsr, s3net_lth"):
        multi_seed_report(arms, "dense", LANGS, out)
    with pytest.raises(ValueError, match="arm s3net_lth has no experiment dirs"):
        multi_seed_report({**arms, "s3net_lth": []}, "xlsr", LANGS, out)
    with pytest.raises(ValueError, match="#params given for gating, which is not an arm"):
        multi_seed_report(arms, "xlsr", LANGS, out, params={"gating": 1})
    # a language an arm was not scored in
    with pytest.raises(FileNotFoundError, match=r"arm xlsr: .*xlsr_0/decode_test_it/score_wer/utt_errors does not "
                                                r"exist \(run decoding and scoring first\)"):
        multi_seed_report(arms, "xlsr", ["es", "it"], out, n_resamples=10)
    # scored before utt_errors existed
    os.remove(os.path.join(arms["s3net_lth"][1], "decode_test_es", "score_wer", "utt_errors"))
    with pytest.raises(FileNotFoundError, match="arm s3net_lth: .*lth_1/decode_test_es.*score it again"):
        multi_seed_report(arms, "xlsr", LANGS, out, n_resamples=10)


def test_different_utterance_sets_are_refused(tmp_path, arms):
    other_ref = {u.replace("_u9", "_u10"): t for u, t in REF.items()}
    moved = scored_experiment(tmp_path / "moved", {"es": 0, "sv-SE": 0}, other_ref)
    with pytest.raises(ValueError, match="arms xlsr and gating were scored on different es test utterances "
                                         r"\(1 only in xlsr, e.g. es_u9; 1 only in gating, e.g. es_u10\)"):
        multi_seed_report({**arms, "gating": [moved]}, "xlsr", LANGS, str(tmp_path / "R.md"), n_resamples=10)
    with pytest.raises(ValueError, match=r"the seeds .*xlsr_0 and .*moved of arm xlsr were scored on different es"):
        multi_seed_report({"xlsr": [arms["xlsr"][0], moved]}, "xlsr", LANGS, str(tmp_path / "R.md"), n_resamples=10)


def test_mixed_scoring_tools_are_refused(tmp_path, arms, monkeypatch):
    monkeypatch.setattr(sclite, "find_sclite", lambda: None)
    jiwer = scored_experiment(tmp_path / "jiwer", {"es": 10, "sv-SE": 10}, REF)
    monkeypatch.undo()
    if sclite.find_sclite() is None:
        pytest.skip("sclite not installed: every experiment is scored by jiwer")
    with pytest.raises(ValueError, match="computed by different tools.*jiwer/decode_test_es"):
        multi_seed_report({**arms, "te": [jiwer]}, "xlsr", LANGS, str(tmp_path / "R.md"), n_resamples=10)


def test_arms_from_different_pretrained_models_are_refused(tmp_path, arms):
    for arm, fp in (("xlsr", "a"), ("s3net_lth", "b")):
        for d in arms[arm]:
            record = {"inputs": {"init": {"path": f"/models/{fp}.pt", "fingerprint": f"1 bytes, sha256 {fp * 64}"}}}
            (tmp_path / d / "experiment.yaml").write_text(yaml.safe_dump(record))
    with pytest.raises(ValueError, match="arms start from different pre-trained models.*xlsr from /models/a.pt.*"
                                         "s3net_lth from /models/b.pt"):
        multi_seed_report(arms, "xlsr", LANGS, str(tmp_path / "R.md"), n_resamples=10)


def test_parse_options():
    assert parse_arms(["a=x,y", "b = z"]) == {"a": ["x", "y"], "b": ["z"]}
    with pytest.raises(ValueError, match="--arm: a given twice"):
        parse_arms(["a=x", "a=y"])
    with pytest.raises(ValueError, match="arm a has no experiment dirs"):
        parse_arms(["a="])
    with pytest.raises(ValueError, match="arm b: experiment dir x is listed also in arm a"):
        parse_arms(["a=x", "b=x"])
    with pytest.raises(ValueError, match="arm a: experiment dir x is listed twice"):
        parse_arms(["a=x,x"])
    with pytest.raises(ValueError, match="--arm takes NAME=VALUE"):
        parse_arms(["x,y"])
    with pytest.raises(ValueError, match="cannot hold '|'"):
        parse_assignments(["a|b=1"], "params")


def test_params_file(tmp_path):
    (tmp_path / "p").write_text("# arm params\nxlsr 95000000\ns3net_lth 95000000  # same\n")
    assert read_params_file(str(tmp_path / "p")) == {"xlsr": 95_000_000, "s3net_lth": 95_000_000}
    (tmp_path / "q").write_text("xlsr 95M\n")
    with pytest.raises(ValueError, match="q:1: number of parameters must be an integer"):
        read_params_file(str(tmp_path / "q"))
