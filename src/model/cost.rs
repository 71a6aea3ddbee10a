//! What a network costs: parameters and floating-point operations of one forward pass, counted from
//! its config layer by layer (the same walk as its `init`), so that the pixel and the latent model can
//! be compared on paper as well as by the clock.
//!
//! FLOPs count 2 per multiply-add of convolutions, linear layers and attention's two matrix products;
//! normalisation, activations, softmax, additions and resampling are left out (a few percent here).

use super::autoencoder::{AutoencoderConfig, level_size};
use super::unet::UNetConfig;

/// Parameters and FLOPs of one forward pass of one image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub parameters: usize,
    pub flops: u64,
}

impl Cost {
    /// A k x k convolution with bias producing an `out_h` x `out_w` map.
    fn conv(&mut self, k: usize, input: usize, output: usize, out_h: usize, out_w: usize) {
        self.parameters += k * k * input * output + output;
        self.flops += 2 * (k * k * input * output * out_h * out_w) as u64;
    }

    /// A linear layer with bias applied to `tokens` vectors.
    fn linear(&mut self, input: usize, output: usize, tokens: usize) {
        self.parameters += input * output + output;
        self.flops += 2 * (input * output * tokens) as u64;
    }

    /// GroupNorm or LayerNorm: a scale and a shift per channel.
    fn norm(&mut self, channels: usize) {
        self.parameters += 2 * channels;
    }

    /// GN -> conv, (+ embedding), GN -> conv, with a 1x1 skip where the channels change.
    fn res_block(&mut self, input: usize, output: usize, embed_dim: Option<usize>, h: usize, w: usize) {
        self.norm(input);
        self.conv(3, input, output, h, w);
        if let Some(embed_dim) = embed_dim {
            self.linear(embed_dim, output, 1);
        }
        self.norm(output);
        self.conv(3, output, output, h, w);
        if input != output {
            self.conv(1, input, output, h, w);
        }
    }

    /// Q from the `h*w` pixels, K and V from `keys` vectors of `kv_dim`, one output projection.
    fn attention(&mut self, channels: usize, kv_dim: usize, keys: usize, h: usize, w: usize) {
        let pixels = h * w;
        self.norm(channels);
        self.linear(channels, channels, pixels);
        self.linear(kv_dim, channels, keys);
        self.linear(kv_dim, channels, keys);
        self.linear(channels, channels, pixels);
        // Q Kᵀ and weights · V, summed over the heads: pixels x keys x channels multiply-adds each.
        self.flops += 2 * 2 * (pixels * keys * channels) as u64;
    }
}

impl UNetConfig {
    /// ε_θ for one `height` x `width` image (one network evaluation: classifier-free guidance
    /// needs two per sampling step).
    pub fn cost(&self, height: usize, width: usize) -> Cost {
        let mut cost = Cost::default();
        let c = &self.channels;
        let levels = c.len();
        let embed_dim = self.embed_dim();
        let sizes: Vec<(usize, usize)> = (0..levels).map(|l| (level_size(height, l), level_size(width, l))).collect();
        let keys = self.context_tokens();

        // λ embedding (sinusoids -> MLP) and τ_θ(y): a class's table -> LayerNorm -> projection, or a
        // prompt's transformer (its FLOPs are a few per cent of one 7x7 cross-attention: left out).
        cost.linear(c[0], embed_dim, 1);
        cost.linear(embed_dim, embed_dim, 1);
        match &self.text {
            Some(text) => cost.parameters += text.parameter_count(self.context_dim),
            None => {
                cost.parameters += (self.num_classes + 1) * self.class_tokens * self.context_dim;
                cost.norm(self.context_dim);
                cost.linear(self.context_dim, self.context_dim, self.class_tokens);
            }
        }

        let (h0, w0) = sizes[0];
        cost.conv(3, self.image_channels, c[0], h0, w0);
        let stage = |cost: &mut Cost, level: usize, input: usize| {
            let (h, w) = sizes[level];
            cost.res_block(input, c[level], Some(embed_dim), h, w);
            if self.self_attention_levels.contains(&level) {
                cost.attention(c[level], c[level], h * w, h, w);
            }
            if self.cross_attention_levels.contains(&level) {
                cost.attention(c[level], self.context_dim, keys, h, w);
            }
        };
        for level in 0..levels {
            stage(&mut cost, level, if level == 0 { c[0] } else { c[level - 1] });
            if level + 1 < levels {
                let (h, w) = sizes[level + 1];
                cost.conv(3, c[level], c[level], h, w);
            }
        }
        let deepest = c[levels - 1];
        let (hd, wd) = sizes[levels - 1];
        cost.res_block(deepest, deepest, Some(embed_dim), hd, wd);
        cost.attention(deepest, deepest, hd * wd, hd, wd);
        cost.attention(deepest, self.context_dim, keys, hd, wd);
        cost.res_block(deepest, deepest, Some(embed_dim), hd, wd);
        for level in (0..levels).rev() {
            if level + 1 < levels {
                let (h, w) = sizes[level];
                cost.conv(3, c[level + 1], c[level], h, w);
            }
            stage(&mut cost, level, 2 * c[level]);
        }
        cost.norm(c[0]);
        cost.conv(3, c[0], self.image_channels, h0, w0);
        cost
    }
}

impl AutoencoderConfig {
    /// Parameters of E and D, and the FLOPs of one decode D(z) (what sampling a latent model adds).
    pub fn decoder_cost(&self) -> Cost {
        let c = &self.channels;
        let levels = c.len();
        let sizes: Vec<usize> = (0..levels).map(|l| level_size(self.image_size, l)).collect();
        let mut cost = Cost::default();
        let last = levels - 1;
        cost.conv(3, self.latent_channels, c[last], sizes[last], sizes[last]);
        for level in (0..levels).rev() {
            cost.res_block(c[level], c[level], None, sizes[level], sizes[level]);
            if level > 0 {
                cost.conv(3, c[level], c[level - 1], sizes[level - 1], sizes[level - 1]);
            }
        }
        cost.norm(c[0]);
        cost.conv(3, c[0], self.image_channels, sizes[0], sizes[0]);
        cost
    }

    /// Parameters of the encoder E (its FLOPs are not part of sampling).
    pub fn encoder_parameters(&self) -> usize {
        let c = &self.channels;
        let levels = c.len();
        let mut cost = Cost::default();
        cost.conv(3, self.image_channels, c[0], 1, 1);
        for level in 0..levels {
            cost.res_block(if level == 0 { c[0] } else { c[level - 1] }, c[level], None, 1, 1);
            if level + 1 < levels {
                cost.conv(3, c[level], c[level], 1, 1);
            }
        }
        cost.norm(c[levels - 1]);
        cost.conv(3, c[levels - 1], 2 * self.latent_channels, 1, 1);
        cost.parameters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::prelude::*;

    /// The walk above is only worth its numbers if it visits the layers `init` builds: the parameter
    /// counts must agree exactly.
    #[test]
    fn unet_parameters_match_the_built_module() {
        let device = Device::flex();
        let pixel = UNetConfig::new();
        let latent = UNetConfig::new().with_image_channels(4).with_image_size(7).with_channels(vec![64, 128]);
        for config in [UNetConfig::tiny(), pixel, latent] {
            let built = config.init(&device).num_params();
            assert_eq!(config.cost(28, 28).parameters, built, "{config:?}");
        }
    }

    #[test]
    fn autoencoder_parameters_match_the_built_module() {
        let device = Device::flex();
        let config = AutoencoderConfig::new();
        let built = config.init(&device).num_params();
        assert_eq!(config.decoder_cost().parameters + config.encoder_parameters(), built);
    }

    #[test]
    fn flops_follow_the_resolution() {
        let config = UNetConfig::new();
        let full = config.cost(28, 28).flops;
        let half = config.cost(14, 14).flops;
        // Convolutions scale with the pixels (4x); attention over pixels scales faster; so 3.5x..5x.
        assert!(full > 3 * half + half / 2 && full < 5 * half, "{full} vs {half}");
        // One 3x3 conv 32 -> 32 at 28x28 alone is 14.5 MFLOP; the whole UNet is far more.
        assert!(full > 100_000_000);
    }
}
