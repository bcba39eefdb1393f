"""Both text-teacher loading paths: a tiny random Hugging Face XLM-R directory (standing in
for XLM-R / InfoXLM) and a tiny self-trained masked-LM teacher; skips and bad directories."""

import pytest
import torch
from text_teachers_data import save_tiny_xlmr, train_tiny

from espnet_s3net.asr.text_teachers import load_text_teacher


@pytest.fixture(scope="module")
def xlmr_dir(tmp_path_factory):
    return save_tiny_xlmr(tmp_path_factory.mktemp("xlmr"))


def test_huggingface_teacher_gives_content_token_states(xlmr_dir):
    from transformers import AutoModel

    teacher = load_text_teacher("huggingface", str(xlmr_dir), layer=1)
    assert teacher.hidden_size == 16
    out = teacher(["la casa grande", "del mercado", "del " * 40])
    assert out.lengths.tolist() == [3, 2, 20]  # <s>, </s> dropped; 22 positions at most
    assert out.skipped == [None, None, None] and out.states.shape == (3, 20, 16)
    reference = AutoModel.from_pretrained(str(xlmr_dir), local_files_only=True).eval()
    ids = torch.tensor([[0, 6, 7, 8, 2]])
    expected = reference(input_ids=ids, output_hidden_states=True).hidden_states[1][0, 1:4]
    assert torch.allclose(out.states[0, :3], expected, atol=1e-5)
    assert (out.states[1, 2:] == 0).all()
    assert all(not p.requires_grad for p in teacher.model.parameters()) and not teacher.model.training


def test_text_the_tokenizer_cannot_encode_is_a_named_skip(xlmr_dir):
    out = load_text_teacher("huggingface", str(xlmr_dir))(["бир эки", "la casa", ""])
    assert out.lengths.tolist() == [0, 2, 0]
    assert "unknown" in out.skipped[0] and out.skipped[1] is None and out.skipped[2] == "empty text"


def test_directories_that_are_not_text_encoders_are_refused(xlmr_dir, tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    speech = tmp_path / "w2v"
    Wav2Vec2Model(Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                 conv_dim=(8,), conv_stride=(5,), conv_kernel=(10,), num_conv_pos_embeddings=4,
                                 num_conv_pos_embedding_groups=2)).save_pretrained(speech)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (speech / name).write_bytes((xlmr_dir / name).read_bytes())
    with pytest.raises(ValueError, match="not a text encoder: its model Wav2Vec2Model takes input_values"):
        load_text_teacher("huggingface", str(speech))
    with pytest.raises(ValueError, match="no config.json"):
        load_text_teacher("huggingface", str(tmp_path))
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    (config_only / "config.json").write_bytes((xlmr_dir / "config.json").read_bytes())
    with pytest.raises(ValueError, match="tokenizer"):
        load_text_teacher("huggingface", str(config_only))
    with pytest.raises(ValueError, match="teacher_layer 3 is out of range"):
        load_text_teacher("huggingface", str(xlmr_dir), layer=3)
    with pytest.raises(ValueError, match="not a text teacher trained by"):
        load_text_teacher("self_trained", str(xlmr_dir))
    with pytest.raises(ValueError, match="does not exist"):
        load_text_teacher("huggingface", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="unknown teacher type 'bert'"):
        load_text_teacher("bert", str(xlmr_dir))


def test_self_trained_teacher_loads_and_skips_unknown_scripts(tmp_path):
    teacher = load_text_teacher("self_trained", str(train_tiny(tmp_path, steps=2)), layer=0)
    out = teacher(["la casa", "бир эки үч", "日本語"])
    assert out.states.shape[0] == 3 and out.states.shape[2] == teacher.hidden_size == 16
    assert out.lengths[0] > 0 and out.lengths[1] > 0 and out.lengths[2] == 0
    assert out.skipped[:2] == [None, None] and "unknown" in out.skipped[2]
    embeddings = teacher.model.embed.weight
    assert not embeddings.requires_grad
