"""The s3net frontend: update-counted freezing, layer weighting under LayerDrop, frozen conv encoder."""

import pytest
import torch

from espnet_s3net.asr.frontend.s3net import S3NetFrontend

SPEECH, LENGTHS = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0)), torch.tensor([8000, 6000])


def _frontend(layer_drop=0.0, **kwargs):
    torch.manual_seed(0)
    frontend = S3NetFrontend(xlsr_conf={"name": "xlsr_tiny", "num_layers": 4, "layer_drop": layer_drop},
                             layer_selection="weighted_sum", **kwargs)
    with torch.no_grad():
        frontend.layer_weights.copy_(torch.randn(5))
    return frontend


def _states(frontend, seed):
    """The XLSR model's (states, layers) for SPEECH with the random state of ``frontend`` at ``seed``."""
    torch.manual_seed(seed)
    features, frames = frontend.xlsr.extract_features(SPEECH, LENGTHS)
    return frontend.xlsr.encode_features(features, frames)


def _weighted(weights, states):
    return sum(w * h for w, h in zip(torch.softmax(weights, 0), states))


def test_weighted_sum_renormalises_over_the_layers_that_ran():
    frontend = _frontend(layer_drop=0.5).train()
    for seed in range(20):
        states, layers = _states(frontend, seed)
        if 1 < len(layers) < 5:
            break
    else:
        pytest.fail("no seed dropped some but not all layers")
    torch.manual_seed(seed)
    out, frames = frontend(SPEECH, LENGTHS)
    assert out.shape == (2, frames.max(), 64)
    torch.testing.assert_close(out, _weighted(frontend.layer_weights[layers], states))


def test_weighted_sum_without_drop_and_in_eval():
    frontend = _frontend(layer_drop=0.0).train()
    states, layers = _states(frontend, 0)
    assert layers == [0, 1, 2, 3, 4]
    torch.testing.assert_close(frontend(SPEECH, LENGTHS)[0], _weighted(frontend.layer_weights, states))
    frontend = _frontend(layer_drop=1.0).eval()  # evaluation never drops
    with torch.no_grad():
        states, layers = _states(frontend, 0)
        out = frontend(SPEECH, LENGTHS)[0]
    assert layers == [0, 1, 2, 3, 4]
    torch.testing.assert_close(out, _weighted(frontend.layer_weights, states))


def _transformer_trains(frontend) -> bool:
    frontend.zero_grad(set_to_none=True)
    frontend(SPEECH, LENGTHS)[0].sum().backward()
    return frontend.xlsr.encoder.transformer.layers[0].attention.q_proj.weight.grad is not None


def test_transformer_freeze_counts_updates_not_forwards():
    frontend = _frontend(freeze_transformer_steps=2).train()
    assert not any(_transformer_trains(frontend) for _ in range(3))  # forwards alone never advance
    assert int(frontend.num_updates) == 0
    frontend.count_update()
    assert not _transformer_trains(frontend)
    frontend.count_update()
    assert _transformer_trains(frontend) and int(frontend.state_dict()["num_updates"]) == 2


def test_frozen_feature_encoder_needs_no_gradient():
    for freeze in (True, False):
        frontend = _frontend(freeze_feature_encoder=freeze).train()
        conv = list(frontend.xlsr.feature_extractor.parameters())
        assert all(p.requires_grad != freeze for p in conv)
        frontend(SPEECH, LENGTHS)[0].sum().backward()
        assert all((p.grad is None) == freeze for p in conv)
        assert frontend.xlsr.encoder.feature_projection.projection.weight.grad is not None


def test_language_modules_follow_the_language_and_stay_in_the_portable_conf():
    conf = {"xlsr_conf": {"name": "xlsr_tiny"}, "language_modules": {"type": "gating", "languages": ["es", "fr"]}}
    frontend = S3NetFrontend(**conf).eval()
    with pytest.raises(RuntimeError, match="LanguageGates: .* no language is active"):
        frontend(SPEECH, LENGTHS)
    with torch.no_grad():
        frontend.xlsr.language_modules.gates["fr"].fill_(-1.0)
    outputs = {}
    for lang in ("es", "fr"):
        frontend.xlsr.language_modules.activate(lang)
        outputs[lang] = frontend(SPEECH, LENGTHS)[0]
    assert not torch.allclose(outputs["es"], outputs["fr"])
    portable = S3NetFrontend.portable_conf(conf, frontend.xlsr)
    assert portable["language_modules"] == conf["language_modules"]
    assert "language_modules" not in S3NetFrontend.portable_conf({}, _frontend().xlsr)
