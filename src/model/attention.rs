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
        let mixed = weights.matmul(v).swap_dims(1, 2).reshape([batch, height * width, channels]);
        let out = self.out.forward(mixed).swap_dims(1, 2).reshape([batch, channels, height, width]);
        x.add(out)
    }

    /// [batch, n, channels] -> [batch, heads, n, head_dim]
    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [batch, n, channels] = x.dims();
        x.reshape([batch, n, self.heads, channels / self.heads]).swap_dims(1, 2)
    }
}
