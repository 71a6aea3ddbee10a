//! Multi-head attention over the pixels of a feature map: self-attention (Q, K, V from the image) and
//! cross-attention (Q from the image, K and V from the class context τ_θ(y)).

use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// Channels per attention head.
pub const HEAD_DIM: usize = 32;

#[derive(Config, Debug)]
pub struct AttentionConfig {
    pub channels: usize,
    /// Size of the context vectors; `None` makes it self-attention.
    pub context_dim: Option<usize>,
    pub groups: usize,
}

/// x + W_o · softmax(Q Kᵀ / sqrt(d)) V, with Q = W_q GN(x) and K, V from GN(x) or from the context.
#[derive(Module, Debug)]
pub struct Attention {
    norm: GroupNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    heads: usize,
}

impl AttentionConfig {
    pub fn init(&self, device: &Device) -> Attention {
        let kv_dim = self.context_dim.unwrap_or(self.channels);
        Attention {
            norm: GroupNormConfig::new(self.groups, self.channels).init(device),
            query: LinearConfig::new(self.channels, self.channels).init(device),
            key: LinearConfig::new(kv_dim, self.channels).init(device),
            value: LinearConfig::new(kv_dim, self.channels).init(device),
            out: LinearConfig::new(self.channels, self.channels).init(device),
            heads: (self.channels / HEAD_DIM).max(1),
        }
    }
}

impl Attention {
    /// `x`: [batch, channels, h, w]; `context`: [batch, tokens, context_dim] for cross-attention.
    pub fn forward(&self, x: Tensor<4>, context: Option<Tensor<3>>) -> Tensor<4> {
        self.forward_with_weights(x, context).0
    }

    /// The forward pass and where it looked: the attention weights softmax(Q Kᵀ / sqrt(d)),
    /// [batch, heads, h*w, keys], which sum to 1 over the keys (the context's tokens for cross-attention)
    /// at every position and head. Computed by every forward pass anyway; returning them costs nothing.
    pub fn forward_with_weights(&self, x: Tensor<4>, context: Option<Tensor<3>>) -> (Tensor<4>, Tensor<4>) {
        let [batch, channels, height, width] = x.dims();
        // [batch, channels, h, w] -> [batch, h*w, channels]
        let tokens =
            super::cpu::group_norm(&self.norm, x.clone()).reshape([batch, channels, height * width]).swap_dims(1, 2);
        let source = context.unwrap_or_else(|| tokens.clone());
        let q = self.split_heads(self.query.forward(tokens));
        let k = self.split_heads(self.key.forward(source.clone()));
        let v = self.split_heads(self.value.forward(source));
        let head_dim = channels / self.heads;
        // [batch, heads, h*w, keys]
        let weights = softmax(q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (head_dim as f64).sqrt()), 3);
        // [batch, heads, h*w, head_dim] -> [batch, h*w, channels]
        let mixed = weights.clone().matmul(v).swap_dims(1, 2).reshape([batch, height * width, channels]);
        let out = self.out.forward(mixed).swap_dims(1, 2).reshape([batch, channels, height, width]);
        (x.add(out), weights)
    }

    /// [batch, n, channels] -> [batch, heads, n, head_dim]
    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [batch, n, channels] = x.dims();
        x.reshape([batch, n, self.heads, channels / self.heads]).swap_dims(1, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cross-attention's weights are a distribution over the context's tokens at every position and head,
    /// and the forward pass is the one that uses them.
    #[test]
    fn cross_attention_weights_sum_to_one_over_the_tokens() {
        let device = Device::flex();
        let config = AttentionConfig { channels: 64, context_dim: Some(16), groups: 8 };
        let attention = config.init(&device);
        let mut noise = crate::diffusion::NoiseSource::new(3);
        let x = noise.tensor::<4>([2, 64, 7, 7], &device);
        let context = noise.tensor::<3>([2, 4, 16], &device).mul_scalar(3.0);
        let (out, weights) = attention.forward_with_weights(x.clone(), Some(context.clone()));
        assert_eq!(weights.dims(), [2, 2, 49, 4], "[batch, heads, positions, tokens]");
        let sums: Vec<f32> = weights.clone().sum_dim(3).into_data().try_to_vec().unwrap();
        assert_eq!(sums.len(), 2 * 2 * 49);
        for (k, s) in sums.iter().enumerate() {
            assert!((s - 1.0).abs() < 1e-5, "position {k}: weights sum to {s}");
        }
        let minimum: f32 = weights.min().into_scalar();
        assert!(minimum >= 0.0, "weights are probabilities, min {minimum}");
        let plain: Vec<f32> = attention.forward(x, Some(context)).into_data().try_to_vec().unwrap();
        assert_eq!(plain, out.into_data().try_to_vec::<f32>().unwrap());
    }
}
