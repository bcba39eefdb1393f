"""The Distill-L2S experiment's arms, languages and teacher (espnet_s3net.recipe_distill_l2s),
checked before any recipe stage."""

import pytest

from espnet_s3net.recipe_distill_l2s import plan

CONFIG = "model: distill_l2s\nmodel_conf:\n    ctc_weight: 1.0\n    distill_l2s_conf:\n        lambda: {}\n"


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "asr.yaml"
    path.write_text(CONFIG.format(0.5))
    return str(path)


def test_arms_languages_and_teacher(tmp_path, config):
    # default High: the 3 with the most XLSR-10 hours (es fr it); Low: the others, in --langs order
    assert plan(config, "", None, ["tt", "es", "fr", "it", "ky"]) == [
        "low tt ky", "teacher self_trained -", "arm ctc 0", "arm l2s 0.5"]
    hf = tmp_path / "xlmr"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    assert plan(config, "0.1 1.0", str(hf), ["es", "ky"], ["es"]) == [
        "low ky", f"teacher huggingface {hf}", "arm ctc 0", "arm l2s_lambda0.1 0.1", "arm l2s_lambda1.0 1.0"]
    own = tmp_path / "own"
    own.mkdir()
    (own / "teacher.yaml").write_text("type: x\n")
    assert plan(config, "", str(own), ["es", "ky"], ["es"])[1] == f"teacher self_trained {own}"


@pytest.mark.parametrize("lambdas,teacher,langs,high,message", [
    ("-0.1", None, "es ky", "es", "λ must be a finite number >= 0, got '-0.1'"),
    ("half", None, "es ky", "es", "λ must be a number >= 0, got 'half'"),
    ("0", None, "es ky", "es", "λ 0 is the plain CTC arm"),
    ("0.1 .1", None, "es ky", "es", "λ .1 is given twice"),
    ("", "missing", "es ky", "es", "does not exist"),
    ("", "empty", "es ky", "es", "is not a text teacher"),
    ("", None, "es fr it", "", "no low-resource language"),
])
def test_bad_input(tmp_path, config, lambdas, teacher, langs, high, message):
    if teacher:
        teacher = tmp_path / teacher
        if teacher.name == "empty":
            teacher.mkdir()
    with pytest.raises(ValueError, match=message):
        plan(config, lambdas, teacher and str(teacher), langs.split(), high.split())


def test_bad_config(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("model_conf:\n    ctc_weight: 1.0\n")
    with pytest.raises(ValueError, match="not a Distill-L2S config"):
        plan(str(plain), "", None, ["es", "ky"], ["es"])
    negative = tmp_path / "negative.yaml"
    negative.write_text(CONFIG.format(-1))
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        plan(str(negative), "", None, ["es", "ky"], ["es"])
    zero = tmp_path / "zero.yaml"
    zero.write_text(CONFIG.format(0))
    with pytest.raises(ValueError, match="lambda is 0, which is the plain CTC arm"):
        plan(str(zero), "", None, ["es", "ky"], ["es"])
