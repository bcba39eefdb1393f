"""DistilXLSR model: layer-jumping initialisation, frozen teacher, loss, saved student, bad input."""

import pytest
import torch

from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.masks.pruning import prunable_parameters, random_masks
from espnet_s3net.models.distill import XLSRDistillModel, default_layer_map
from espnet_s3net.models.pretrain_model import XLSRPretrainModel
from espnet_s3net.models.xlsr import XLSRModel, get_config
from espnet_s3net.tasks.xlsr_distill import build_teacher

LAYERS = "encoder.transformer.layers."


def _teacher(num_layers: int = 4, **overrides) -> XLSRModel:
    torch.manual_seed(0)
    return XLSRModel(get_config("xlsr_tiny", num_layers=num_layers, **overrides))


def _batch():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(2, 8000, generator=gen), torch.tensor([8000, 6400])


def _layer_state(model: XLSRModel, index: int):
    return {k[len(f"{LAYERS}{index}."):]: v for k, v in model.state_dict().items() if k.startswith(f"{LAYERS}{index}.")}


def _shared_state(model: XLSRModel):
    return {k: v for k, v in model.state_dict().items() if not k.startswith(LAYERS)}


def test_default_layer_map_is_every_other_layer_ending_on_the_last():
    assert default_layer_map(12, 24) == list(range(2, 25, 2))
    assert default_layer_map(2, 4) == [2, 4]
    assert default_layer_map(1, 3) == [3]
    assert default_layer_map(2, 3) == [2, 3]


@pytest.mark.parametrize("init, layer_map, sources", [
    ("layer_jump", None, [1, 3]),          # default map [2, 4] (0-based 1, 3)
    ("layer_jump", [1, 3], [0, 2]),
    ("first_k", None, [0, 1]),
])
def test_initialisation_copies_exactly_the_mapped_layers_and_the_shared_parts(init, layer_map, sources):
    teacher = _teacher()
    teacher_shared = _shared_state(teacher)  # with the pre-training heads, which the model drops from the teacher
    model = XLSRDistillModel(teacher, None, {"init": init, "layer_map": layer_map})
    student = model.xlsr
    assert student.cfg.num_layers == 2
    for s, t in enumerate(sources):
        mine, theirs = _layer_state(student, s), _layer_state(teacher, t)
        assert mine.keys() == theirs.keys() and mine
        for name in mine:
            assert torch.equal(mine[name], theirs[name]), (s, name)
        for other in set(range(4)) - {t}:  # no other teacher layer was copied into it
            other_k = _layer_state(teacher, other)["attention.k_proj.weight"]
            assert not torch.equal(mine["attention.k_proj.weight"], other_k)
    for name, value in _shared_state(student).items():
        assert torch.equal(value, teacher_shared[name]), name


@pytest.mark.parametrize("init", ["shared", "random"])
def test_baselines_without_layer_jumping(init):
    teacher = _teacher()
    student = XLSRDistillModel(teacher, None, {"init": init}).xlsr
    for s in range(2):
        for t in range(4):
            assert not torch.equal(_layer_state(student, s)["feed_forward.output_dense.weight"],
                                   _layer_state(teacher, t)["feed_forward.output_dense.weight"])
    conv = "feature_extractor.conv_layers.0.conv.weight"
    assert torch.equal(student.state_dict()[conv], teacher.state_dict()[conv]) == (init == "shared")


def test_teacher_is_frozen_outside_the_model_and_unchanged_by_training_steps():
    teacher = _teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    model = XLSRDistillModel(teacher, None, {"init": "random", "freeze_feature_encoder": False})
    assert not any(k.startswith("teacher") for k in model.state_dict())
    teacher_params = {id(p) for p in teacher.parameters()}
    assert not teacher_params & {id(p) for p in model.parameters()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    wav, lengths = _batch()
    for _ in range(2):
        loss = model(wav, lengths)[0]
        loss.backward()
        assert all(p.grad is None for p in teacher.parameters())
        optimizer.step()
        optimizer.zero_grad()
    assert not teacher.training
    for name, value in teacher.state_dict().items():
        assert torch.equal(value, before[name]), name
    model.to(torch.float64)  # the teacher moves with the model
    assert next(teacher.parameters()).dtype == torch.float64


def test_loss_decreases_over_a_few_steps():
    model = XLSRDistillModel(_teacher(), None, {"init": "random", "freeze_feature_encoder": False})
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    wav, lengths = _batch()
    model.train()
    losses = []
    for _ in range(5):
        loss, stats, _ = model(wav, lengths)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.8 * losses[0], losses
    assert {"loss", "loss_l1", "loss_cos", "cos", "cos_s1_t2", "cos_s2_t4"} <= set(stats)


def test_frozen_feature_encoder_reuses_the_teachers_features_while_they_agree():
    model = XLSRDistillModel(_teacher(), None, {})
    assert model.shares_features()
    assert not any(p.requires_grad for p in model.xlsr.feature_extractor.parameters())
    state = model.state_dict()
    state["xlsr.feature_extractor.conv_layers.0.conv.weight"] += 1.0
    model.load_state_dict(state)
    assert not model.shares_features()
    wav, lengths = _batch()
    assert torch.isfinite(model(wav, lengths)[0])
    assert not XLSRDistillModel(_teacher(), None, {"init": "random"}).shares_features()


def test_a_narrower_student_gets_heads_that_the_pretrained_model_loader_skips():
    teacher = _teacher()
    narrow = {"embed_dim": 32, "ffn_dim": 64, "final_dim": 16}
    with pytest.raises(ValueError, match="copies whole teacher layers.*embed_dim 32 vs 64"):
        XLSRDistillModel(teacher, narrow, {"init": "layer_jump"})
    with pytest.raises(ValueError, match="head none"):
        XLSRDistillModel(teacher, narrow, {"init": "shared", "head": "none"})
    model = XLSRDistillModel(teacher, narrow, {"init": "shared"})
    assert set(model.distill_heads) == {"1", "2"}
    wav, lengths = _batch()
    model(wav, lengths)[0].backward()
    state = model.state_dict()
    assert any(k.startswith("distill_heads.") for k in state)
    loaded = XLSRPretrainModel({"name": "xlsr_tiny", "num_layers": 2, **narrow})
    loaded.load_state_dict(state)  # strict: only the heads are left out
    for name, value in loaded.xlsr.state_dict().items():
        assert torch.equal(value, state[f"xlsr.{name}"]), name


def test_the_saved_student_loads_where_a_pretrained_xlsr_model_loads():
    model = XLSRDistillModel(_teacher(), None, {})
    loaded = XLSRPretrainModel({"name": "xlsr_tiny", "num_layers": 2})
    loaded.load_state_dict(model.state_dict())
    wav, lengths = _batch()
    model.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(model.xlsr.encode(wav, lengths)[0][-1], loaded.xlsr.encode(wav, lengths)[0][-1])


@pytest.mark.parametrize("layer_map, message", [
    ([2, 9], r"layer_map\[1\] = 9 \(student layer 2\) points outside the teacher: the teacher \(.*\) has layers 1..4"),
    ([0, 2], r"layer_map\[0\] = 0 \(student layer 1\) points outside the teacher"),
    ([1, 2, 3], r"has 3 entries; the student has 2 layers"),
])
def test_a_bad_layer_map_is_a_clear_error(layer_map, message):
    with pytest.raises(ValueError, match=message):
        XLSRDistillModel(_teacher(), {"num_layers": 2}, {"layer_map": layer_map}, "the teacher (xlsr_tiny)")


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="unknown distill_conf key"):
        XLSRDistillModel(_teacher(), None, {"layermap": [2, 4]})
    with pytest.raises(ValueError, match="init must be one of"):
        XLSRDistillModel(_teacher(), None, {"init": "jump"})
    with pytest.raises(ValueError, match="loss_layers has 3"):
        XLSRDistillModel(_teacher(), None, {"loss_layers": [3]})
    with pytest.raises(ValueError, match="cannot map onto"):
        XLSRDistillModel(_teacher(), {"num_layers": 6}, {})
    with pytest.raises(ValueError, match="conv_layers"):
        XLSRDistillModel(_teacher(), {"conv_layers": [[32, 10, 5], [32, 3, 2]]}, {})


def test_a_teacher_with_one_languages_mask_is_that_sub_network(tmp_path):
    torch.manual_seed(0)
    source = XLSRPretrainModel({"name": "xlsr_tiny", "num_layers": 4})
    params = prunable_parameters(source.xlsr)
    masks = SubnetMasks.from_dense({lang: random_masks(params, 0.5, "layerwise", i)
                                    for i, lang in enumerate(("es", "fr"))}, {})
    masks.save(str(tmp_path / "masks.pt"))
    conf = {"xlsr_conf": {"name": "xlsr_tiny", "num_layers": 4}, "mask_file": str(tmp_path / "masks.pt")}
    with pytest.raises(ValueError, match="teacher_conf.language"):
        build_teacher(conf)
    with pytest.raises(ValueError, match="neither language masks"):
        build_teacher({"xlsr_conf": {"name": "xlsr_tiny"}, "language": "es"})
    teacher = build_teacher({**conf, "language": "fr"})
    assert teacher.language_masker.active == "fr"
    dense = {k: v.clone() for k, v in teacher.state_dict().items()}
    model = XLSRDistillModel(teacher, None, {})
    keep = masks.dense("fr")
    name = f"{LAYERS}3.feed_forward.intermediate_dense.weight"
    student_name = f"{LAYERS}1.feed_forward.intermediate_dense.weight"
    assert name in keep
    assert torch.equal(model.xlsr.state_dict()[student_name], dense[name] * keep[name])
    wav, lengths = _batch()
    model(wav, lengths)[0].backward()  # the teacher's forward runs its sub-network
    assert torch.equal(teacher.state_dict()[name], dense[name])  # stored weights stay dense


def test_a_teacher_imported_from_a_hugging_face_directory(tmp_path):
    transformers = pytest.importorskip("transformers")
    from espnet_s3net.models.checkpoint_import import config_to_huggingface, huggingface_state

    source = _teacher()
    hf = transformers.Wav2Vec2ForPreTraining(transformers.Wav2Vec2Config(**config_to_huggingface(source.cfg)))
    hf.load_state_dict(huggingface_state(source.state_dict()))
    hf.save_pretrained(tmp_path)
    model = XLSRDistillModel(build_teacher({"init_checkpoint": str(tmp_path)}), None, {}, str(tmp_path))
    assert model.distill_conf.layer_map == [2, 4]
    for s, t in ((0, 1), (1, 3)):
        for name, value in _layer_state(model.xlsr, s).items():
            assert torch.equal(value, _layer_state(source, t)[name]), (s, name)
