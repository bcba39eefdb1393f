import pytest
import torch

from espnet_s3net.models.pretrain_model import XLSRPretrainModel, find_xlsr
from espnet_s3net.models.xlsr import XLSRModel, get_config


@pytest.mark.parametrize("name, millions", [("xlsr_base", 95.0), ("xlsr_large", 317.4)])
def test_named_config_sizes(name, millions):
    with torch.device("meta"):
        model = XLSRModel(get_config(name))
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - millions) < 0.5


def test_config_errors():
    with pytest.raises(ValueError, match="unknown XLSR config 'xlsr_huge'"):
        get_config("xlsr_huge")
    with pytest.raises(ValueError, match="unknown XLSR config field"):
        get_config("xlsr_tiny", embed=3)


def test_encode_shapes_and_padding():
    torch.manual_seed(0)
    # layer-norm conv encoder (large-style): group norm (base-style) normalises over
    # time including padding, as in wav2vec 2.0 base, so only this one is padding-invariant
    model = XLSRModel(get_config("xlsr_tiny", extractor_mode="layer_norm")).eval()
    wav = torch.randn(2, 16000)
    states, frames, layers = model.encode(wav, torch.tensor([16000, 8000]))
    assert len(states) == 3 and layers == [0, 1, 2] and states[-1].shape == (2, 49, 64)
    assert frames.tolist() == [49, 24]
    # the valid frames of the short utterance do not depend on what the padding holds
    wav2 = wav.clone()
    wav2[1, 8000:] = 5.0
    states2, _, _ = model.encode(wav2, torch.tensor([16000, 8000]))
    torch.testing.assert_close(states[-1][1, :20], states2[-1][1, :20], atol=1e-5, rtol=0)


def test_pretrain_model_forward_stats_and_gradients():
    torch.manual_seed(0)
    model = XLSRPretrainModel(xlsr_conf={"name": "xlsr_tiny"})
    speech = torch.randn(3, 24000)
    loss, stats, weight = model(speech, torch.tensor([24000, 20000, 16000]))
    assert loss.numel() == 1 and torch.isfinite(loss).all() and int(weight) == 3
    assert {"loss_contrastive", "loss_diversity", "loss_features", "acc", "code_ppl", "prob_ppl",
            "temp", "n_masked"} <= set(stats)
    loss.backward()
    assert model.xlsr.quantizer.weight_proj.weight.grad is not None
    assert find_xlsr(model) is model.xlsr
    with pytest.raises(ValueError, match="contains no XLSRModel"):
        find_xlsr(torch.nn.Linear(2, 2))


def test_forwards_never_advance_the_temperature_count_update_does():
    torch.manual_seed(0)
    model = XLSRPretrainModel(xlsr_conf={"name": "xlsr_tiny", "latent_temp": (2.0, 0.5, 0.9)}).train()
    speech, lengths = torch.randn(2, 16000), torch.tensor([16000, 12000])
    for _ in range(3):
        _, stats, _ = model(speech, lengths)
    assert int(model.xlsr.quantizer.num_updates) == 0 and float(stats["temp"]) == 2.0
    for _ in range(2):  # what the trainer does after each optimizer step taken
        for module in model.modules():
            if hasattr(module, "count_update"):
                module.count_update()
    _, stats, _ = model(speech, lengths)
    assert int(model.xlsr.quantizer.num_updates) == 2
    torch.testing.assert_close(float(stats["temp"]), 2.0 * 0.9 ** 2)


def _ran_layers(model, seed):
    """encode's (states, layers) in training with the given seed."""
    torch.manual_seed(seed)
    states, _, layers = model.encode(torch.randn(1, 8000))
    return states, layers


def test_layer_drop_reports_the_layers_that_ran():
    model = XLSRModel(get_config("xlsr_tiny", num_layers=4, layer_drop=0.5)).train()
    blocks = model.encoder.transformer.layers
    partial = 0
    for seed in range(20):
        states, layers = _ran_layers(model, seed)
        assert len(states) == len(layers) and layers[0] == 0 and layers == sorted(set(layers))
        # each state is the output of its layer applied to the previous state that ran
        for j in range(1, len(layers)):
            torch.testing.assert_close(states[j], blocks[layers[j] - 1](states[j - 1])[0])
        partial += 1 < len(layers) < 5
    assert partial > 0  # some seeds drop some but not all layers
    model.encoder.transformer.layer_drop = 1.0
    assert _ran_layers(model, 0)[1] == [0]
    model.eval()  # evaluation never drops
    states, layers = _ran_layers(model, 0)
    assert layers == [0, 1, 2, 3, 4] and len(states) == 5
