from espnet_s3net.bin import score
from espnet_s3net.scoring.sclite import read_error_rate


def test_score_prints_the_rate_and_the_error_counts(tmp_path, capsys):
    (tmp_path / "ref").write_text("u1 a b c d e\nu2 f g h i j\n")
    (tmp_path / "hyp").write_text("u1 a c e\nu2 f x g h i j y z\n")  # 2 deleted, 3 inserted of 10
    out = tmp_path / "score_wer"
    score.main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"), "--output_dir", str(out)])
    assert read_error_rate(str(out / "result.txt")) == 50.0
    assert capsys.readouterr().out == f"{out}: 50.0% (0 substituted, 2 deleted, 3 inserted of 10 words)\n"


def test_score_writes_per_utterance_errors(tmp_path):
    (tmp_path / "ref").write_text("u1 a b c d e\nu2 f g h i j\n")
    (tmp_path / "hyp").write_text("u1 a c e\nu2 f x g h i j y z\n")
    out = tmp_path / "score_wer"
    score.main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"), "--output_dir", str(out)])
    assert (out / "utt_errors").read_text() == "u1 2 5\nu2 3 5\n"
