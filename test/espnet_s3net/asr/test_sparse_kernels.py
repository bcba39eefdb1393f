"""2:4 sub-networks with semi-structured sparse kernels: the dense masked fallback and its
logged reasons (CPU), the one-language bookkeeping (CPU, with the sparse conversion stood in
by the masked weight itself), and the kernels against the dense masked model (GPU)."""

import logging

import pytest
import torch

from espnet_s3net.asr import sparse_kernels
from espnet_s3net.asr.inference import use_language
from espnet_s3net.asr.sparse_kernels import SemiStructuredLinear, use_sparse_kernels
from espnet_s3net.masks.language_masker import MaskedLinear, attach_masker, find_maskers
from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.masks.pruning import prunable_parameters, random_masks
from espnet_s3net.models.xlsr import XLSRModel, get_config

LANGS = ("es", "fr")
#: max |sparse - dense| / max |dense| of the XLSR output. Reference: the float16 / bfloat16
#: model against the float32 one differs by 0.0018 / 0.014 on CPU (xlsr_small, 1 s); two
#: half-precision computations summing in other orders differ by about as much.
TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 5e-2}


def _model(pattern="2:4", dtype=torch.float32, config="xlsr_tiny", device="cpu", missing="error", **overrides):
    """XLSR in eval mode on ``device`` with random masks of ``pattern`` for es and fr."""
    torch.manual_seed(0)
    model = XLSRModel(get_config(config, **overrides)).eval()
    params = prunable_parameters(model)
    masks = SubnetMasks.from_dense(
        {lang: random_masks(params, 0.5, "layerwise", i, pattern) for i, lang in enumerate(LANGS)},
        {"pattern": pattern})
    model.to(device, dtype)
    attach_masker(model, masks, missing)
    return model


@torch.no_grad()
def _encode(model) -> torch.Tensor:
    """XLSR output (2, T, D) of a fixed 0.5 s batch."""
    param = next(model.parameters())
    wav = torch.randn(2, 8000, generator=torch.Generator().manual_seed(3))
    return model.encode(wav.to(param.device, param.dtype))[0][-1]


def _layers(model):
    return model.language_masker.layers


def _fallback(model, lang, caplog):
    """use_sparse_kernels' reason, checked to be logged on exactly one line."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        reason = use_sparse_kernels(model, lang)
    lines = [r.getMessage() for r in caplog.records if "sparse" in r.getMessage()]
    assert lines == [f"language {lang}: semi-structured sparse kernels not used, dense masked weights instead: "
                     f"{reason}"]
    assert all(type(layer) is MaskedLinear for layer in _layers(model))
    return reason


def test_cpu_falls_back_to_the_dense_masked_model_with_one_log_line(caplog):
    model = _model()
    use_language(model, "es")
    masked = _encode(model)
    reason = _fallback(model, "es", caplog)
    assert reason == ("the weights are float32, the kernels need float16 or bfloat16; "
                      "the weights are on cpu, the kernels need a CUDA GPU")
    assert torch.equal(_encode(model), masked)


@pytest.mark.parametrize("case, expected", [
    ("half_on_cpu", "the weights are on cpu, the kernels need a CUDA GPU"),
    ("unstructured", "the mask pattern is unstructured, the kernels need 2:4"),
    ("no_mask", "language it has no mask (the dense model is used)"),
    ("misfit_shape", "prunable weights do not fit the"),
])
def test_each_reason_is_named(case, expected, caplog):
    kwargs = {"half_on_cpu": dict(dtype=torch.bfloat16),
              "unstructured": dict(pattern="unstructured", dtype=torch.float16),
              "no_mask": dict(dtype=torch.bfloat16, missing="dense"),
              # (36, 36) and (72, 36): not multiples of any backend's block
              "misfit_shape": dict(dtype=torch.float16, embed_dim=36, ffn_dim=72)}[case]
    model = _model(**kwargs)
    lang = "it" if case == "no_mask" else "es"
    use_language(model, lang, missing=kwargs.get("missing", "error"))
    assert expected in _fallback(model, lang, caplog)


def test_a_model_without_masks_falls_back(caplog):
    model = XLSRModel(get_config("xlsr_tiny"))
    with caplog.at_level(logging.INFO):
        assert use_sparse_kernels(model, "es") == "the model has no sub-network masks"
    assert "semi-structured sparse kernels not used" in caplog.text


def test_the_sparse_weights_hold_one_language(monkeypatch, caplog):
    model = _model(dtype=torch.bfloat16)
    expected = {}
    for lang in LANGS:
        use_language(model, lang)
        expected[lang] = _encode(model)
    # stand-ins for the CUDA checks and the conversion: the layers compute with W ⊙ m itself
    monkeypatch.setattr(sparse_kernels, "_device_reasons", lambda *args, **kwargs: [])
    monkeypatch.setattr(sparse_kernels, "to_sparse_semi_structured", lambda weight: weight)

    use_language(model, "es")
    with caplog.at_level(logging.INFO):
        assert use_sparse_kernels(model, "es") is None
    assert f"language es: {len(_layers(model))} linear layers compute with 2:4 semi-structured" in caplog.text
    assert all(type(layer) is SemiStructuredLinear and layer.sparse_lang == "es" for layer in _layers(model))
    assert torch.equal(_encode(model), expected["es"])
    assert set(model.state_dict()) == set(_model().state_dict())  # the sparse weights are not saved

    for masker in find_maskers(model):  # switched without rebuilding: an error, not es's weights
        masker.activate("fr")
    with pytest.raises(RuntimeError, match="sparse weights of language es, which is no longer active"):
        _encode(model)
    with pytest.raises(ValueError, match="activate language es before"):
        use_sparse_kernels(model, "es")
    use_language(model, "fr")  # without sparse_kernels: the dense masked layers again
    assert all(type(layer) is MaskedLinear for layer in _layers(model))
    assert torch.equal(_encode(model), expected["fr"])
    use_language(model, "fr", sparse_kernels=True)
    assert all(layer.sparse_lang == "fr" for layer in _layers(model))
    assert torch.equal(_encode(model), expected["fr"])
    with pytest.raises(RuntimeError, match="for inference"):
        model.encode(torch.randn(1, 8000, dtype=torch.bfloat16))

    monkeypatch.setattr(sparse_kernels, "_device_reasons", lambda *args, **kwargs: ["no GPU today"])
    assert _fallback(model, "fr", caplog) == "no GPU today"  # back to the dense masked layers
    assert torch.equal(_encode(model), expected["fr"])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sparse_kernels_match_the_dense_masked_model_on_gpu(dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if torch.cuda.get_device_capability() < sparse_kernels.MIN_CAPABILITY:
        pytest.skip(f"{torch.cuda.get_device_name()}: compute capability below 8.0")
    # xlsr_small: weights (128, 128), (512, 128), (128, 512), multiples of every backend's block
    model = _model(dtype=dtype, config="xlsr_small", device="cuda")
    for lang in LANGS:
        use_language(model, lang)
        dense = _encode(model).float()
        assert use_sparse_kernels(model, lang) is None
        assert all(isinstance(layer.sparse_weight, torch.sparse.SparseSemiStructuredTensor)
                   for layer in _layers(model))
        sparse = _encode(model).float()
        error = ((sparse - dense).abs().max() / dense.abs().max()).item()
        assert error <= TOLERANCE[dtype], f"{lang} {dtype}: relative max error {error:.2e}"
