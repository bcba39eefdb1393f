"""The ``passthrough`` ESPnet encoder: the frontend's output as it is (the paper's CTC head
directly on XLSR)."""

from typing import Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder


class PassthroughEncoder(AbsEncoder):
    """Identity encoder: (B, T, D) in, (B, T, D) out."""

    def __init__(self, input_size: int):
        super().__init__()
        self._output_size = input_size

    def output_size(self) -> int:
        return self._output_size

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor,
                prev_states=None) -> Tuple[torch.Tensor, torch.Tensor, None]:
        return xs_pad, ilens, None
