import pytest

from espnet_s3net.text.token_list import build_token_list


def _write(path, lines):
    path.write_text("".join(f"u{i} {line}\n" for i, line in enumerate(lines)), encoding="utf-8")
    return str(path)


def test_phone_list_order(tmp_path):
    text = _write(tmp_path / "text_phn", ["a b a", "b a c", "a"])
    tokens = build_token_list("phn", text, str(tmp_path / "phn"))
    assert tokens == ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]
    assert (tmp_path / "phn" / "tokens.txt").read_text().split("\n")[:-1] == tokens


def test_char_list_uses_space_symbol(tmp_path):
    text = _write(tmp_path / "text_char", ["ab ba", "ç a"])
    tokens = build_token_list("char", text, str(tmp_path / "char"))
    assert tokens[:2] == ["<blank>", "<unk>"] and tokens[-1] == "<sos/eos>"
    assert tokens[2] == "a" and "<space>" in tokens and "ç" in tokens and " " not in tokens


def test_bpe_model_and_list(tmp_path):
    words = ["hola mundo", "bonjour le monde", "привет мир", "你好 世界"] * 20
    text = _write(tmp_path / "text_char", words)
    tokens = build_token_list("bpe", text, str(tmp_path / "bpe"), bpe_vocab_size=40)
    assert (tmp_path / "bpe" / "bpe.model").exists()
    assert tokens[0] == "<blank>" and tokens[-1] == "<sos/eos>" and len(set(tokens)) == len(tokens)
    assert len(tokens) > 10


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown token type"):
        build_token_list("word", "x", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_token_list("phn", str(tmp_path / "missing"), str(tmp_path))
    with pytest.raises(ValueError, match="bpe_vocab_size"):
        build_token_list("bpe", _write(tmp_path / "t", ["a"]), str(tmp_path / "b"))
