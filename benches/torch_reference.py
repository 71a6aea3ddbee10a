#!/usr/bin/env python3
"""A PyTorch reference for diffusion-lab's speed on the CPU.

diffusion-lab runs its networks on burn's CPU backend. To know whether its timings are good or bad we
need the same work done by a mainstream framework on the same machine: this script rebuilds the app's
built-in networks layer for layer in PyTorch (random weights: only the time matters), checks that the
parameter counts equal the Rust ones (the cheapest proof that the architectures agree), and times what
`diffusion-lab bench --json` times, under the same flat JSON keys:

    pixel_forward_b{1,16,32}_ms        one forward of the pixel UNet, median over runs
    pixel_ddim50_w2_b16_plain_s        16 images, DDIM 50 steps (eta 0), guidance w = 2
    latent_ddim50_w2_b16_plain_s       the same with the latent UNet, + the decodes a plain run does
    latent_ddpm1000_w2_b16_plain_s     16 images, all 1000 DDPM steps (sigma^2 = beta tilde), w = 2, + decodes
    pixel_train_b64_images_per_s       forward + MSE + backward + clip + AdamW + EMA, batch 64
    latent_train_b128_images_per_s     the same on 4x7x7 latents, batch 128

Mirrored from the Rust sources (src/model/*.rs, src/train/ddpm.rs, src/diffusion/*.rs,
src/engine/generate.rs):

* UNet: stem conv3x3; per level a Stage = ResBlock (GN -> SiLU -> conv3x3, + Linear(SiLU(emb)), GN -> SiLU
  -> conv3x3, 1x1 skip when channels change) then optional self- and cross-attention (GN, Q/K/V/out
  Linear, heads of 32 channels, at least one); stride-2 conv3x3 between levels; middle = Stage with both
  attentions + ResBlock; up path: nearest interpolation to the skip's size, conv3x3, cat([h, skip]) on
  channels, Stage; out GN -> SiLU -> conv3x3. Noise level: sinusoids of 100*lambda -> Linear -> SiLU ->
  Linear (embed_dim = 4 * channels[0]). Class: Embedding(classes + 1, tokens*ctx) -> LayerNorm -> Linear.
* Decoder D: conv3x3 in; per level from the deepest: AeBlock (ResBlock without embedding), then nearest
  up to the encoder's size + conv3x3; GN -> SiLU -> conv3x3 out. It decodes D(z / latent_scale).
* Sampling: classifier-free guidance as ONE forward over [x; x] with [class; null] (batch 2B); DDIM/DDPM
  update planned in float64 over the training schedule (cosine, T = 1000) with x0 clipped to +-1
  (pixels) or +-4 (latents). A plain run of the app also decodes x_T once and x_0, x0_hat of the last
  step, so the latent runs here decode three times as well.
* Training: lambda drawn 45 % linear / 45 % cosine table / 10 % uniform in [-20, 10]; labels dropped to
  the null class 10 % of the time; x_t = sqrt(abar) x0 + sqrt(1 - abar) eps; loss = mean((eps_hat - eps)^2);
  per-parameter gradient-norm clip at 1 (burn's GradientClipping::Norm); AdamW (beta 0.9/0.999,
  eps 1e-5, weight decay 0, lr warm-up + half cosine); EMA of all parameters with decay
  min(0.999, (1 + step) / (10 + step)); the loss read back every step.

Usage:
    python benches/torch_reference.py                         # torch only, threads 2 then 1
    python benches/torch_reference.py --quick                 # smoke test: a few seconds of each
    python benches/torch_reference.py --diffusion-lab target/release/diffusion-lab --json cmp.json

With --diffusion-lab, the binary runs `bench --json --threads N` with N the thread count the ratios are
taken against (2 when --threads lists it, else the first one listed), so that both sides compute on as
many cores; --diffusion-lab-args "--threads M" overrides it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# The Rust side's numbers these networks must reproduce (assets/models/README.md, src/model/cost.rs).
PIXEL_UNET_PARAMETERS = 2_163_457
LATENT_UNET_PARAMETERS = 1_257_988
DECODER_PARAMETERS = 224_961

# src/model/attention.rs, src/model/embedding.rs, src/model/autoencoder.rs
HEAD_DIM = 32
LOG_SNR_EMBED_SCALE = 100.0
LATENT_X0_BOUND = 4.0
# The built-in autoencoder's measured latent scale (its checkpoint header).
LATENT_SCALE = 1.095778060759805
# src/diffusion/schedule.rs
COSINE_OFFSET = 0.008
COSINE_MAX_BETA = 0.999
# burn's GroupNorm / LayerNorm epsilon.
NORM_EPS = 1e-5

# The keys `diffusion-lab bench --json` prints, in the order of the comparison table.
BENCH_KEYS = [
    "pixel_forward_b1_ms",
    "pixel_forward_b16_ms",
    "pixel_forward_b32_ms",
    "pixel_ddim50_w2_b16_plain_s",
    "pixel_ddim50_w2_b16_streamed_s",
    "latent_ddim50_w2_b16_plain_s",
    "latent_ddim50_w2_b16_streamed_s",
    "latent_ddpm1000_w2_b16_plain_s",
    "pixel_train_b64_images_per_s",
    "latent_train_b128_images_per_s",
]


# ----------------------------------------------------------------------------------------------------
# Configurations (the built-in models' checkpoint headers)
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UNetConfig:
    """src/model/unet.rs `UNetConfig`; defaults are the pixel model's."""

    image_channels: int = 1
    image_size: int = 28
    channels: tuple[int, ...] = (32, 64, 128)
    self_attention_levels: tuple[int, ...] = (2,)
    cross_attention_levels: tuple[int, ...] = (1, 2)
    num_classes: int = 10
    class_tokens: int = 4
    context_dim: int = 64
    groups: int = 8

    @property
    def embed_dim(self) -> int:
        return 4 * self.channels[0]


PIXEL_UNET = UNetConfig()
# assets/models/fashion-latent-unet.dlab's header.
LATENT_UNET = UNetConfig(
    image_channels=4,
    image_size=7,
    channels=(48, 96),
    self_attention_levels=(1,),
    cross_attention_levels=(1,),
)


@dataclass(frozen=True)
class AutoencoderConfig:
    """src/model/autoencoder.rs `AutoencoderConfig`, as in assets/models/fashion-autoencoder.dlab."""

    image_channels: int = 1
    image_size: int = 28
    latent_channels: int = 4
    channels: tuple[int, ...] = (32, 64, 64)
    groups: int = 8
    latent_scale: float = LATENT_SCALE


def level_size(size: int, level: int) -> int:
    """Side of the feature map at `level` (each level halves, rounding up: 28 -> 14 -> 7 -> 4)."""
    for _ in range(level):
        size = (size + 1) // 2
    return size


# ----------------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------------


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def group_norm(groups: int, channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=NORM_EPS, affine=True)


class ResBlock(nn.Module):
    """GN -> SiLU -> conv, + the noise-level embedding, GN -> SiLU -> conv, residual (1x1 when needed)."""

    def __init__(self, cin: int, cout: int, embed_dim: int, groups: int):
        super().__init__()
        self.norm1 = group_norm(groups, cin)
        self.conv1 = conv3x3(cin, cout)
        self.embed = nn.Linear(embed_dim, cout)
        self.norm2 = group_norm(groups, cout)
        self.conv2 = conv3x3(cout, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.embed(F.silu(embedding))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class Attention(nn.Module):
    """x + W_o softmax(Q K^T / sqrt(d)) V over the pixels; K, V from GN(x) or from the class context.

    `sdpa` swaps the explicit softmax(QK^T)V (what burn computes) for F.scaled_dot_product_attention,
    to see what PyTorch's fused kernel is worth; the default mirrors burn op for op.
    """

    def __init__(self, channels: int, groups: int, context_dim: int | None = None, sdpa: bool = False):
        super().__init__()
        kv_dim = context_dim if context_dim is not None else channels
        self.norm = group_norm(groups, channels)
        self.query = nn.Linear(channels, channels)
        self.key = nn.Linear(kv_dim, channels)
        self.value = nn.Linear(kv_dim, channels)
        self.out = nn.Linear(channels, channels)
        self.heads = max(channels // HEAD_DIM, 1)
        self.sdpa = sdpa

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).reshape(b, c, h * w).transpose(1, 2)
        source = tokens if context is None else context
        q = self.split_heads(self.query(tokens))
        k = self.split_heads(self.key(source))
        v = self.split_heads(self.value(source))
        if self.sdpa:
            mixed = F.scaled_dot_product_attention(q, k, v)
        else:
            head_dim = c // self.heads
            weights = torch.softmax(q @ k.transpose(2, 3) * (1.0 / math.sqrt(head_dim)), dim=3)
            mixed = weights @ v
        mixed = mixed.transpose(1, 2).reshape(b, h * w, c)
        return x + self.out(mixed).transpose(1, 2).reshape(b, c, h, w)


class Stage(nn.Module):
    """A residual block followed by the level's attention layers."""

    def __init__(self, res: ResBlock, self_attention: Attention | None, cross_attention: Attention | None):
        super().__init__()
        self.res = res
        self.self_attention = self_attention
        self.cross_attention = cross_attention

    def forward(self, x: torch.Tensor, embedding: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = self.res(x, embedding)
        if self.self_attention is not None:
            h = self.self_attention(h)
        if self.cross_attention is not None:
            h = self.cross_attention(h, context)
        return h


class NoiseLevelEmbedding(nn.Module):
    """lambda -> sin/cos(100 lambda omega_k) -> Linear -> SiLU -> Linear."""

    def __init__(self, sinusoid_dim: int, embed_dim: int):
        super().__init__()
        self.first = nn.Linear(sinusoid_dim, embed_dim)
        self.second = nn.Linear(embed_dim, embed_dim)
        half = sinusoid_dim // 2
        k = torch.arange(half, dtype=torch.float64)
        self.register_buffer("frequencies", torch.exp(-math.log(10000.0) * k / half).float(), persistent=False)

    def forward(self, log_snr: torch.Tensor) -> torch.Tensor:
        angles = (log_snr * LOG_SNR_EMBED_SCALE)[:, None] * self.frequencies[None, :]
        features = torch.cat([angles.sin(), angles.cos()], dim=1)
        return self.second(F.silu(self.first(features)))


class ClassEncoder(nn.Module):
    """tau_theta(y): label (or the null label) -> [tokens, context_dim] via table, LayerNorm, Linear."""

    def __init__(self, num_classes: int, tokens: int, context_dim: int):
        super().__init__()
        self.table = nn.Embedding(num_classes + 1, tokens * context_dim)
        self.norm = nn.LayerNorm(context_dim, eps=NORM_EPS)
        self.project = nn.Linear(context_dim, context_dim)
        self.tokens = tokens
        self.context_dim = context_dim

    def forward(self, label: torch.Tensor) -> torch.Tensor:
        flat = self.table(label)
        return self.project(self.norm(flat.reshape(label.shape[0], self.tokens, self.context_dim)))


class UNet(nn.Module):
    """eps_theta(x_t, lambda, y), built from a `UNetConfig` exactly as `UNetConfig::init` does."""

    def __init__(self, config: UNetConfig, sdpa: bool = False):
        super().__init__()
        self.config = config
        ch, g, levels, emb = config.channels, config.groups, len(config.channels), config.embed_dim

        def stage(level: int, cin: int) -> Stage:
            c = ch[level]
            return Stage(
                ResBlock(cin, c, emb, g),
                Attention(c, g, sdpa=sdpa) if level in config.self_attention_levels else None,
                Attention(c, g, config.context_dim, sdpa) if level in config.cross_attention_levels else None,
            )

        deepest = ch[-1]
        self.stem = conv3x3(config.image_channels, ch[0])
        self.noise_level = NoiseLevelEmbedding(ch[0], emb)
        self.class_encoder = ClassEncoder(config.num_classes, config.class_tokens, config.context_dim)
        self.down = nn.ModuleList(stage(l, ch[0] if l == 0 else ch[l - 1]) for l in range(levels))
        self.downsample = nn.ModuleList(conv3x3(ch[l], ch[l], stride=2) for l in range(levels - 1))
        self.mid_first = Stage(
            ResBlock(deepest, deepest, emb, g),
            Attention(deepest, g, sdpa=sdpa),
            Attention(deepest, g, config.context_dim, sdpa),
        )
        self.mid_second = ResBlock(deepest, deepest, emb, g)
        self.upsample = nn.ModuleList(conv3x3(ch[l + 1], ch[l]) for l in range(levels - 1))
        self.up = nn.ModuleList(stage(l, 2 * ch[l]) for l in range(levels))
        self.out_norm = group_norm(g, ch[0])
        self.out_conv = conv3x3(ch[0], config.image_channels)

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    def forward(self, x_t: torch.Tensor, log_snr: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        embedding = self.noise_level(log_snr)
        context = self.class_encoder(label)
        h = self.stem(x_t)
        skips = []
        for level, stage in enumerate(self.down):
            h = stage(h, embedding, context)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.mid_first(h, embedding, context)
        h = self.mid_second(h, embedding)
        for level in reversed(range(len(self.up))):
            skip = skips[level]
            if level < len(self.upsample):
                h = self.upsample[level](F.interpolate(h, size=skip.shape[2:], mode="nearest"))
            h = self.up[level](torch.cat([h, skip], dim=1), embedding, context)
        return self.out_conv(F.silu(self.out_norm(h)))


class AeBlock(nn.Module):
    """GN -> SiLU -> conv, twice, residual (the autoencoder's block: no noise-level embedding)."""

    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1 = group_norm(groups, cin)
        self.conv1 = conv3x3(cin, cout)
        self.norm2 = group_norm(groups, cout)
        self.conv2 = conv3x3(cout, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return h + (self.skip(x) if self.skip is not None else x)


class Decoder(nn.Module):
    """The autoencoder's D: [B, 4, 7, 7] -> [B, 1, 28, 28]. The encoder E only serves training of the
    autoencoder (latent UNet training runs on latents encoded once), so it is not built."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        c, levels = config.channels, len(config.channels)
        self.decoder_in = conv3x3(config.latent_channels, c[-1])
        self.decoder_blocks = nn.ModuleList(AeBlock(c[l], c[l], config.groups) for l in range(levels))
        self.decoder_up = nn.ModuleList(conv3x3(c[l + 1], c[l]) for l in range(levels - 1))
        self.decoder_norm = group_norm(config.groups, c[0])
        self.decoder_out = conv3x3(c[0], config.image_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_in(z)
        for level in reversed(range(len(self.decoder_blocks))):
            h = self.decoder_blocks[level](h)
            if level > 0:
                size = level_size(self.config.image_size, level - 1)
                h = self.decoder_up[level - 1](F.interpolate(h, size=(size, size), mode="nearest"))
        return self.decoder_out(F.silu(self.decoder_norm(h)))

    def decode_scaled(self, z: torch.Tensor) -> torch.Tensor:
        """D(z / scale): what `LoadedAutoencoder::decode_scaled` feeds the decoder."""
        return self(z * (1.0 / self.config.latent_scale))


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_networks(sdpa: bool) -> dict[str, nn.Module]:
    """The three networks, each checked against the parameter count of its Rust twin."""
    torch.manual_seed(0)
    networks = {"pixel": UNet(PIXEL_UNET, sdpa), "latent": UNet(LATENT_UNET, sdpa), "decoder": Decoder(AutoencoderConfig())}
    expected = {"pixel": PIXEL_UNET_PARAMETERS, "latent": LATENT_UNET_PARAMETERS, "decoder": DECODER_PARAMETERS}
    for name, net in networks.items():
        got = parameter_count(net)
        assert got == expected[name], f"{name}: {got} parameters, the Rust model has {expected[name]}"
    return networks


# ----------------------------------------------------------------------------------------------------
# Noise schedules and sampling plans (float64, as src/diffusion/schedule.rs and sampler.rs)
# ----------------------------------------------------------------------------------------------------


@dataclass
class NoiseSchedule:
    beta: np.ndarray
    alpha_bar: np.ndarray = field(init=False)
    one_minus_alpha_bar: np.ndarray = field(init=False)
    alpha_bar_prev: np.ndarray = field(init=False)
    beta_tilde: np.ndarray = field(init=False)
    posterior_coef_x0: np.ndarray = field(init=False)
    posterior_coef_xt: np.ndarray = field(init=False)
    log_snr: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        b = self.beta
        log_alpha_bar = np.cumsum(np.log1p(-b))
        self.alpha_bar = np.exp(log_alpha_bar)
        self.one_minus_alpha_bar = -np.expm1(log_alpha_bar)
        self.alpha_bar_prev = np.concatenate([[1.0], self.alpha_bar[:-1]])
        omp = np.concatenate([[0.0], self.one_minus_alpha_bar[:-1]])
        om = self.one_minus_alpha_bar
        self.beta_tilde = omp / om * b
        self.posterior_coef_x0 = np.sqrt(self.alpha_bar_prev) * b / om
        self.posterior_coef_xt = np.sqrt(1.0 - b) * omp / om
        self.log_snr = log_alpha_bar - np.log(om)

    @property
    def steps(self) -> int:
        return len(self.beta)

    @staticmethod
    def linear(steps: int = 1000, start: float = 1e-4, end: float = 0.02) -> "NoiseSchedule":
        return NoiseSchedule(start + (end - start) * np.arange(steps) / max(steps - 1, 1))

    @staticmethod
    def cosine(steps: int = 1000) -> "NoiseSchedule":
        def f(t: np.ndarray) -> np.ndarray:
            return np.cos((t + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * math.pi / 2) ** 2

        i = np.arange(steps, dtype=np.float64)
        return NoiseSchedule(np.minimum(1.0 - f((i + 1) / steps) / f(i / steps), COSINE_MAX_BETA))


@dataclass(frozen=True)
class Step:
    """One planned update x_t -> x_t' (src/diffusion/sampler.rs `PlannedStep`)."""

    alpha_bar: float
    log_snr: float
    coef_x0: float
    coef_xt: float
    coef_eps: float
    noise_std: float


def plan_ddim(schedule: NoiseSchedule, steps: int, eta: float = 0.0) -> list[Step]:
    """Trailing spacing: t_k = round((steps - k) T / steps), the first at t = T."""
    big_t = schedule.steps
    t_of = [math.floor((steps - k) * big_t / steps + 0.5) for k in range(steps + 1)]
    plan = []
    for t, t_prev in zip(t_of[:-1], t_of[1:]):
        i = t - 1
        ab, om = schedule.alpha_bar[i], schedule.one_minus_alpha_bar[i]
        abp, omp = (1.0, 0.0) if t_prev == 0 else (schedule.alpha_bar[t_prev - 1], schedule.one_minus_alpha_bar[t_prev - 1])
        one_minus_ratio = -math.expm1(math.log(ab) - math.log(abp))
        sigma = eta * math.sqrt(omp / om * one_minus_ratio)
        coef_eps = math.sqrt(max(omp - sigma * sigma, 0.0))
        plan.append(Step(float(ab), float(schedule.log_snr[i]), math.sqrt(abp), 0.0, coef_eps, float(sigma)))
    return plan


def plan_ddpm(schedule: NoiseSchedule) -> list[Step]:
    """Every step from T down to 1, sigma^2 = beta tilde, no noise on the last step."""
    plan = []
    for t in range(schedule.steps, 0, -1):
        i = t - 1
        sigma = 0.0 if t == 1 else math.sqrt(schedule.beta_tilde[i])
        coefs = (schedule.alpha_bar[i], schedule.log_snr[i], schedule.posterior_coef_x0[i], schedule.posterior_coef_xt[i])
        plan.append(Step(*map(float, coefs), 0.0, sigma))
    return plan


def sampler_step(step: Step, x_t: torch.Tensor, eps: torch.Tensor, bound: float, noise: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`SamplingPlan::step` with clip_x0 = true: x0_hat clipped, eps recomputed from it for DDIM.
    Returns (x_t', x0_hat)."""
    inv_sqrt_ab = 1.0 / math.sqrt(step.alpha_bar)
    x0 = (x_t * inv_sqrt_ab - eps * (math.sqrt(1.0 - step.alpha_bar) * inv_sqrt_ab)).clamp(-bound, bound)
    x_prev = x0 * step.coef_x0
    if step.coef_xt != 0.0:
        x_prev = x_prev + x_t * step.coef_xt
    if step.coef_eps != 0.0:
        eps_hat = (x_t - x0 * math.sqrt(step.alpha_bar)) * (1.0 / math.sqrt(1.0 - step.alpha_bar))
        x_prev = x_prev + eps_hat * step.coef_eps
    if step.noise_std > 0.0:
        x_prev = x_prev + torch.randn(x_t.shape, generator=noise) * step.noise_std
    return x_prev, x0


def guided_epsilon(model: UNet, x_t: torch.Tensor, log_snr: float, labels: torch.Tensor, guidance: float) -> torch.Tensor:
    """eps = eps(x, null) + w (eps(x, y) - eps(x, null)), as ONE forward over the batch [x; x]."""
    b = x_t.shape[0]
    null = torch.full((b,), model.null_class, dtype=torch.long)
    both = model(torch.cat([x_t, x_t], 0), torch.full((2 * b,), log_snr), torch.cat([labels, null], 0))
    conditional, unconditional = both[:b], both[b:]
    return unconditional + (conditional - unconditional) * guidance


def generate(model: UNet, decoder: Decoder | None, plan: list[Step], batch: int, guidance: float, seed: int = 0) -> torch.Tensor:
    """A plain (not streamed) run of `run_generate`: x_T, every step, and for a latent model D of x_T and
    of the last step's x and x0_hat (three decodes, as the app's plain run does)."""
    c, s = model.config.image_channels, model.config.image_size
    noise = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, c, s, s), generator=noise)
    labels = torch.zeros(batch, dtype=torch.long)
    bound = 1.0 if decoder is None else LATENT_X0_BOUND
    if decoder is not None:
        decoder.decode_scaled(x)
    x0 = x
    for step in plan:
        eps = guided_epsilon(model, x, step.log_snr, labels, guidance)
        x, x0 = sampler_step(step, x, eps, bound, noise)
    if decoder is not None:
        decoder.decode_scaled(x0)
        return decoder.decode_scaled(x)
    return x


# ----------------------------------------------------------------------------------------------------
# Training (src/train/ddpm.rs)
# ----------------------------------------------------------------------------------------------------


class LogSnrDistribution:
    """45 % from the linear and 45 % from the cosine schedule's lambda (t uniform, interpolated), 10 %
    uniform in [min, max]; vectorised, since per-draw Python would cost more than burn's Rust loop."""

    def __init__(self, low: float = -20.0, high: float = 10.0):
        self.tables = [NoiseSchedule.linear().log_snr, NoiseSchedule.cosine().log_snr]
        self.low, self.high = low, high

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        choice = rng.random(n)
        position = rng.uniform(0.0, len(self.tables[0]) - 1, n)
        i, frac = position.astype(np.int64), position % 1.0
        lin, cos = (t[i] * (1.0 - frac) + t[i + 1] * frac for t in self.tables)
        drawn = np.where(choice < 0.45, lin, cos).clip(self.low, self.high)
        return np.where(choice < 0.9, drawn, rng.uniform(self.low, self.high, n))


@dataclass(frozen=True)
class TrainConfig:
    """`TrainConfig` defaults (the built-in models' train_config)."""

    batch_size: int = 64
    learning_rate: float = 5e-4
    warmup_steps: int = 500
    steps: int = 30_000
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    label_dropout: float = 0.1

    def learning_rate_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        span = max(self.steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


class Trainer:
    """`DdpmTrainer::train_step` without the data loader: a fixed pool of random images stands in for
    Fashion-MNIST (pixels) or its encoded latents (the latent model)."""

    def __init__(self, model: UNet, config: TrainConfig, pool: int = 1024, seed: int = 1):
        self.model = model
        self.ema = copy.deepcopy(model).requires_grad_(False)
        self.config = config
        self.params = list(model.parameters())
        self.ema_params = list(self.ema.parameters())
        # burn's AdamWConfig defaults: beta 0.9 / 0.999, epsilon 1e-5; weight decay from the config (0).
        # PyTorch's own default implementation for CPU tensors is used (no foreach/fused forced).
        self.optimizer = torch.optim.AdamW(self.params, lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-5, weight_decay=config.weight_decay)
        self.rng = np.random.default_rng(seed)
        self.log_snr = LogSnrDistribution()
        c, s = model.config.image_channels, model.config.image_size
        self.data = torch.rand((pool, c, s, s)) * 2.0 - 1.0
        self.data_labels = torch.from_numpy(self.rng.integers(0, model.config.num_classes, pool))
        self.step_count = 0

    def clip_gradients(self) -> None:
        """burn's GradientClipping::Norm, applied to each parameter on its own:
        g <- g * min(1, clip / (||g|| + tiny))."""
        grads = [p.grad for p in self.params if p.grad is not None]
        tiny = torch.finfo(torch.float32).tiny
        for grad, norm in zip(grads, torch._foreach_norm(grads)):
            grad.mul_((self.config.grad_clip / (norm + tiny)).clamp(max=1.0))

    def step(self) -> float:
        config, b = self.config, self.config.batch_size
        index = torch.from_numpy(self.rng.integers(0, len(self.data), b))
        x0 = self.data[index]
        labels = self.data_labels[index].clone()
        labels[torch.from_numpy(self.rng.random(b) < config.label_dropout)] = self.model.null_class
        log_snr = torch.from_numpy(self.log_snr.sample(self.rng, b)).float()
        alpha_bar = torch.sigmoid(log_snr)[:, None, None, None]
        eps = torch.randn_like(x0)
        x_t = x0 * alpha_bar.sqrt() + eps * (1.0 - alpha_bar).sqrt()

        predicted = self.model(x_t, log_snr, labels)
        loss = (predicted - eps).pow(2).mean()
        loss_value = loss.item()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.clip_gradients()
        for group in self.optimizer.param_groups:
            group["lr"] = config.learning_rate_at(self.step_count)
        self.optimizer.step()
        decay = min(config.ema_decay, (1 + self.step_count) / (10 + self.step_count))
        with torch.no_grad():
            # ema <- d ema + (1 - d) theta
            torch._foreach_lerp_(self.ema_params, self.params, 1.0 - decay)
        self.step_count += 1
        return loss_value


# ----------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """How many runs of each measurement. The defaults keep one thread count under about a minute on a
    2-core machine (2 threads); --quick shrinks everything and extrapolates the samplers from a few steps."""

    forward_warmup: int = 3
    forward_runs: dict[int, int] = field(default_factory=lambda: {1: 50, 16: 10, 32: 10})
    # Timed runs of the DDIM samplers, and of the long DDPM one (the README's DDPM numbers are single runs).
    ddim_repeats: int = 3
    ddpm_repeats: int = 1
    # Steps actually run per sampler (None = all); a truncated run is scaled up to the full plan.
    ddim_steps_run: int | None = None
    ddpm_steps_run: int | None = None
    train_warmup: int = 3
    train_steps: dict[str, int] = field(default_factory=lambda: {"pixel": 8, "latent": 15})

    @staticmethod
    def quick() -> "Budget":
        return Budget(
            forward_warmup=1,
            forward_runs={1: 3, 16: 2, 32: 2},
            ddim_repeats=1,
            ddim_steps_run=5,
            ddpm_steps_run=10,
            train_warmup=1,
            train_steps={"pixel": 2, "latent": 2},
        )


def median_seconds(fn, warmup: int, runs: int) -> float:
    """Median wall time of `runs` calls after `warmup` untimed ones (the first calls pay for oneDNN's
    primitive creation and the allocator's first growth)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_generate(model: UNet, decoder: Decoder | None, plan: list[Step], steps_run: int | None, repeats: int) -> float:
    """Seconds for the whole plan at batch 16, w = 2 (median of `repeats`). With `steps_run`, only that
    many steps run and the step loop's time is scaled to the full plan (the steps cost the same)."""
    run_plan = plan if steps_run is None or steps_run >= len(plan) else plan[:steps_run]
    scale = len(plan) / len(run_plan)
    # The app's warm-up: a 2-step DDIM run first pays for the allocations.
    generate(model, decoder, plan[:2], 16, 2.0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate(model, decoder, run_plan, 16, 2.0)
        elapsed = time.perf_counter() - start
        if scale != 1.0:
            # The three decodes are not part of the step loop: time them apart so only steps are scaled.
            decode = 0.0
            if decoder is not None:
                c, s = model.config.image_channels, model.config.image_size
                z = torch.randn(16, c, s, s)
                decode = 3 * median_seconds(lambda: decoder.decode_scaled(z), 0, 3)
            elapsed = (elapsed - decode) * scale + decode
        times.append(elapsed)
    return statistics.median(times)


def time_training(model_config: UNetConfig, batch: int, warmup: int, steps: int, sdpa: bool) -> float:
    """Images per second of full training steps on a fresh model (median step time)."""
    torch.manual_seed(0)
    trainer = Trainer(UNet(model_config, sdpa), TrainConfig(batch_size=batch))
    return batch / median_seconds(trainer.step, warmup, steps)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def run_torch(threads: int, budget: Budget, sdpa: bool, log) -> dict:
    """Every measurement at one intra-op thread count, under the Rust side's key names."""
    torch.set_num_threads(threads)
    nets = build_networks(sdpa)
    pixel, latent, decoder = nets["pixel"].eval(), nets["latent"].eval(), nets["decoder"].eval()
    cosine = NoiseSchedule.cosine(1000)
    out: dict = {"torch_version": torch.__version__, "threads": threads, "device": f"cpu ({platform.processor() or platform.machine()})"}
    if budget.ddim_steps_run is not None:
        out["quick"] = True

    with torch.inference_mode():
        for b in (1, 16, 32):
            x = torch.randn(b, 1, 28, 28)
            lam = torch.linspace(-5, 5, b)
            y = torch.arange(b) % 11
            ms = 1e3 * median_seconds(lambda: pixel(x, lam, y), budget.forward_warmup, budget.forward_runs[b])
            out[f"pixel_forward_b{b}_ms"] = ms
            log(f"  [{threads} thr] pixel forward b{b}: {ms:.2f} ms")
        ddim = plan_ddim(cosine, 50)
        for key, model, dec in (("pixel_ddim50_w2_b16_plain_s", pixel, None), ("latent_ddim50_w2_b16_plain_s", latent, decoder)):
            out[key] = time_generate(model, dec, ddim, budget.ddim_steps_run, budget.ddim_repeats)
            log(f"  [{threads} thr] {key}: {out[key]:.2f} s")
        key = "latent_ddpm1000_w2_b16_plain_s"
        out[key] = time_generate(latent, decoder, plan_ddpm(cosine), budget.ddpm_steps_run, budget.ddpm_repeats)
        log(f"  [{threads} thr] {key}: {out[key]:.2f} s")

    for name, config, batch in (("pixel", PIXEL_UNET, 64), ("latent", LATENT_UNET, 128)):
        key = f"{name}_train_b{batch}_images_per_s"
        out[key] = time_training(config, batch, budget.train_warmup, budget.train_steps[name], sdpa)
        log(f"  [{threads} thr] {key}: {out[key]:.1f}")
    out["peak_rss_mib"] = peak_rss_mib()
    return out


# ----------------------------------------------------------------------------------------------------
# diffusion-lab's own numbers, and the tables
# ----------------------------------------------------------------------------------------------------


def run_diffusion_lab(binary: str, threads: int, extra_args: list[str], log) -> dict:
    """`BINARY bench --json --threads THREADS [extra]`: its stdout is one JSON object (parsed leniently:
    the last {...}). Without --threads it would use every core while PyTorch is held to `threads`."""
    command = [binary, "bench", "--json"]
    if not any(arg == "--threads" or arg.startswith("--threads=") for arg in extra_args):
        command += ["--threads", str(threads)]
    command += extra_args
    log(f"running {shlex.join(command)} ...")
    start = time.perf_counter()
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    except OSError as error:
        return {"error": f"cannot run {binary}: {error}"}
    log(f"  done in {time.perf_counter() - start:.0f} s (exit {done.returncode})")
    text = done.stdout.strip()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        first, last = text.find("{"), text.rfind("}")
        try:
            parsed = json.loads(text[first : last + 1]) if 0 <= first < last else None
        except json.JSONDecodeError:
            parsed = None
    if not isinstance(parsed, dict):
        return {"error": f"exit {done.returncode}, no JSON object on stdout", "stdout_tail": text[-2000:]}
    if done.returncode != 0:
        parsed["error"] = f"exit {done.returncode}"
    return parsed


def unit_of(key: str) -> str:
    return "images/s" if key.endswith("_images_per_s") else "ms" if key.endswith("_ms") else "s"


def fmt(value) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "—"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def time_ratio(key: str, ours, theirs) -> str:
    """ours / PyTorch in time (> 1: diffusion-lab is slower); throughputs are inverted to match."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (ours, theirs))
    if not numbers:
        return "—"
    ratio = theirs / ours if key.endswith("_images_per_s") else ours / theirs
    return f"{ratio:.2f}x"


def torch_table(results: dict[str, dict]) -> str:
    threads = list(results)
    lines = [
        "| work | " + " | ".join(f"PyTorch {t} thr" for t in threads) + " |",
        "| --- | " + " | ".join("---:" for _ in threads) + " |",
    ]
    for key in BENCH_KEYS:
        if any(key in r for r in results.values()):
            lines.append(f"| {key} ({unit_of(key)}) | " + " | ".join(fmt(results[t].get(key)) for t in threads) + " |")
    return "\n".join(lines)


def comparison_table(results: dict[str, dict], ours: dict, reference_threads: str) -> str:
    threads = list(results)
    ours_threads = ours.get("threads", "?")
    lines = [
        f"| work | " + " | ".join(f"PyTorch {t} thr" for t in threads)
        + f" | diffusion-lab ({ours_threads} thr) | ratio ours/PyTorch ({reference_threads} thr, time) |",
        "| --- | " + " | ".join("---:" for _ in threads) + " | ---: | ---: |",
    ]
    for key in BENCH_KEYS:
        theirs = results.get(reference_threads, {}).get(key)
        lines.append(
            f"| {key} ({unit_of(key)}) | "
            + " | ".join(fmt(results[t].get(key)) for t in threads)
            + f" | {fmt(ours.get(key))} | {time_ratio(key, ours.get(key), theirs)} |"
        )
    return "\n".join(lines)


def warn_if_busy(threads: int, log) -> None:
    """Timings on shared cores mean little, and worse with threads: an OpenMP team waiting at every
    barrier for a thread the scheduler parked makes 2 threads many times slower than 1."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return
    cpus = os.cpu_count() or 1
    if load + threads > cpus + 0.5:
        log(f"warning: load average {load:.1f} on {cpus} CPUs before starting; timings will be pessimistic")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="2,1", help="comma-separated torch.set_num_threads values (default 2,1)")
    parser.add_argument("--json", metavar="PATH", help="write every number here")
    parser.add_argument("--quick", action="store_true", help="smoke test: few runs, samplers extrapolated from a few steps")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each sampler (default: 3 for DDIM 50, 1 for DDPM 1000)")
    parser.add_argument("--sdpa", action="store_true", help="attention through F.scaled_dot_product_attention instead of burn's explicit softmax(QK^T)V")
    parser.add_argument("--diffusion-lab", metavar="BINARY", help="also run BINARY bench --json first and compare")
    parser.add_argument("--diffusion-lab-args", default="", help="extra arguments for BINARY bench (one shell-quoted string)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --diffusion-lab and one --threads value: N alternating rounds (ours, then PyTorch, N times); "
        "prints every round's ratios and their median",
    )
    return parser.parse_args(argv)


RATIO_KEYS = [
    "pixel_ddim50_w2_b16_plain_s",
    "latent_ddim50_w2_b16_plain_s",
    "latent_ddpm1000_w2_b16_plain_s",
    "pixel_train_b64_images_per_s",
    "latent_train_b128_images_per_s",
]


def ratio_value(key: str, ours, theirs):
    """ours / PyTorch in time (throughputs inverted), or None."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (ours, theirs))
    if not numbers:
        return None
    return theirs / ours if key.endswith("_images_per_s") else ours / theirs


def rounds_main(args, threads: int, budget, log) -> int:
    """Alternating rounds at one thread count: in each, diffusion-lab's bench then PyTorch's, so slow drift of
    the shared machine lands on both sides; the ratio of each round, then the median over rounds."""
    rounds = []
    for k in range(args.rounds):
        log(f"round {k + 1} of {args.rounds}: diffusion-lab, then PyTorch, {threads} thread(s)")
        ours = run_diffusion_lab(args.diffusion_lab, threads, shlex.split(args.diffusion_lab_args), log)
        theirs = run_torch(threads, budget, args.sdpa, log)
        rounds.append({"diffusion_lab": ours, "torch": theirs})
    lines = [
        "| work | " + " | ".join(f"round {k + 1}: ours / PyTorch = ratio" for k in range(len(rounds))) + " | median ratio |",
        "| --- | " + " | ".join("---:" for _ in rounds) + " | ---: |",
    ]
    medians = {}
    for key in RATIO_KEYS + ["pixel_ddim50_w2_b16_streaming_overhead_pct", "latent_ddim50_w2_b16_streaming_overhead_pct"]:
        cells, ratios = [], []
        for r in rounds:
            ours, theirs = r["diffusion_lab"].get(key), r["torch"].get(key)
            ratio = ratio_value(key, ours, theirs) if key in RATIO_KEYS else None
            if ratio is not None:
                ratios.append(ratio)
            cells.append(f"{fmt(ours)} / {fmt(theirs)} = {ratio:.2f}" if ratio is not None else fmt(ours))
        median = statistics.median(ratios) if ratios else None
        medians[key] = median
        lines.append(f"| {key} ({unit_of(key)}) | " + " | ".join(cells) + f" | {f'{median:.2f}' if median else '—'} |")
    table = "\n".join(lines)
    print(table)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"threads": threads, "rounds": rounds, "median_ratios": medians, "table": table}, file, indent=2)
            file.write("\n")
        log(f"wrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    budget = Budget.quick() if args.quick else Budget()
    if args.repeats is not None:
        budget = dataclasses.replace(budget, ddim_repeats=max(args.repeats, 1), ddpm_repeats=max(args.repeats, 1))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    warn_if_busy(max(threads), log)
    report: dict = {"machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}}
    nets = build_networks(args.sdpa)
    report["parameters"] = {name: parameter_count(net) for name, net in nets.items()}
    log(f"parameters match the Rust models: {report['parameters']}")
    del nets

    if args.rounds > 1:
        if not args.diffusion_lab or len(threads) != 1:
            log("--rounds needs --diffusion-lab and exactly one --threads value")
            return 2
        return rounds_main(args, threads[0], budget, log)

    # The PyTorch thread count the ratios compare against, and the one diffusion-lab is held to.
    reference_threads = 2 if 2 in threads else threads[0]
    if args.diffusion_lab:
        # Run first and alone, so the two never share the cores.
        report["diffusion_lab"] = run_diffusion_lab(
            args.diffusion_lab, reference_threads, shlex.split(args.diffusion_lab_args), log
        )

    started = time.perf_counter()
    results: dict[str, dict] = {}
    for n in threads:
        log(f"PyTorch {torch.__version__}, {n} thread(s){' (quick)' if args.quick else ''}, attention: {'sdpa' if args.sdpa else 'explicit'}")
        results[str(n)] = run_torch(n, budget, args.sdpa, log)
    report["torch"] = results
    log(f"PyTorch measurements took {time.perf_counter() - started:.0f} s")

    print(torch_table(results))
    if args.diffusion_lab:
        ours = report["diffusion_lab"]
        if "error" in ours:
            print(f"\ndiffusion-lab bench: {ours['error']}")
        table = comparison_table(results, ours, str(reference_threads))
        report["comparison_markdown"] = table
        print()
        print(table)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
            file.write("\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
