import numpy as np
import torch

from espnet_s3net.data.batches import length_bins, pad_waveforms


def test_length_bins_keep_order_and_padded_size():
    lengths = {"a": 5, "b": 9, "c": 2, "d": 9, "e": 30}
    batches = length_bins(["c", "a", "b", "d", "e"], lengths, batch_bins=20)
    assert batches == [["c", "a"], ["b", "d"], ["e"]]  # 5*2=10, 9*3=27>20 -> cut; e alone (30 > 20)
    assert [u for b in batches for u in b] == ["c", "a", "b", "d", "e"]


def test_pad_waveforms():
    speech, lens = pad_waveforms([np.ones(3, dtype=np.float32), np.ones(1, dtype=np.float32)])
    assert speech.tolist() == [[1, 1, 1], [1, 0, 0]] and lens.tolist() == [3, 1]
    assert speech.dtype == torch.float32
