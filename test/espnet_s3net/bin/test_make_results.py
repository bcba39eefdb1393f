"""make_results: the single-seed table (recipe stage 12 today) and the multi-seed report."""

import os

import pytest
import torch
import yaml

from espnet_s3net.bin import make_results
from espnet_s3net.scoring import sclite
from espnet_s3net.scoring.results import results_table

LANGS = ["es", "fr"]


def _experiment(exp_dir, errors, params=10):
    """A fine-tuned experiment dir: a checkpoint of ``params`` parameters and, per language, ten
    utterances of ten tokens scored with ``errors`` deletions."""
    os.makedirs(exp_dir, exist_ok=True)
    torch.save({"w": torch.zeros(params), "num_updates": torch.zeros(1)}, os.path.join(exp_dir, "valid.loss.ave.pth"))
    for lang in LANGS:
        ref = {f"{lang}_u{i}": " ".join("abcdefghij") for i in range(10)}
        hyp, left = {}, errors
        for utt in sorted(ref):
            drop = min(left, 10)
            left -= drop
            hyp[utt] = " ".join("abcdefghij"[drop:])
        sclite.score(ref, hyp, os.path.join(exp_dir, f"decode_test_{lang}", "score_wer"), "word")
    return str(exp_dir)


def test_single_seed_mode_is_unchanged(tmp_path, capsys):
    dirs = [_experiment(tmp_path / "xlsr", 20), _experiment(tmp_path / "s3net_te", 10)]
    out = tmp_path / "RESULTS.md"
    make_results.main(["--exp_dirs", *dirs, "--langs", "es fr", "--output", str(out)])
    table = results_table({"xlsr": {"es": 20.0, "fr": 20.0}, "s3net_te": {"es": 10.0, "fr": 10.0}},
                          {"xlsr": 10, "s3net_te": 10}, LANGS)
    assert out.read_text() == "# Results\n\n" + table
    assert capsys.readouterr().out == table
    assert "| xlsr | 0.00M | 20.0 | 20.0 | 20.0 | - | 20.0 |" in table


def test_single_seed_mode_refuses_different_starting_models(tmp_path):
    dirs = [_experiment(tmp_path / "xlsr", 20), _experiment(tmp_path / "s3net_te", 10)]
    for d, fp in zip(dirs, "ab"):
        record = {"inputs": {"init": {"path": f"/m/{fp}.pt", "fingerprint": f"1 bytes, sha256 {fp * 64}"}}}
        (tmp_path / d / "experiment.yaml").write_text(yaml.safe_dump(record))
    with pytest.raises(SystemExit, match="different pre-trained models.*xlsr from /m/a.pt.*s3net_te from /m/b.pt"):
        make_results.main(["--exp_dirs", *dirs, "--langs", "es fr", "--output", str(tmp_path / "R.md")])


def test_multi_seed_mode(tmp_path, capsys):
    xlsr = ",".join(_experiment(tmp_path / f"xlsr_{k}", e) for k, e in enumerate((20, 30, 40)))
    lth = ",".join(_experiment(tmp_path / f"lth_{k}", e, params=12) for k, e in enumerate((10, 10, 20)))
    (tmp_path / "params").write_text("xlsr 95000000\n")
    config = tmp_path / "asr.yaml"
    config.write_text("seed: 0\n")
    out = tmp_path / "exp" / "RESULTS.md"
    make_results.main(["--arm", f"xlsr={xlsr}", "--arm", f"s3net_lth={lth}", "--control", "xlsr", "--langs", "es fr",
                       "--output", str(out), "--params_file", str(tmp_path / "params"), "--config", str(config),
                       "--n_resamples", "300", "--high", "es"])
    text = out.read_text()
    assert capsys.readouterr().out == text
    assert "| xlsr (control) | 95M | 30.0 ± 10.0 | 30.0 ± 10.0 | 30.0 ± 10.0 |" in text
    assert "#params as given (counted from valid.loss.ave.pth for s3net_lth)" in text
    assert "| s3net_lth | 0.00M | 13.3 ± 5.8 | 13.3 ± 5.8 | 13.3 ± 5.8 |" in text
    assert "| es | 13.3 | 30.0 | -16.67 |" in text and (out.parent / "RESULTS_rates.png").is_file()
    assert f"`{config}`" in text


@pytest.mark.parametrize("args, message", [
    (["--arm", "a=x", "--arm", "a=y", "--control", "a"], "--arm: a given twice"),
    (["--arm", "a=x", "--control", "b"], "the control b is not an arm; arms: a"),
    (["--arm", "a=", "--control", "a"], "arm a has no experiment dirs"),
    (["--arm", "a=missing_dir", "--control", "a"], "arm a: experiment dir missing_dir does not exist"),
    (["--arm", "a={xlsr}", "--control", "a", "--params", "a=95M"], "--params a: number of parameters must be an"),
])
def test_multi_seed_errors_name_the_item(tmp_path, args, message):
    xlsr = _experiment(tmp_path / "xlsr", 20)
    args = [a.format(xlsr=xlsr) for a in args]
    with pytest.raises(SystemExit, match=message):
        make_results.main([*args, "--langs", "es fr", "--output", str(tmp_path / "R.md"), "--n_resamples", "10"])


def test_options_of_the_other_mode_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        make_results.main(["--exp_dirs", "x", "--control", "x", "--langs", "es", "--output", "o"])
    assert "--control only with --arm" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        make_results.main(["--arm", "a=x", "--langs", "es", "--output", "o"])
    assert "--arm needs --control" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        make_results.main(["--arm", "a=x", "--exp_dirs", "x", "--langs", "es", "--output", "o"])
    assert "not allowed with argument" in capsys.readouterr().err
