import numpy as np
import pytest
import torch

from espnet_s3net.masks.mask_file import (
    SubnetMasks,
    pack_bits,
    pack_bits_by_shifts,
    parameter_fingerprint,
    unpack_bits,
    unpack_bits_by_shifts,
)
from espnet_s3net.masks.pruning import random_masks


def _masks(shapes, langs=("es", "fr"), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {lang: {f"t{i}": torch.rand(s, generator=gen) < 0.5 for i, s in enumerate(shapes)} for lang in langs}


def test_bitpack_round_trip_with_odd_sizes(tmp_path):
    dense = _masks([(3, 5), (7,), (1, 1, 9)])
    masks = SubnetMasks.from_dense(dense, {"method": "te", "sparsity": 0.5})
    masks.save(str(tmp_path / "m.pt"))
    loaded = SubnetMasks.load(str(tmp_path / "m.pt"))
    assert loaded.languages == ["es", "fr"] and loaded.meta["method"] == "te"
    for lang in dense:
        for name, m in dense[lang].items():
            assert torch.equal(loaded.dense(lang)[name], m)
    assert loaded.fingerprint == masks.fingerprint
    assert loaded.fingerprint != SubnetMasks.from_dense(_masks([(3, 5), (7,), (1, 1, 9)], seed=1), {}).fingerprint


def test_unpacking_on_cpu_and_by_shifts_agree():
    flat = torch.rand(1003) < 0.5
    packed = SubnetMasks.from_dense({"es": {"w": flat}}, {}).packed("es")
    assert torch.equal(unpack_bits(packed, 1003), flat.to(torch.uint8))
    assert torch.equal(unpack_bits_by_shifts(packed, 1003), flat.to(torch.uint8))
    for numel in (1000, 1003):  # into a buffer (the path of CUDA devices), with and without a partial byte
        out = torch.full((numel,), 7, dtype=torch.uint8)
        assert unpack_bits_by_shifts(packed[:(numel + 7) // 8], numel, out) is out
        assert torch.equal(out, flat[:numel].to(torch.uint8))


@pytest.mark.parametrize("numel", [1, 8, 1000, 1003])
def test_packing_on_cpu_and_by_shifts_agree(numel):
    flat = torch.rand(numel) < 0.5
    expected = torch.from_numpy(np.packbits(flat.numpy()))  # the mask file's order
    assert torch.equal(pack_bits(flat), expected)
    assert torch.equal(pack_bits_by_shifts(flat), expected)
    out = torch.full_like(expected, 7)  # into a buffer (a row of the pathways' bits)
    assert pack_bits_by_shifts(flat, out) is out and torch.equal(out, expected)
    assert pack_bits(flat, out.fill_(7)) is out and torch.equal(out, expected)


def test_unpacking_into_a_buffer():
    flat = torch.rand(1003) < 0.5
    packed = SubnetMasks.from_dense({"es": {"w": flat}}, {}).packed("es")
    out = torch.full((1003,), 7, dtype=torch.uint8)
    assert unpack_bits(packed, 1003, out=out) is out and torch.equal(out, flat.to(torch.uint8))
    with pytest.raises(ValueError, match="unpacking 1003 bits"):
        unpack_bits(packed, 1003, out=torch.empty(1000, dtype=torch.uint8))


@pytest.mark.parametrize("shapes, views", [([(4, 6), (2, 4), (3, 5)], True), ([(3, 5), (2, 4)], False)])
def test_packed_split_gives_each_tensor_its_bits(shapes, views):
    """Tensors starting on whole bytes get views of the stored bits; otherwise copies."""
    dense = _masks(shapes)
    masks = SubnetMasks.from_dense(dense, {})
    for lang in dense:
        split = masks.packed_split(lang)
        assert list(split) == masks.names
        for name, packed in split.items():
            assert packed.shape == dense[lang][name].shape
            assert packed.bits.numel() == (packed.shape.numel() + 7) // 8
            assert torch.equal(packed.unpacked(), dense[lang][name].to(torch.uint8))
            shares = packed.bits.untyped_storage().data_ptr() == masks.packed(lang).untyped_storage().data_ptr()
            assert shares == views


def test_storage_is_one_bit_per_weight():
    masks = SubnetMasks.from_dense(_masks([(1000, 17)]), {})
    assert all(b.numel() == (17000 + 7) // 8 for b in masks._bits.values())


def test_mask_file_for_another_model_is_refused(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(5, 3))
    SubnetMasks.from_dense({"es": {"0.weight": torch.ones(3, 4, dtype=torch.bool)}}, {}).save(str(tmp_path / "m.pt"))
    masks = SubnetMasks.load(str(tmp_path / "m.pt"))
    with pytest.raises(ValueError, match=rf"mask file {tmp_path}/m.pt does not fit the model: "
                                         r"tensor 0\.weight has shape \(3, 5\), the masks expect \(3, 4\)"):
        masks.check_model(model)
    other = SubnetMasks.from_dense({"es": {"1.weight": torch.ones(3, 5, dtype=torch.bool)}}, {})
    with pytest.raises(ValueError, match=r"the model has no tensor 1.weight \(it has e.g. 0.weight, 0.bias\)"):
        other.check_model(model)
    with pytest.raises(ValueError, match=f"no mask for language 'it'; mask file {tmp_path}/m.pt has: es"):
        masks.dense("it")


def test_parameter_fingerprint_tracks_values():
    model = torch.nn.Linear(4, 2)
    before = parameter_fingerprint(model, ["weight"])
    assert before == parameter_fingerprint(model, ["weight"])
    with torch.no_grad():
        model.weight[0, 0] += 1e-6
    assert parameter_fingerprint(model, ["weight"]) != before


def test_not_a_mask_file(tmp_path):
    torch.save({"x": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not an espnet_s3net mask file"):
        SubnetMasks.load(str(tmp_path / "x.pt"))


def _nm_masks(seed=0):
    params = {"t0": torch.zeros(3, 8), "t1": torch.zeros(2, 12)}
    return {lang: random_masks(params, 0.5, "layerwise", seed + i, "2:4") for i, lang in enumerate(("es", "fr"))}


def test_nm_pattern_round_trips_and_old_files_are_unstructured(tmp_path):
    dense = _nm_masks()
    SubnetMasks.from_dense(dense, {"pattern": "2:4"}).save(str(tmp_path / "m.pt"))
    loaded = SubnetMasks.load(str(tmp_path / "m.pt"))
    assert loaded.pattern == "2:4" and loaded.meta["pattern"] == "2:4"
    assert all(torch.equal(loaded.dense(lang)[n], m) for lang in dense for n, m in dense[lang].items())
    assert SubnetMasks.from_dense(_masks([(3, 5)]), {}).pattern == "unstructured"


def test_bits_that_break_the_pattern_are_refused(tmp_path):
    dense = _nm_masks()
    dense["fr"]["t1"][1, 4] = ~dense["fr"]["t1"][1, 4]
    with pytest.raises(ValueError, match=r"^the mask file: the mask of language fr breaks its pattern 2:4: "
                                         r"tensor t1 \(2, 12\), row 1, input columns 4..7 keep [13], not 2$"):
        SubnetMasks.from_dense(dense, {"pattern": "2:4"})
    path = tmp_path / "m.pt"
    SubnetMasks.from_dense(dense, {}).save(str(path))  # a file whose pattern was changed afterwards
    data = torch.load(path, weights_only=True)
    data["meta"]["pattern"] = "2:4"
    torch.save(data, path)
    with pytest.raises(ValueError, match=f"^mask file {path}: the mask of language fr breaks its pattern 2:4: "
                                         "tensor t1 "):
        SubnetMasks.load(str(path))
    data["meta"]["pattern"] = "1:3"
    torch.save(data, path)
    with pytest.raises(ValueError, match=rf"^mask file {path}: pattern 1:3 does not fit tensor t0 of shape \(3, 8\)"):
        SubnetMasks.load(str(path))
