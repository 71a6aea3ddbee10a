//! Embeddings of what the UNet is conditioned on: the noise level λ and the class label y.

use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;

/// λ is multiplied by this before the sinusoids, so that λ's useful range (about -20..10) spans as
/// many periods of the fastest frequency as integer timesteps 0..1000 do in Ho et al.'s embedding.
const LOG_SNR_EMBED_SCALE: f64 = 100.0;

/// The classic transformer frequencies: sin(λ s ω_k), cos(λ s ω_k), ω_k = 10000^(-k / (dim/2)).
pub fn sinusoidal_embedding(log_snr: Tensor<1>, dim: usize) -> Tensor<2> {
    let half = dim / 2;
    let device = log_snr.device();
    let frequencies: Vec<f32> = (0..half).map(|k| (-(10000f64.ln()) * k as f64 / half as f64).exp() as f32).collect();
    let frequencies = Tensor::<1>::from_data(TensorData::new(frequencies, [half]), &device);
    // [batch, 1] * [1, half] -> [batch, half]
    let angles = log_snr.mul_scalar(LOG_SNR_EMBED_SCALE).unsqueeze_dim::<2>(1).mul(frequencies.unsqueeze_dim(0));
    Tensor::cat(vec![angles.clone().sin(), angles.cos()], 1)
}

#[derive(Config, Debug)]
pub struct NoiseLevelEmbeddingConfig {
    /// Size of the sinusoidal features.
    pub sinusoid_dim: usize,
    /// Size of the embedding the residual blocks receive.
    pub embed_dim: usize,
}

/// λ -> sinusoids -> MLP: the vector every residual block adds to its features.
#[derive(Module, Debug)]
pub struct NoiseLevelEmbedding {
    first: Linear,
    second: Linear,
    sinusoid_dim: usize,
}

impl NoiseLevelEmbeddingConfig {
    pub fn init(&self, device: &Device) -> NoiseLevelEmbedding {
        NoiseLevelEmbedding {
            first: LinearConfig::new(self.sinusoid_dim, self.embed_dim).init(device),
            second: LinearConfig::new(self.embed_dim, self.embed_dim).init(device),
            sinusoid_dim: self.sinusoid_dim,
        }
    }
}

impl NoiseLevelEmbedding {
    /// [batch] -> [batch, embed_dim]
    pub fn forward(&self, log_snr: Tensor<1>) -> Tensor<2> {
        let features = sinusoidal_embedding(log_snr, self.sinusoid_dim);
        self.second.forward(silu(self.first.forward(features)))
    }
}

#[derive(Config, Debug)]
pub struct ClassEncoderConfig {
    pub num_classes: usize,
    /// How many context tokens τ_θ(y) gives each class; cross-attention attends over them.
    pub tokens: usize,
    pub context_dim: usize,
}

/// τ_θ(y): a class label (or the "no class" token, index `num_classes`) to a short sequence of context
/// vectors, the keys and values of the UNet's cross-attention.
#[derive(Module, Debug)]
pub struct ClassEncoder {
    table: Embedding,
    norm: LayerNorm,
    project: Linear,
    tokens: usize,
    context_dim: usize,
}

impl ClassEncoderConfig {
    pub fn init(&self, device: &Device) -> ClassEncoder {
        ClassEncoder {
            table: EmbeddingConfig::new(self.num_classes + 1, self.tokens * self.context_dim).init(device),
            norm: LayerNormConfig::new(self.context_dim).init(device),
            project: LinearConfig::new(self.context_dim, self.context_dim).init(device),
            tokens: self.tokens,
            context_dim: self.context_dim,
        }
    }
}

impl ClassEncoder {
    /// [batch] labels -> [batch, tokens, context_dim]
    pub fn forward(&self, class: Tensor<1, Int>) -> Tensor<3> {
        let [batch] = class.dims();
        // [batch, 1] -> [batch, 1, tokens * context_dim] -> [batch, tokens, context_dim]
        let flat = self.table.forward(class.unsqueeze_dim(1));
        let tokens = flat.reshape([batch, self.tokens, self.context_dim]);
        self.project.forward(self.norm.forward(tokens))
    }
}
