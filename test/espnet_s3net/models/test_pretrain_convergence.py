"""A few hundred CPU steps of xlsr_tiny on synthetic speech learn the contrastive task."""

import numpy as np
import soxr
import torch

from espnet_s3net.models.xlsr import XLSRModel, get_config
from espnet_s3net.synth.espeak import get_engine
from espnet_s3net.train.schedules import count_update

SENTENCES = ["la casa es grande y blanca", "el perro come pan", "mañana vamos al mercado",
             "los niños juegan en el parque"]


def _speech():
    engine = get_engine()
    voice = engine.voice_name("es")
    waves = []
    for i, text in enumerate(SENTENCES):
        pcm = engine.synthesize(text, voice, seed=i).astype(np.float32) / 32768.0
        waves.append(torch.from_numpy(soxr.resample(pcm, engine.sample_rate, 16000)))
    length = min(w.numel() for w in waves)
    return torch.stack([w[:length] for w in waves])


def test_contrastive_loss_drops_and_accuracy_beats_chance():
    torch.manual_seed(0)
    wav = _speech()
    # The Gumbel temperature is annealed within this short run (decay 0.99 per update
    # instead of 0.999995, which is meant for hundreds of thousands of updates); it
    # advances once per optimizer update, as the trainer does.
    cfg = get_config("xlsr_tiny", latent_temp=(1.0, 0.5, 0.99))
    model = XLSRModel(cfg).train()
    optim = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses, accs = [], []
    for _ in range(300):
        out = model.forward_pretrain(wav)
        optim.zero_grad()
        out.loss.backward()
        optim.step()
        count_update(model)
        losses.append(out.contrastive.item())
        accs.append(out.accuracy.item())
    first, last = np.mean(losses[:10]), np.mean(losses[-20:])
    chance = 1.0 / (cfg.num_negatives + 1)
    # Chance-level cross-entropy is log(K+1) = 3.04 for K = 20; a model that learned
    # nothing stays near it. 25 % below the start is far outside the step-to-step noise
    # (about 0.05) of this fixed-seed run; measured: 3.08 -> 1.81.
    assert last < 0.75 * first, (first, last)
    # accuracy over the last 20 steps at least 4x chance (4/21 = 0.19; measured 0.52)
    assert np.mean(accs[-20:]) > 4 * chance, np.mean(accs[-20:])
