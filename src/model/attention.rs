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
        self.forward_inner(x, context, false).0
    }

    /// The forward pass and where it looked: the attention weights softmax(Q Kᵀ / sqrt(d)),
    /// [batch, heads, h*w, keys], which sum to 1 over the keys (the context's tokens for cross-attention)
    /// at every position and head.
    pub fn forward_with_weights(&self, x: Tensor<4>, context: Option<Tensor<3>>) -> (Tensor<4>, Tensor<4>) {
        let (out, weights) = self.forward_inner(x, context, true);
        match weights {
            Some(weights) => (out, weights),
            None => unreachable!("the weights were asked for"),
        }
    }

    fn forward_inner(&self, x: Tensor<4>, context: Option<Tensor<3>>, want: bool) -> (Tensor<4>, Option<Tensor<4>>) {
        let [batch, channels, height, width] = x.dims();
        // [batch, channels, h, w] -> [batch, channels, h*w]
        let normed = super::cpu::group_norm(&self.norm, x.clone()).reshape([batch, channels, height * width]);
        let layer = super::cpu::AttentionLayer {
            query: &self.query,
            key: &self.key,
            value: &self.value,
            out: &self.out,
            heads: self.heads,
        };
        // The CPU's fused kernel where it applies (README: Speed), burn's operations elsewhere.
        let (out, weights) = match super::cpu::attention(&layer, normed, context, want) {
            Ok(fused) => (fused.out, fused.weights),
            Err((normed, context)) => {
                let (out, weights) = self.core(normed, context);
                (out, want.then_some(weights))
            }
        };
        (x.add(out.reshape([batch, channels, height, width])), weights)
    }

    /// W_oᵀ softmax(Q Kᵀ / √d) V + b_o with burn's operations: [batch, channels, h*w] and the weights.
    fn core(&self, normed: Tensor<3>, context: Option<Tensor<3>>) -> (Tensor<3>, Tensor<4>) {
        let [batch, channels, positions] = normed.dims();
        // [batch, channels, h*w] -> [batch, h*w, channels]
        let tokens = normed.swap_dims(1, 2);
        let source = context.unwrap_or_else(|| tokens.clone());
        let q = self.split_heads(self.query.forward(tokens));
        let k = self.split_heads(self.key.forward(source.clone()));
        let v = self.split_heads(self.value.forward(source));
        let head_dim = channels / self.heads;
        // [batch, heads, h*w, keys]
        let weights = softmax(q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (head_dim as f64).sqrt()), 3);
        // [batch, heads, h*w, head_dim] -> [batch, h*w, channels]
        let mixed = weights.clone().matmul(v).swap_dims(1, 2).reshape([batch, positions, channels]);
        (self.out.forward(mixed).swap_dims(1, 2), weights)
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

    /// The CPU kernel's output, weights and every gradient (the input, the context, the eight projection
    /// parameters) equal burn's operations', for self- and cross-attention.
    #[test]
    fn the_fused_kernel_matches_burns_operations_and_gradients() {
        let device = Device::flex().autodiff();
        let mut noise = crate::diffusion::NoiseSource::new(11);
        let values = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
        for (channels, context_dim, batch, positions) in [
            (64, None, 3, 49),
            (64, Some(16), 5, 20),
            (32, None, 6, 9),
            // Groups of images side by side in the projections.
            (32, None, 39, 16),
            (64, Some(16), 19, 49),
        ] {
            let config = AttentionConfig { channels, context_dim, groups: 8 };
            let attention = config.init(&device);
            let what = format!("{channels} channels, context {context_dim:?}, batch {batch}, {positions} positions");
            let normed = noise.tensor::<3>([batch, channels, positions], &device).require_grad();
            let context = context_dim.map(|d| noise.tensor::<3>([batch, 5, d], &device).mul_scalar(2.0).require_grad());
            let layer = crate::model::cpu::AttentionLayer {
                query: &attention.query,
                key: &attention.key,
                value: &attention.value,
                out: &attention.out,
                heads: attention.heads,
            };
            let fused = crate::model::cpu::attention(&layer, normed.clone(), context.clone(), true)
                .unwrap_or_else(|_| panic!("{what}: the kernel applies"));
            let (reference, reference_weights) = attention.core(normed.clone(), context.clone());
            let flat = |t: Tensor<3>| values(t.flatten(0, 2));
            let close = |ours: &[f32], theirs: &[f32], name: &str| {
                let scale = theirs.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let worst = ours
                    .iter()
                    .zip(theirs)
                    .map(|(a, b)| if a.is_nan() != b.is_nan() { f32::INFINITY } else { (a - b).abs() })
                    .fold(0.0, f32::max);
                assert_eq!(ours.len(), theirs.len(), "{what}: {name} sizes");
                assert!(worst / scale < 1e-4, "{what}: {name} off by {worst} (scale {scale})");
            };
            close(&flat(fused.out.clone()), &flat(reference.clone()), "output");
            let weights = fused.weights.expect("asked for");
            close(&values(weights.flatten(0, 3)), &values(reference_weights.flatten(0, 3)), "weights");
            let loss_weights = noise.tensor::<3>([batch, channels, positions], &device);
            let grads_ours = fused.out.mul(loss_weights.clone()).sum().backward();
            let grads_ref = reference.mul(loss_weights).sum().backward();
            let grad = |t: &Tensor<3>, g: &burn::tensor::Gradients| flat(t.grad(g).expect("a gradient"));
            close(&grad(&normed, &grads_ours), &grad(&normed, &grads_ref), "∂x");
            if let Some(c) = &context {
                close(&grad(c, &grads_ours), &grad(c, &grads_ref), "∂context");
            }
            for (name, linear) in
                [("q", &attention.query), ("k", &attention.key), ("v", &attention.value), ("o", &attention.out)]
            {
                let w = linear.weight.val();
                let b = linear.bias.as_ref().unwrap().val();
                let pick = |g: &burn::tensor::Gradients| {
                    (values(w.grad(g).expect("∂W").flatten(0, 1)), values(b.grad(g).expect("∂b")))
                };
                let ((w_ours, b_ours), (w_ref, b_ref)) = (pick(&grads_ours), pick(&grads_ref));
                close(&w_ours, &w_ref, &format!("∂W_{name}"));
                close(&b_ours, &b_ref, &format!("∂b_{name}"));
            }
        }
    }

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
