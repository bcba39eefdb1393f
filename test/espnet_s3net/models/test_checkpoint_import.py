"""Import equivalence with transformers' Wav2Vec2ForPreTraining (test dependency only)."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from espnet_s3net.models.checkpoint_import import load_pretrained, read_huggingface_config  # noqa: E402
from espnet_s3net.models.span_mask import span_mask  # noqa: E402
from espnet_s3net.models.xlsr import XLSRModel, get_config  # noqa: E402


def _hf_config(pre_ln: bool):
    return transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2), conv_bias=pre_ln,
        feat_extract_norm="layer" if pre_ln else "group", do_stable_layer_norm=pre_ln,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        num_codevector_groups=2, num_codevectors_per_group=8, codevector_dim=16, proj_codevector_dim=16,
    )


@pytest.mark.parametrize("pre_ln", [False, True], ids=["post_ln", "pre_ln"])
def test_huggingface_import_matches(tmp_path, pre_ln):
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForPreTraining(_hf_config(pre_ln)).eval()
    hf.save_pretrained(tmp_path)
    ours = XLSRModel(read_huggingface_config(str(tmp_path))).eval()
    load_pretrained(ours, str(tmp_path))

    wav = torch.randn(2, 4000)
    feats, _ = ours.extract_features(wav)
    mask = span_mask(2, feats.shape[1], 0.5, 3, min_masks=1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        hf_out = hf(wav, mask_time_indices=mask)
        hf_hidden = hf.wav2vec2(wav, mask_time_indices=mask).last_hidden_state
        hidden, _ = ours.encode(wav, time_mask=mask)
        normed = ours.encoder.feature_projection.layer_norm(feats)
        targets = ours.project_q(ours.quantizer(normed[mask])[0])
    torch.testing.assert_close(hidden[-1], hf_hidden, atol=1e-4, rtol=0)
    torch.testing.assert_close(targets, hf_out.projected_quantized_states[mask], atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.final_proj(hidden[-1]), hf_out.projected_states, atol=1e-4, rtol=0)


def test_architecture_mismatch_names_the_tensor(tmp_path):
    hf = transformers.Wav2Vec2ForPreTraining(_hf_config(False))
    hf.save_pretrained(tmp_path)
    cfg = read_huggingface_config(str(tmp_path))
    cfg.ffn_dim = 48
    with pytest.raises(ValueError, match=r"feed_forward\.intermediate_dense\.weight has shape \(64, 32\)"):
        load_pretrained(XLSRModel(cfg), str(tmp_path))


def test_missing_checkpoint_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_pretrained(XLSRModel(get_config("xlsr_tiny")), str(tmp_path / "nope.pt"))
