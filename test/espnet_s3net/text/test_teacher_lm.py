"""The self-trained masked-LM text teacher: training entry point, saved directory, loading."""

import pytest
import torch
from text_teachers_data import train_tiny

from espnet_s3net.text import teacher_lm


def test_entry_point_trains_and_saves_a_loadable_teacher(tmp_path):
    import yaml

    out = train_tiny(tmp_path)
    assert {p.name for p in out.iterdir()} == {"teacher.yaml", "spm.model", "model.pth"}
    meta = yaml.safe_load((out / "teacher.yaml").read_text(encoding="utf-8"))
    assert meta["type"] == teacher_lm.TYPE_NAME and meta["steps"] == 3 and meta["config"]["dim"] == 16
    assert sorted(meta["sentences"].values()) == [3, 3]
    model, processor = teacher_lm.load_teacher(str(out))
    assert not model.training
    ids, lengths = teacher_lm.pad_ids(teacher_lm.encode_sentences(processor, ["бир эки", "la casa"], 16))
    assert ids[0, 0] == teacher_lm.BOS and ids[0, lengths[0] - 1] == teacher_lm.EOS
    assert not (ids == teacher_lm.UNK).any()  # every training character has a piece
    states = model(ids, lengths)
    assert len(states) == 2 and states[-1].shape == (2, ids.shape[1], 16)


def test_masked_lm_targets_only_the_chosen_content_pieces():
    ids = torch.tensor([[teacher_lm.BOS, 7, 8, 9, teacher_lm.EOS], [teacher_lm.BOS, 7, teacher_lm.EOS, 0, 0]])
    lengths = torch.tensor([5, 3])
    corrupted, targets = teacher_lm.mask_for_mlm(ids, lengths, 20, torch.Generator().manual_seed(0))
    chosen = targets != -100
    assert chosen.any(dim=1).all()  # at least one per sentence
    assert not chosen[:, 0].any() and not chosen[0, 4] and not chosen[1, 2:].any()
    assert torch.equal(targets[chosen], ids[chosen]) and torch.equal(corrupted[~chosen], ids[~chosen])


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        teacher_lm.load_teacher(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="not a text teacher"):
        teacher_lm.load_teacher(str(tmp_path))
    empty = tmp_path / "empty"
    empty.write_text("u1\n")
    with pytest.raises(ValueError, match="has a sentence"):
        teacher_lm.train_teacher([str(empty)], str(tmp_path / "out"), steps=1)
