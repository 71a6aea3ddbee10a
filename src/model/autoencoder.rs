//! Latent diffusion's autoencoder (Rombach et al. 2022): an encoder E mapping a 28x28 image to a small
//! latent (4x7x7 by default) as a diagonal Gaussian, a decoder D back to pixels, and a PatchGAN
//! discriminator used only while training.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;

use super::cpu::{conv2d, group_norm_silu};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

/// Where a sampler that clips bounds x̂_0 of a latent model, in units of the scaled latent (unit variance).
/// Measured on the built-in autoencoder: |z| over all 10 000 Fashion-MNIST test images stays below 3.8
/// (99.99 % below 3.4), so 4 leaves real latents untouched while stopping the blow-up of the first steps.
pub const LATENT_X0_BOUND: f64 = 4.0;

#[derive(Config, Debug, PartialEq)]
pub struct AutoencoderConfig {
    #[config(default = 1)]
    pub image_channels: usize,
    #[config(default = 28)]
    pub image_size: usize,
    /// Channels of the latent z.
    #[config(default = 4)]
    pub latent_channels: usize,
    /// Feature channels per resolution; each level after the first halves the resolution, so
    /// three levels map 28 -> 7.
    #[config(default = "vec![32, 64, 64]")]
    pub channels: Vec<usize>,
    #[config(default = 8)]
    pub groups: usize,
    /// Multiplies z before diffusion so that the latents have unit variance, as Stable Diffusion's
    /// 0.18215 does; measured on training data after the autoencoder is trained.
    #[config(default = 1.0)]
    pub latent_scale: f64,
}

impl AutoencoderConfig {
    /// Checks what `init` relies on (see [`super::UNetConfig::validate`]).
    pub fn validate(&self) -> Result<(), String> {
        if self.channels.is_empty() {
            return Err("`channels` is empty".into());
        }
        super::check_config_sizes(&[
            ("levels", self.channels.len()),
            ("channels", self.channels.iter().copied().max().unwrap_or(0)),
            ("image_channels", self.image_channels),
            ("image_size", self.image_size),
            ("latent_channels", self.latent_channels),
        ])?;
        super::check_group_norm_levels(&self.channels, self.groups)?;
        if self.image_channels == 0 || self.image_size == 0 || self.latent_channels == 0 {
            return Err("image channels, image size and latent channels must be at least 1".into());
        }
        if !(self.latent_scale.is_finite() && self.latent_scale > 0.0) {
            return Err(format!("latent scale must be a positive number, got {}", self.latent_scale));
        }
        Ok(())
    }

    /// Side of the latent.
    pub fn latent_size(&self) -> usize {
        level_size(self.image_size, self.channels.len() - 1)
    }

    pub fn init(&self, device: &Device) -> Autoencoder {
        let levels = self.channels.len();
        let c = &self.channels;
        Autoencoder {
            encoder_in: conv3x3(self.image_channels, c[0], device),
            encoder_blocks: (0..levels)
                .map(|l| AeBlock::new(c[if l == 0 { 0 } else { l - 1 }], c[l], self.groups, device))
                .collect(),
            encoder_down: (0..levels - 1).map(|l| downsample(c[l], device)).collect(),
            encoder_norm: GroupNormConfig::new(self.groups, c[levels - 1]).init(device),
            encoder_out: conv3x3(c[levels - 1], 2 * self.latent_channels, device),
            decoder_in: conv3x3(self.latent_channels, c[levels - 1], device),
            decoder_blocks: (0..levels).map(|l| AeBlock::new(c[l], c[l], self.groups, device)).collect(),
            decoder_up: (0..levels - 1).map(|l| conv3x3(c[l + 1], c[l], device)).collect(),
            decoder_norm: GroupNormConfig::new(self.groups, c[0]).init(device),
            decoder_out: conv3x3(c[0], self.image_channels, device),
            image_size: self.image_size,
        }
    }
}

fn conv3x3(input: usize, output: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([input, output], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device)
}

fn downsample(channels: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels, channels], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// GN -> SiLU -> conv, twice, with a residual connection.
#[derive(Module, Debug)]
pub struct AeBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    skip: Option<Conv2d>,
}

impl AeBlock {
    fn new(input: usize, output: usize, groups: usize, device: &Device) -> Self {
        Self {
            norm1: GroupNormConfig::new(groups, input).init(device),
            conv1: conv3x3(input, output, device),
            norm2: GroupNormConfig::new(groups, output).init(device),
            conv2: conv3x3(output, output, device),
            skip: (input != output).then(|| Conv2dConfig::new([input, output], [1, 1]).init(device)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = conv2d(&self.conv1, group_norm_silu(&self.norm1, x.clone()));
        let h = conv2d(&self.conv2, group_norm_silu(&self.norm2, h));
        match &self.skip {
            Some(conv) => h.add(conv2d(conv, x)),
            None => h.add(x),
        }
    }
}

#[derive(Module, Debug)]
pub struct Autoencoder {
    encoder_in: Conv2d,
    encoder_blocks: Vec<AeBlock>,
    encoder_down: Vec<Conv2d>,
    encoder_norm: GroupNorm,
    encoder_out: Conv2d,
    decoder_in: Conv2d,
    decoder_blocks: Vec<AeBlock>,
    decoder_up: Vec<Conv2d>,
    decoder_norm: GroupNorm,
    decoder_out: Conv2d,
    image_size: usize,
}

/// The encoder's output: q(z | x) = N(mean, exp(log_variance)).
pub struct Posterior {
    /// [batch, latent_channels, s, s]
    pub mean: Tensor<4>,
    pub log_variance: Tensor<4>,
}

impl Posterior {
    /// z = mean + σ ε (the reparameterisation trick), with ε given.
    pub fn sample(&self, eps: Tensor<4>) -> Tensor<4> {
        self.mean.clone().add(self.log_variance.clone().mul_scalar(0.5).exp().mul(eps))
    }

    /// KL(q(z|x) || N(0, I)) = ½ (μ² + σ² - 1 - ln σ²), averaged over every latent value.
    pub fn kl(&self) -> Tensor<1> {
        let variance = self.log_variance.clone().exp();
        self.mean
            .clone()
            .powi_scalar(2)
            .add(variance)
            .sub_scalar(1.0)
            .sub(self.log_variance.clone())
            .mean()
            .mul_scalar(0.5)
    }
}

impl Autoencoder {
    /// E: [batch, channels, 28, 28] in [-1, 1] -> q(z | x).
    pub fn encode(&self, x: Tensor<4>) -> Posterior {
        let mut h = conv2d(&self.encoder_in, x);
        for (level, block) in self.encoder_blocks.iter().enumerate() {
            h = block.forward(h);
            if let Some(down) = self.encoder_down.get(level) {
                h = conv2d(down, h);
            }
        }
        let moments = conv2d(&self.encoder_out, group_norm_silu(&self.encoder_norm, h));
        let [_, two_c, ..] = moments.dims();
        let c = two_c / 2;
        Posterior {
            mean: moments.clone().narrow(1, 0, c),
            // Clamped as in Stable Diffusion's DiagonalGaussianDistribution, so exp() stays finite.
            log_variance: moments.narrow(1, c, c).clamp(-30.0, 20.0),
        }
    }

    /// D: [batch, latent_channels, s, s] -> [batch, channels, 28, 28].
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        let mut h = conv2d(&self.decoder_in, z);
        let levels = self.decoder_blocks.len();
        for level in (0..levels).rev() {
            h = self.decoder_blocks[level].forward(h);
            if level > 0 {
                // Back to the size this level had in the encoder (28 -> 14 -> 7 and back exactly).
                let size = level_size(self.image_size, level - 1);
                let options = InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([size, size]);
                h = conv2d(&self.decoder_up[level - 1], interpolate(h, options));
            }
        }
        conv2d(&self.decoder_out, group_norm_silu(&self.decoder_norm, h))
    }
}

/// Side of the feature map at `level` for an image of side `size`.
pub(crate) fn level_size(size: usize, level: usize) -> usize {
    (0..level).fold(size, |s, _| s.div_ceil(2))
}

#[derive(Config, Debug, PartialEq)]
pub struct DiscriminatorConfig {
    #[config(default = 1)]
    pub image_channels: usize,
    #[config(default = 32)]
    pub channels: usize,
}

/// PatchGAN (Isola et al. 2017): a logit per overlapping patch, so the autoencoder is pushed towards
/// locally realistic texture rather than a blurry average.
#[derive(Module, Debug)]
pub struct Discriminator {
    conv1: Conv2d,
    conv2: Conv2d,
    norm2: GroupNorm,
    out: Conv2d,
}

impl DiscriminatorConfig {
    pub fn init(&self, device: &Device) -> Discriminator {
        let c = self.channels;
        let strided = |i, o| {
            Conv2dConfig::new([i, o], [4, 4])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Discriminator {
            conv1: strided(self.image_channels, c),
            conv2: strided(c, 2 * c),
            norm2: GroupNormConfig::new(8, 2 * c).init(device),
            out: conv3x3(2 * c, 1, device),
        }
    }
}

impl Discriminator {
    /// [batch, channels, 28, 28] -> [batch, 1, 7, 7] patch logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = leaky_relu(self.conv1.forward(x), 0.2);
        let h = leaky_relu(self.norm2.forward(self.conv2.forward(h)), 0.2);
        self.out.forward(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_round_trip() {
        let device = Device::flex();
        let config = AutoencoderConfig::new().with_channels(vec![8, 16, 16]).with_groups(4);
        assert_eq!(config.latent_size(), 7);
        let ae = config.init(&device);
        let x = Tensor::<4>::zeros([2, 1, 28, 28], &device);
        let posterior = ae.encode(x);
        assert_eq!(posterior.mean.dims(), [2, 4, 7, 7]);
        let z = posterior.sample(Tensor::zeros([2, 4, 7, 7], &device));
        assert_eq!(ae.decode(z).dims(), [2, 1, 28, 28]);
        let d = DiscriminatorConfig::new().with_channels(8).init(&device);
        assert_eq!(d.forward(Tensor::zeros([2, 1, 28, 28], &device)).dims(), [2, 1, 7, 7]);
    }

    #[test]
    fn kl_is_zero_for_the_prior_and_positive_otherwise() {
        let device = Device::flex();
        let zero = Tensor::<4>::zeros([1, 1, 2, 2], &device);
        let prior = Posterior { mean: zero.clone(), log_variance: zero.clone() };
        assert!(prior.kl().into_scalar::<f32>().abs() < 1e-7);
        let shifted = Posterior { mean: zero.clone().add_scalar(2.0), log_variance: zero };
        // ½ μ² = 2 for μ = 2, σ = 1.
        assert!((shifted.kl().into_scalar::<f32>() - 2.0).abs() < 1e-5);
    }
}
