"""The wav2vec 2.0 / XLSR model, built from torchaudio's components.

Architecture (torchaudio ``models.wav2vec2.components``): conv feature encoder →
feature projection (layer norm + linear) → convolutional positional embedding →
transformer (post-LN for base, pre-LN for large). Pre-training adds a learned mask
embedding, a Gumbel product quantizer of the (layer-normed) conv features, a
projection of the quantized targets (``project_q``) and of the transformer output
(``final_proj``), and the contrastive + diversity + feature-penalty objective.
Targets are quantized at the masked frames only (as fairseq does). Optional
language-specific modules (``language_modules``: adapters or gates) follow each
transformer layer.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torchaudio.models.wav2vec2.components import _get_encoder, _get_feature_extractor

from espnet_s3net.models.contrastive import contrastive_logits, contrastive_loss, sample_negatives
from espnet_s3net.models.quantizer import GumbelVectorQuantizer
from espnet_s3net.models.span_mask import span_mask

_BASE_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


@dataclass
class XLSRConfig:
    """Every hyper-parameter of the model and its pre-training objective.

    Defaults are wav2vec 2.0 base (fairseq). Frame rate: 20 ms at 16 kHz with the
    standard conv stack.
    """

    extractor_mode: str = "group_norm"          # "group_norm" (base) | "layer_norm" (large)
    conv_layers: List[Tuple[int, int, int]] = field(default_factory=lambda: list(_BASE_CONV))
    conv_bias: bool = False
    embed_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    ffn_dim: int = 3072
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    layer_norm_first: bool = False               # pre-LN (large) vs post-LN (base)
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    dropout_input: float = 0.1
    dropout_features: float = 0.1
    layer_drop: float = 0.05
    feature_grad_mult: float = 0.1
    # quantizer and contrastive task
    final_dim: int = 256                         # projected space of context and targets
    codevector_dim: Optional[int] = None         # quantizer output (codevectors); None: final_dim
    latent_groups: int = 2
    latent_vars: int = 320
    latent_temp: Tuple[float, float, float] = (2.0, 0.5, 0.999995)
    mask_prob: float = 0.65
    mask_length: int = 10
    min_masks: int = 2
    num_negatives: int = 100
    logit_temp: float = 0.1
    diversity_weight: float = 0.1
    feature_penalty_weight: float = 10.0

    def __post_init__(self):
        self.conv_layers = [tuple(layer) for layer in self.conv_layers]
        self.latent_temp = tuple(self.latent_temp)
        if self.extractor_mode not in ("group_norm", "layer_norm"):
            raise ValueError(f"extractor_mode must be group_norm or layer_norm, got {self.extractor_mode!r}")

    @property
    def quantizer_dim(self) -> int:
        """Size of a quantized vector: ``codevector_dim``, or ``final_dim`` when None."""
        return self.final_dim if self.codevector_dim is None else self.codevector_dim

    def architecture(self) -> Dict[str, object]:
        """The :data:`ARCHITECTURE_FIELDS` values (``codevector_dim`` resolved)."""
        return {name: self.quantizer_dim if name == "codevector_dim" else getattr(self, name)
                for name in ARCHITECTURE_FIELDS}


# Every XLSRConfig field is one of these two. Architecture: what a checkpoint's tensors
# mean (shapes, normalisation placement, attention heads, ...); a checkpoint only fits a
# config that agrees on all of them. Training settings (regularisation, masking, objective,
# schedules) may differ from the checkpoint's.
ARCHITECTURE_FIELDS = (
    "extractor_mode", "conv_layers", "conv_bias", "embed_dim", "num_layers", "num_heads", "ffn_dim",
    "pos_conv_kernel", "pos_conv_groups", "layer_norm_first",
    "final_dim", "codevector_dim", "latent_groups", "latent_vars",
)
# the architecture of the pre-training heads (quantizer, project_q, final_proj) only
HEAD_FIELDS = ("final_dim", "codevector_dim", "latent_groups", "latent_vars")
TRAINING_FIELDS = (
    "dropout", "attention_dropout", "activation_dropout", "dropout_input", "dropout_features",
    "layer_drop", "feature_grad_mult", "latent_temp", "mask_prob", "mask_length", "min_masks",
    "num_negatives", "logit_temp", "diversity_weight", "feature_penalty_weight",
)


NAMED_CONFIGS = {
    # wav2vec 2.0 / XLSR base (~95M parameters)
    "xlsr_base": {},
    # XLSR large (~317M): pre-LN, layer-norm conv encoder, conv bias
    "xlsr_large": dict(
        extractor_mode="layer_norm", conv_bias=True, embed_dim=1024, num_layers=24, num_heads=16,
        ffn_dim=4096, layer_norm_first=True, final_dim=768, latent_temp=(2.0, 0.1, 0.999995),
        feature_grad_mult=1.0, layer_drop=0.1, dropout_input=0.1,
    ),
    # CPU demo (~0.75M): the standard 20 ms conv stack, narrow, pre-LN, no dropout. Measured
    # on the small synthetic corpus: a post-LN 256-wide model at lr 2e-3 stays on the
    # contrastive and the all-blank CTC plateau for thousands of updates; this one leaves
    # both within a few hundred.
    "xlsr_small": dict(
        conv_layers=[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2, embed_dim=128,
        num_layers=3, num_heads=2, ffn_dim=512, pos_conv_kernel=32, pos_conv_groups=8,
        layer_norm_first=True, final_dim=64, latent_vars=32, num_negatives=50, dropout=0.0,
        attention_dropout=0.0, dropout_input=0.0, dropout_features=0.0, layer_drop=0.0,
    ),
    # CPU unit tests (~0.1M)
    "xlsr_tiny": dict(
        conv_layers=[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2, embed_dim=64,
        num_layers=2, num_heads=2, ffn_dim=128, pos_conv_kernel=16, pos_conv_groups=4,
        final_dim=32, latent_vars=16, num_negatives=20, dropout=0.0, attention_dropout=0.0,
        dropout_input=0.0, dropout_features=0.0, layer_drop=0.0,
    ),
}


def get_config(name: str, **overrides) -> XLSRConfig:
    """A named configuration (``xlsr_tiny``, ``xlsr_small``, ``xlsr_base``, ``xlsr_large``)
    with field overrides; unknown names or fields raise ``ValueError``."""
    if name not in NAMED_CONFIGS:
        raise ValueError(f"unknown XLSR config {name!r}; choose from {', '.join(NAMED_CONFIGS)}")
    fields = {f.name for f in dataclasses.fields(XLSRConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown XLSR config field(s) {unknown}")
    return XLSRConfig(**{**NAMED_CONFIGS[name], **overrides})


class _GradMultiply(torch.autograd.Function):
    """Identity forward; gradient scaled by ``scale`` (wav2vec 2.0 feature_grad_mult)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


@dataclass
class PretrainOutput:
    """One pre-training step's objective and statistics (scalars)."""

    loss: torch.Tensor
    contrastive: torch.Tensor
    diversity: torch.Tensor
    feature_penalty: torch.Tensor
    accuracy: torch.Tensor
    code_perplexity: torch.Tensor
    prob_perplexity: torch.Tensor
    temperature: float
    num_masked: int


class XLSRModel(torch.nn.Module):
    """wav2vec 2.0 / XLSR with its pre-training heads.

    Args:
        cfg: the configuration.
    """

    def __init__(self, cfg: XLSRConfig):
        super().__init__()
        self.cfg = cfg
        conv_dim = cfg.conv_layers[-1][0]
        self.feature_extractor = _get_feature_extractor(cfg.extractor_mode, cfg.conv_layers, cfg.conv_bias)
        self.encoder = _get_encoder(
            in_features=conv_dim, embed_dim=cfg.embed_dim, dropout_input=cfg.dropout_input,
            pos_conv_kernel=cfg.pos_conv_kernel, pos_conv_groups=cfg.pos_conv_groups,
            num_layers=cfg.num_layers, num_heads=cfg.num_heads, attention_dropout=cfg.attention_dropout,
            ff_interm_features=cfg.ffn_dim, ff_interm_dropout=cfg.activation_dropout,
            dropout=cfg.dropout, layer_norm_first=cfg.layer_norm_first, layer_drop=cfg.layer_drop,
        )
        self.mask_emb = torch.nn.Parameter(torch.empty(cfg.embed_dim).uniform_())
        self.dropout_features = torch.nn.Dropout(cfg.dropout_features)
        self.quantizer = GumbelVectorQuantizer(
            conv_dim, cfg.latent_groups, cfg.latent_vars, cfg.quantizer_dim, cfg.latent_temp
        )
        self.project_q = torch.nn.Linear(cfg.quantizer_dim, cfg.final_dim)
        self.final_proj = torch.nn.Linear(cfg.embed_dim, cfg.final_dim)
        # per-language adapters or gates after the transformer layers
        # (espnet_s3net.models.language_modules; put on by pretrain_model.build_xlsr)
        self.language_modules: Optional[torch.nn.Module] = None
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """wav2vec 2.0's initialisation (torchaudio's components keep PyTorch defaults).

        Conv feature encoder: Kaiming normal (with PyTorch's default init the conv
        features shrink about 3x per layer, to a mean square near 1e-7, and
        pre-training stalls at chance); positional conv: normal with std
        sqrt(4 / (kernel · channels)); transformer linear layers: normal(0, 0.02)
        with zero bias (BERT). Projections, norms and the quantizer keep theirs.
        """
        for module in self.feature_extractor.modules():
            if isinstance(module, torch.nn.Conv1d):
                torch.nn.init.kaiming_normal_(module.weight)
        pos_conv = self.encoder.transformer.pos_conv_embed.conv
        std = math.sqrt(4.0 / (self.cfg.pos_conv_kernel * self.cfg.embed_dim))
        pos_conv.weight = torch.randn_like(pos_conv.weight) * std   # sets weight-norm g and v
        torch.nn.init.zeros_(pos_conv.bias)
        for module in self.encoder.transformer.layers.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                torch.nn.init.zeros_(module.bias)

    def output_size(self) -> int:
        return self.cfg.embed_dim

    def unused_parameters_reason(self) -> Optional[str]:
        """Why a training step may leave parameters without gradient (DDP), or None."""
        if self.cfg.layer_drop > 0:
            return f"LayerDrop {self.cfg.layer_drop} skips whole transformer layers"
        return None

    def extract_features(
        self, wav: torch.Tensor, lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Conv features (B, T, C) and frame lengths (B,) of wav (B, S) at 16 kHz."""
        features, frames = self.feature_extractor(wav, lengths)
        if self.cfg.feature_grad_mult != 1.0 and self.training:
            features = _GradMultiply.apply(features, self.cfg.feature_grad_mult)
        return features, frames

    def _padding(self, x: torch.Tensor, frames: Optional[torch.Tensor]):
        """Zero padded frames; additive attention mask (B, 1, T, T) or None."""
        if frames is None:
            return x, None
        b, t, _ = x.shape
        pad = torch.arange(t, device=x.device)[None, :] >= frames[:, None]
        x = x.masked_fill(pad[..., None], 0.0)
        mask = (-10000.0 * pad[:, None, None, :].to(x.dtype)).expand(b, 1, t, t)
        return x, mask

    def _transformer(
        self, x: torch.Tensor, attention_mask, all_layers: bool
    ) -> Tuple[List[torch.Tensor], List[int]]:
        """Hidden states (B, T, D) and their layer indices.

        ``all_layers``: [input (index 0), output of each layer that ran]; else only
        the last of these. LayerDrop (training only) skips layers, which then have no
        entry. The last entry is the transformer output: the final layer norm of post-LN
        models is applied to it. With ``language_modules``, the output of layer i is
        that of its language module (a layer LayerDrop skips skips its module too).
        """
        transformer = self.encoder.transformer
        language_modules = self.language_modules
        x = transformer._preprocess(x)
        states, layers = [x], [0]
        for i, layer in enumerate(transformer.layers, start=1):
            if self.training and transformer.layer_drop > 0 and torch.rand(()) < transformer.layer_drop:
                continue
            x, _ = layer(x, attention_mask)
            if language_modules is not None:
                x = language_modules(x, i)
            if all_layers:
                states.append(x)
                layers.append(i)
            else:
                states, layers = [x], [i]
        if not transformer.layer_norm_first:
            states[-1] = transformer.layer_norm(x)
        return states, layers

    def encode(
        self,
        wav: torch.Tensor,
        lengths: Optional[torch.Tensor] = None,
        time_mask: Optional[torch.Tensor] = None,
        channel_mask: Optional[torch.Tensor] = None,
    ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor], List[int]]:
        """Transformer hidden states for downstream use.

        Args:
            wav: (B, S) waveform at 16 kHz; lengths: (B,) valid samples.
            time_mask: (B, T) frames replaced by the mask embedding.
            channel_mask: (B, D) channels zeroed at every frame.
        Returns:
            states: list of (B, T, D), one per entry of ``layers``; the last is the
                transformer output (final layer norm of post-LN models included);
            frames: (B,) frame lengths, None without ``lengths``;
            layers: increasing layer indices of ``states``, 0 = transformer input,
                i = output of layer i; all of 0..N except for layers LayerDrop
                skipped (training only).
        """
        features, frames = self.extract_features(wav, lengths)
        states, layers = self.encode_features(features, frames, time_mask, channel_mask)
        return states, frames, layers

    def encode_features(
        self,
        features: torch.Tensor,
        frames: Optional[torch.Tensor],
        time_mask: Optional[torch.Tensor] = None,
        channel_mask: Optional[torch.Tensor] = None,
    ) -> Tuple[List[torch.Tensor], List[int]]:
        """:meth:`encode`'s ``states`` and ``layers`` from conv features (B, T, C) and
        frame lengths (B,)."""
        x = self.encoder.feature_projection(features)
        if time_mask is not None:
            x = torch.where(time_mask[..., None], self.mask_emb.to(x.dtype), x)
        if channel_mask is not None:
            x = x.masked_fill(channel_mask[:, None, :], 0.0)
        x, attention_mask = self._padding(x, frames)
        return self._transformer(x, attention_mask, all_layers=True)

    def forward_pretrain(
        self,
        wav: torch.Tensor,
        lengths: Optional[torch.Tensor] = None,
        mask_indices: Optional[torch.Tensor] = None,
        negative_indices: Optional[torch.Tensor] = None,
    ) -> PretrainOutput:
        """The wav2vec 2.0 objective on a batch.

        Args:
            wav: (B, S) at 16 kHz; lengths: (B,) valid samples.
            mask_indices: (B, T) bool; drawn with :func:`span_mask` if None.
            negative_indices: (M, K) distractors into the M masked frames; drawn with
                :func:`sample_negatives` if None.
        Returns:
            loss = contrastive + diversity_weight·diversity + feature_penalty_weight·penalty,
            each term and the statistics.
        """
        cfg = self.cfg
        features, frames = self.extract_features(wav, lengths)
        feature_penalty = features.float().pow(2).mean()
        projection = self.encoder.feature_projection
        normed = projection.layer_norm(features)
        unmasked = self.dropout_features(normed)
        x = projection.dropout(projection.projection(normed))
        b, t, _ = x.shape
        if mask_indices is None:
            mask_indices = span_mask(b, t, cfg.mask_prob, cfg.mask_length, cfg.min_masks, frames, device=x.device)
        x = torch.where(mask_indices[..., None], self.mask_emb.to(x.dtype), x)
        x, attention_mask = self._padding(x, frames)
        x = self._transformer(x, attention_mask, all_layers=False)[0][-1]

        context = self.final_proj(x[mask_indices])                 # (M, F)
        quantized, code_ppl, prob_ppl = self.quantizer(unmasked[mask_indices])
        targets = self.project_q(quantized)                       # (M, F)
        if negative_indices is None:
            frame_utt = mask_indices.nonzero()[:, 0]
            negative_indices = sample_negatives(frame_utt, cfg.num_negatives)
        logits = contrastive_logits(context, targets, negative_indices, cfg.logit_temp)
        contrastive, accuracy = contrastive_loss(logits)
        num_codes = cfg.latent_groups * cfg.latent_vars
        diversity = (num_codes - prob_ppl) / num_codes
        return PretrainOutput(
            loss=contrastive + cfg.diversity_weight * diversity
            + cfg.feature_penalty_weight * feature_penalty,
            contrastive=contrastive, diversity=diversity,
            feature_penalty=feature_penalty, accuracy=accuracy, code_perplexity=code_ppl,
            prob_perplexity=prob_ppl, temperature=self.quantizer.temperature,
            num_masked=int(mask_indices.sum()),
        )
