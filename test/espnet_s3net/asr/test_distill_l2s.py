"""Distill-L2S loss core: shrinking by CTC argmax, nearest-neighbour alignment, the masked
and weighted MSE, and where gradients go (CPU, tiny tensors)."""

import pytest
import torch
import torch.nn.functional as F

from espnet_s3net.asr.distill_l2s import L2SDistillLoss, interpolate_to, shrink_ctc_frames

VOCAB = 5  # blank = 0


def _logits(ids):
    """CTC logits ``(B, T, VOCAB)`` whose per-frame argmax is ``ids`` ``(B, T)``."""
    return 10.0 * F.one_hot(torch.tensor(ids), VOCAB).float()


def _frames(batch, frames, dim, seed=0):
    return torch.randn(batch, frames, dim, generator=torch.Generator().manual_seed(seed))


# utterance 0: runs 1 1 | 1 | 2 2 (blank between the two runs of 1 keeps them apart)
# utterance 1: one run of 3 in its 5 valid frames; the non-blank padding must not add a run
# utterance 2: blank on every valid frame (non-blank only in padding) -> length 0
IDS = [[0, 1, 1, 0, 1, 2, 2, 0], [3, 3, 3, 0, 0, 2, 2, 2], [0, 0, 0, 0, 0, 0, 1, 1]]
LENGTHS = torch.tensor([8, 5, 6])


def test_shrink_merges_runs_drops_blanks_and_ignores_padding():
    hidden = _frames(3, 8, 4)
    shrunk, lengths = shrink_ctc_frames(hidden, LENGTHS, _logits(IDS))
    assert lengths.tolist() == [3, 1, 0]
    assert shrunk.shape == (3, 3, 4)
    expected0 = torch.stack([hidden[0, 1:3].mean(0), hidden[0, 4], hidden[0, 5:7].mean(0)])
    torch.testing.assert_close(shrunk[0], expected0)
    torch.testing.assert_close(shrunk[1, 0], hidden[1, 0:3].mean(0))
    assert not shrunk[1, 1:].any() and not shrunk[2].any()

    padded = hidden.clone()
    padded[1, 5:] = float("nan")
    padded[2, 6:] = 1e6
    logits = _logits(IDS)
    logits[1, 5:] = torch.randn(3, VOCAB)
    again, again_lengths = shrink_ctc_frames(padded, LENGTHS, logits)
    assert again_lengths.tolist() == [3, 1, 0]
    torch.testing.assert_close(again, shrunk)


def test_interpolate_to_longer_and_shorter_target():
    seq = torch.zeros(3, 5, 2)
    seq[0, :3] = torch.arange(3.0)[:, None]  # 3 vectors -> 7 positions
    seq[1] = 10 + torch.arange(5.0)[:, None]  # 5 vectors -> 2 positions
    seq[2] = 99.0  # empty source: never read
    lengths, targets = torch.tensor([3, 5, 0]), torch.tensor([7, 2, 4])
    out = interpolate_to(seq, lengths, targets)
    assert out.shape == (3, 7, 2)
    assert out[0, :, 0].tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert out[1, :, 0].tolist() == [10, 12, 0, 0, 0, 0, 0]
    assert not out[2].any()
    for b in range(2):  # the same indices as torch's nearest mode
        reference = F.interpolate(seq[b, : lengths[b]].T[None], size=int(targets[b]), mode="nearest")[0].T
        torch.testing.assert_close(out[b, : targets[b]], reference)


def _batch(seed=0):
    """Speech (3, 8, 4) with IDS and LENGTHS, teacher (3, 6, 3) with token lengths 4, 6, 2."""
    teacher = _frames(3, 6, 3, seed=seed + 1)
    return _frames(3, 8, 4, seed=seed), LENGTHS, _logits(IDS), teacher, torch.tensor([4, 6, 2])


def test_mse_value_and_masking_of_padded_frames_and_tokens():
    torch.manual_seed(0)
    loss_fn = L2SDistillLoss(4, 3, lambda_=0.5)
    hidden, lengths, logits, teacher, teacher_lengths = _batch()
    loss = loss_fn(hidden, lengths, logits, teacher, teacher_lengths)

    # per-element mean over the valid tokens of the utterances with a non-empty shrunk sequence
    shrunk, shrunk_lengths = shrink_ctc_frames(hidden, lengths, logits)
    errors = []
    for b in range(2):
        aligned = interpolate_to(shrunk[b : b + 1], shrunk_lengths[b : b + 1], teacher_lengths[b : b + 1])[0]
        errors.append(loss_fn.projection(aligned) - teacher[b, : teacher_lengths[b]])
    torch.testing.assert_close(loss, 0.5 * torch.cat(errors).pow(2).mean())

    hidden[1, 5:] = float("nan")
    logits[1, 5:] = torch.randn(3, VOCAB)
    teacher[0, 4:] = float("nan")
    teacher[2, 2:] = 1e6
    assert torch.equal(loss_fn(hidden, lengths, logits, teacher, teacher_lengths), loss)


def test_all_blank_utterance_is_left_out_and_finite():
    loss_fn = L2SDistillLoss(4, 3)
    hidden, lengths, logits, teacher, teacher_lengths = _batch()
    hidden.requires_grad_(True)
    loss = loss_fn(hidden, lengths, logits, teacher, teacher_lengths)
    without = loss_fn(hidden[:2], lengths[:2], logits[:2], teacher[:2], teacher_lengths[:2])
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, without)

    blank = _logits([[0] * 8] * 3)
    empty = loss_fn(hidden, lengths, blank, teacher, teacher_lengths)
    assert empty.item() == 0.0
    empty.backward()  # nothing to distil: a zero gradient, no NaN
    assert not loss_fn.projection.weight.grad.any()


def test_gradients_reach_projection_and_speech_not_teacher():
    loss_fn = L2SDistillLoss(4, 3)
    hidden, lengths, logits, teacher, teacher_lengths = _batch()
    hidden.requires_grad_(True)
    teacher.requires_grad_(True)
    logits.requires_grad_(True)
    loss = loss_fn(hidden, lengths, logits, teacher, teacher_lengths)
    grads = torch.autograd.grad(loss, [hidden, loss_fn.projection.weight, teacher, logits], allow_unused=True)
    assert grads[0][0, 1:7].abs().sum() > 0 and grads[1].abs().sum() > 0
    assert not grads[0][2].any() and not grads[0][1, 3:].any()  # all-blank utterance, blank/padded frames
    assert grads[2] is None and grads[3] is None


def test_lambda_and_size_checks():
    with pytest.raises(ValueError, match="lambda_ must be >= 0"):
        L2SDistillLoss(4, 3, lambda_=-0.1)
    torch.manual_seed(0)
    one = L2SDistillLoss(4, 3, lambda_=1.0)
    torch.manual_seed(0)
    three = L2SDistillLoss(4, 3, lambda_=3.0)
    batch = _batch()
    torch.testing.assert_close(three(*batch), 3 * one(*batch))
    hidden, lengths, logits, teacher, teacher_lengths = batch
    with pytest.raises(ValueError, match="teacher hidden size 2 != projection_size 3"):
        one(hidden, lengths, logits, teacher[..., :2], teacher_lengths)
    with pytest.raises(ValueError, match="speech hidden size 2 != input_size 4"):
        one(hidden[..., :2], lengths, logits, teacher, teacher_lengths)
