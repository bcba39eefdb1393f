"""Per-language sub-network masks: bit-packed storage, metadata, model checks.

File layout (``torch.save`` of plain types, loaded with ``weights_only=True``)::

    {"format": "espnet_s3net.subnet_masks", "version": 1,
     "names": [...], "shapes": [[...], ...], "languages": [...],
     "bits": {lang: uint8 tensor},   # numpy.packbits of the concatenated flat masks
     "meta": {method, scope, sparsity, pattern, seed, source_fingerprint, config, ...}}

One bit per prunable weight per language (plus < 1 byte of padding per language).
True / 1 = kept (in the sub-network). ``meta["pattern"]`` is ``"unstructured"`` (also for
files without it) or ``"n:m"``: every language's masks keep exactly ``n`` of every ``m``
consecutive input weights of each row (:mod:`espnet_s3net.masks.pruning`), checked
whenever masks are built or loaded.
"""

import hashlib
import os
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch

from espnet_s3net.masks.pruning import UNSTRUCTURED, check_pattern, nm_violation

FORMAT = "espnet_s3net.subnet_masks"
VERSION = 1


def parameter_fingerprint(module: torch.nn.Module, names: Sequence[str]) -> str:
    """sha256 over names, shapes, dtypes and values of ``module``'s tensors ``names``."""
    params = dict(module.named_parameters())
    digest = hashlib.sha256()
    for name in names:
        if name not in params:
            raise ValueError(f"the model has no tensor {name}")
        tensor = params[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def unpack_bits(packed: torch.Tensor, numel: int, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """uint8 (numel,) of 0/1 from uint8 (ceil(numel / 8),) packed like ``numpy.packbits``
    (most significant bit first), computed on ``packed``'s device: numpy on CPU,
    :func:`unpack_bits_by_shifts` elsewhere (e.g. CUDA). With ``out`` (uint8 (numel,), same
    device) the bits are written into it and it is returned."""
    if out is not None and (out.shape != (numel,) or out.dtype != torch.uint8):
        raise ValueError(f"unpacking {numel} bits into a {out.dtype} tensor of shape {tuple(out.shape)}")
    if packed.device.type != "cpu":
        return unpack_bits_by_shifts(packed, numel, out)
    flat = torch.from_numpy(np.unpackbits(packed.numpy(), count=numel))  # ~20x faster than shifting on CPU
    return flat if out is None else out.copy_(flat)


def unpack_bits_by_shifts(packed: torch.Tensor, numel: int, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`unpack_bits` with tensor ops only (any device, e.g. CUDA): a shift and a mask
    written into ``out`` (uint8 (numel,), allocated when None), no temporary of its size."""
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    if out is None:
        out = torch.empty(numel, dtype=torch.uint8, device=packed.device)
    whole, tail = divmod(numel, 8)
    body = out[:8 * whole].view(whole, 8)
    torch.bitwise_right_shift(packed[:whole].unsqueeze(1), shifts, out=body)
    body.bitwise_and_(1)
    if tail:
        out[8 * whole:] = (packed[whole] >> shifts[:tail]) & 1
    return out


def pack_bits(flat: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """uint8 (ceil(n / 8),) of the bool (n,) ``flat``, packed like ``numpy.packbits`` (most
    significant bit first, the last byte padded with zeros), on ``flat``'s device: numpy on
    CPU, :func:`pack_bits_by_shifts` elsewhere (e.g. CUDA). With ``out`` (uint8, that shape
    and device) the bytes are written into it and it is returned."""
    if flat.device.type != "cpu":
        return pack_bits_by_shifts(flat, out)
    packed = torch.from_numpy(np.packbits(flat.numpy()))
    return packed if out is None else out.copy_(packed)


def pack_bits_by_shifts(flat: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`pack_bits` with tensor ops only (any device): each group of 8 shifted and summed
    (one uint8 temporary of ``flat``'s size)."""
    whole, tail = divmod(flat.numel(), 8)
    if out is None:
        out = torch.empty(whole + bool(tail), dtype=torch.uint8, device=flat.device)
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=flat.device)
    body = flat[:8 * whole].view(whole, 8).to(torch.uint8)
    torch.sum(body.bitwise_left_shift_(shifts), dim=1, dtype=torch.uint8, out=out[:whole])
    if tail:
        out[whole:] = torch.sum(flat[8 * whole:].to(torch.uint8) << shifts[:tail], dtype=torch.uint8)
    return out


class PackedMask(NamedTuple):
    """One tensor's mask as bits: ``bits`` uint8 (ceil(numel / 8),) in ``numpy.packbits``
    order (element ``i`` is bit ``7 - i % 8`` of byte ``i // 8``), ``shape`` the tensor's."""

    bits: torch.Tensor
    shape: torch.Size

    def unpacked(self) -> torch.Tensor:
        """uint8 0/1 of ``shape`` (a new tensor on the bits' device)."""
        return unpack_bits(self.bits, self.shape.numel()).view(self.shape)


class SubnetMasks:
    """Masks of several languages over the same prunable tensors.

    Args:
        names: prunable tensor names (relative to the XLSR model).
        shapes: their shapes.
        bits: language -> packed bits (uint8 tensor), masks concatenated in ``names`` order.
        meta: method, scope, sparsity, pattern, seed, source_fingerprint, ...
        source: what the masks are called in errors (the path, for a loaded file).
    """

    def __init__(self, names: Sequence[str], shapes: Sequence[Sequence[int]],
                 bits: Dict[str, torch.Tensor], meta: Dict[str, Any], source: str = "the mask file"):
        self.names: List[str] = list(names)
        self.shapes: Dict[str, torch.Size] = {n: torch.Size(s) for n, s in zip(names, shapes)}
        self.languages: List[str] = sorted(bits)
        self.meta = dict(meta)
        self.source = source
        self._bits = bits
        self._numel = sum(s.numel() for s in self.shapes.values())
        for lang, packed in bits.items():
            if packed.numel() != (self._numel + 7) // 8:
                raise ValueError(f"mask bits of {lang} hold {packed.numel()} bytes, expected {(self._numel + 7) // 8}")
        self.check_pattern()

    @classmethod
    def from_dense(cls, masks: Dict[str, Dict[str, torch.Tensor]], meta: Dict[str, Any]) -> "SubnetMasks":
        """Pack ``{lang: {name: bool tensor}}`` (every language the same names and shapes)."""
        if not masks:
            raise ValueError("no language masks given")
        first = next(iter(masks.values()))
        names = list(first)
        shapes = [tuple(first[n].shape) for n in names]
        bits = {}
        for lang, per_name in masks.items():
            if list(per_name) != names:
                raise ValueError(f"mask of {lang} covers other tensors than the first language's")
            bits[lang] = pack_bits(torch.cat([per_name[n].reshape(-1).to("cpu", torch.bool) for n in names]))
        return cls(names, shapes, bits, meta)

    @classmethod
    def load(cls, path: str) -> "SubnetMasks":
        if not os.path.isfile(path):
            raise FileNotFoundError(f"mask file {path} does not exist")
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path} is not an espnet_s3net mask file")
        if data["version"] != VERSION:
            raise ValueError(f"{path}: mask file version {data['version']}, this toolkit reads {VERSION}")
        return cls(data["names"], data["shapes"], data["bits"], data["meta"], source=f"mask file {path}")

    def save(self, path: str) -> None:
        """Write atomically (temp file + rename)."""
        data = {"format": FORMAT, "version": VERSION, "names": self.names,
                "shapes": [list(self.shapes[n]) for n in self.names],
                "languages": self.languages, "bits": self._bits, "meta": self.meta}
        tmp = f"{path}.tmp.{os.getpid()}"
        torch.save(data, tmp)
        os.replace(tmp, path)

    def _check_language(self, lang: str) -> None:
        if lang not in self._bits:
            raise ValueError(f"no mask for language {lang!r}; {self.source} has: {', '.join(self.languages)}")

    def packed(self, lang: str) -> torch.Tensor:
        """uint8 (ceil(numel / 8),): ``lang``'s bits as stored (``numpy.packbits`` order)."""
        self._check_language(lang)
        return self._bits[lang]

    def flat(self, lang: str) -> torch.Tensor:
        """Bool (numel,) of all tensors concatenated, for ``lang``."""
        return unpack_bits(self.packed(lang), self._numel).bool()

    def split(self, flat: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``{name: view of flat}`` in the tensors' shapes; ``flat`` is (numel,) in ``names`` order."""
        out, start = {}, 0
        for name in self.names:
            shape = self.shapes[name]
            out[name] = flat[start:start + shape.numel()].view(shape)
            start += shape.numel()
        return out

    def packed_split(self, lang: str, device: Optional[torch.device] = None) -> Dict[str, PackedMask]:
        """``{name: PackedMask}`` for ``lang``: views of the stored bits where every tensor
        starts on a whole byte, else each tensor's bits packed anew from its first byte (a
        copy, 1/8 byte per weight). With ``device``: of the bits moved there (as they are if already there)."""
        packed = self.packed(lang) if device is None else self.packed(lang).to(device)
        starts = np.cumsum([0] + [self.shapes[n].numel() for n in self.names])
        if all(start % 8 == 0 for start in starts[:-1]):
            return {name: PackedMask(packed[start // 8:(end + 7) // 8], self.shapes[name])
                    for name, start, end in zip(self.names, starts, starts[1:])}
        return {name: PackedMask(pack_bits(mask.reshape(-1)), mask.shape)
                for name, mask in self.split(unpack_bits(packed, self._numel).bool()).items()}

    def dense(self, lang: str) -> Dict[str, torch.Tensor]:
        """``{name: bool tensor of the tensor's shape}`` for ``lang``."""
        return self.split(self.flat(lang))

    @property
    def pattern(self) -> str:
        """``"unstructured"`` or ``"n:m"`` (``meta["pattern"]``; unstructured if absent)."""
        return self.meta.get("pattern", UNSTRUCTURED)

    def check_pattern(self) -> None:
        """Raise ValueError naming the language and tensor whose mask breaks :attr:`pattern`
        (or the tensor the pattern does not fit)."""
        try:
            nm = check_pattern(self.pattern, self.shapes)
        except ValueError as exc:
            raise ValueError(f"{self.source}: {exc}") from None
        if nm is None:
            return
        for lang in self.languages:
            for name, mask in self.split(unpack_bits(self.packed(lang), self._numel)).items():
                where = nm_violation(mask, *nm)
                if where is not None:
                    raise ValueError(f"{self.source}: the mask of language {lang} breaks its pattern {self.pattern}: "
                                     f"tensor {name} {tuple(mask.shape)}, {where}, not {nm[0]}")

    def check_model(self, module: torch.nn.Module) -> None:
        """Raise ValueError naming the first tensor missing from ``module`` or of another shape."""
        params = dict(module.named_parameters())
        for name in self.names:
            if name not in params:
                raise ValueError(f"{self.source} does not fit the model: the model has no tensor {name} "
                                 f"(it has e.g. {', '.join(list(params)[:3])})")
            if params[name].shape != self.shapes[name]:
                raise ValueError(
                    f"{self.source} does not fit the model: tensor {name} has shape "
                    f"{tuple(params[name].shape)}, the masks expect {tuple(self.shapes[name])}"
                )

    @property
    def fingerprint(self) -> str:
        """sha256 of names, shapes, languages and bits."""
        digest = hashlib.sha256()
        for name in self.names:
            digest.update(f"{name}:{tuple(self.shapes[name])};".encode())
        for lang in self.languages:
            digest.update(lang.encode() + b"\0" + self._bits[lang].numpy().tobytes())
        return digest.hexdigest()

    @property
    def numel(self) -> int:
        """Prunable weights covered by each language's mask."""
        return self._numel
