//! ε_θ(x_t, λ, y): the noise-prediction UNet, conditioned on the noise level λ (log-SNR) and, by
//! cross-attention, on y: a class (four learned tokens per class) or a prompt (one token per word, from the
//! text encoder).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::attention::{Attention, AttentionConfig};
use super::cpu::{conv2d, group_norm_silu};
use super::embedding::{ClassEncoder, ClassEncoderConfig, NoiseLevelEmbedding, NoiseLevelEmbeddingConfig};
use super::text_encoder::{TextEncoder, TextEncoderConfig};
use crate::diffusion::Objective;

#[derive(Config, Debug, PartialEq)]
pub struct UNetConfig {
    /// Channels of the image (1 for Fashion-MNIST, 4 for the autoencoder's latent).
    #[config(default = 1)]
    pub image_channels: usize,
    /// Height and width the model is trained on (shown in the UI; the network itself takes any size).
    #[config(default = 28)]
    pub image_size: usize,
    /// Feature channels per resolution level; each level after the first halves the resolution.
    #[config(default = "vec![32, 64, 128]")]
    pub channels: Vec<usize>,
    /// Levels (indices into `channels`) whose blocks have self-attention.
    #[config(default = "vec![2]")]
    pub self_attention_levels: Vec<usize>,
    /// Levels whose blocks attend to the class context τ_θ(y).
    #[config(default = "vec![1, 2]")]
    pub cross_attention_levels: Vec<usize>,
    #[config(default = 10)]
    pub num_classes: usize,
    /// Context tokens per class in τ_θ(y).
    #[config(default = 4)]
    pub class_tokens: usize,
    #[config(default = 64)]
    pub context_dim: usize,
    /// GroupNorm groups.
    #[config(default = 8)]
    pub groups: usize,
    /// A text model: τ_θ is this text encoder over a prompt's words instead of the class table (classes
    /// still work, as their class prompts).
    #[config(default = "None")]
    pub text: Option<TextEncoderConfig>,
    /// What the network predicts (ε, x_0, v or the flow velocity); checkpoints from before objectives
    /// existed have no such field and are ε models.
    #[config(default = "Objective::Eps")]
    pub objective: Objective,
}

/// GN -> SiLU -> conv, plus the noise-level embedding, twice, with a residual connection.
#[derive(Module, Debug)]
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    embed: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    skip: Option<Conv2d>,
}

fn conv3x3(input: usize, output: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([input, output], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device)
}

impl ResBlock {
    fn new(input: usize, output: usize, embed_dim: usize, groups: usize, device: &Device) -> Self {
        Self {
            norm1: GroupNormConfig::new(groups, input).init(device),
            conv1: conv3x3(input, output, device),
            embed: LinearConfig::new(embed_dim, output).init(device),
            norm2: GroupNormConfig::new(groups, output).init(device),
            conv2: conv3x3(output, output, device),
            skip: (input != output).then(|| Conv2dConfig::new([input, output], [1, 1]).init(device)),
        }
    }

    /// x: [batch, in, h, w], embedding: [batch, embed_dim] -> [batch, out, h, w]
    fn forward(&self, x: Tensor<4>, embedding: Tensor<2>) -> Tensor<4> {
        let h = conv2d(&self.conv1, group_norm_silu(&self.norm1, x.clone()));
        // [batch, out] -> [batch, out, 1, 1]
        let h = h.add(self.embed.forward(silu(embedding)).unsqueeze_dims(&[2, 3]));
        let h = conv2d(&self.conv2, group_norm_silu(&self.norm2, h));
        let skip = match &self.skip {
            Some(conv) => conv2d(conv, x),
            None => x,
        };
        h.add(skip)
    }
}

/// A residual block followed by the level's attention layers.
#[derive(Module, Debug)]
pub struct Stage {
    res: ResBlock,
    self_attention: Option<Attention>,
    cross_attention: Option<Attention>,
}

impl Stage {
    /// `record`: where to keep the cross-attention weights, named `part` (nothing is kept without it).
    fn forward(
        &self,
        x: Tensor<4>,
        embedding: Tensor<2>,
        context: &Tensor<3>,
        record: &mut Option<&mut Vec<CrossAttentionWeights>>,
        part: &str,
    ) -> Tensor<4> {
        let mut h = self.res.forward(x, embedding);
        if let Some(attention) = &self.self_attention {
            h = attention.forward(h, None);
        }
        if let Some(attention) = &self.cross_attention {
            let [_, _, height, width] = h.dims();
            h = match record.as_mut() {
                Some(record) => {
                    let (out, weights) = attention.forward_with_weights(h, Some(context.clone()));
                    record.push(CrossAttentionWeights {
                        layer: format!("{part} {height}x{width}"),
                        height,
                        width,
                        weights,
                    });
                    out
                }
                None => attention.forward(h, Some(context.clone())),
            };
        }
        h
    }
}

/// One cross-attention layer's weights in a forward pass: from every position of its feature map to each
/// of τ_θ(y)'s tokens.
#[derive(Clone, Debug)]
pub struct CrossAttentionWeights {
    /// Where in the UNet: "down 14x14", "middle 7x7", "up 14x14", …
    pub layer: String,
    pub height: usize,
    pub width: usize,
    /// [batch, heads, height * width, tokens], summing to 1 over the tokens.
    pub weights: Tensor<4>,
}

#[derive(Module, Debug)]
pub struct UNet {
    stem: Conv2d,
    noise_level: NoiseLevelEmbedding,
    /// τ_θ of a class model; `None` for a text model.
    class_encoder: Option<ClassEncoder>,
    /// τ_θ of a text model.
    text_encoder: Option<TextEncoder>,
    down: Vec<Stage>,
    downsample: Vec<Conv2d>,
    mid_first: Stage,
    mid_second: ResBlock,
    upsample: Vec<Conv2d>,
    up: Vec<Stage>,
    out_norm: GroupNorm,
    out_conv: Conv2d,
    num_classes: usize,
    /// What `forward` predicts; samplers read it through [`Objective::conversion`].
    #[module(skip)]
    objective: Objective,
}

impl UNetConfig {
    /// A UNet of a few thousand parameters with every kind of block (two levels, self- and
    /// cross-attention): for tests and quick smoke runs, not for real samples.
    pub fn tiny() -> Self {
        Self::new()
            .with_channels(vec![8, 16])
            .with_self_attention_levels(vec![1])
            .with_cross_attention_levels(vec![1])
            .with_groups(4)
            .with_context_dim(8)
            .with_class_tokens(2)
    }

    /// Checks what `init` and `forward` rely on, so that a damaged or hand-written config is an error
    /// here instead of a panic deep inside burn.
    pub fn validate(&self) -> Result<(), String> {
        if self.channels.is_empty() {
            return Err("`channels` is empty: the UNet needs at least one level".into());
        }
        super::check_config_sizes(&[
            ("levels", self.channels.len()),
            ("channels", self.channels.iter().copied().max().unwrap_or(0)),
            ("image_channels", self.image_channels),
            ("image_size", self.image_size),
            ("num_classes", self.num_classes),
            ("class_tokens", self.class_tokens),
            ("context_dim", self.context_dim),
        ])?;
        if let Some(text) = &self.text {
            text.validate(self.context_dim).map_err(|e| format!("text encoder: {e}"))?;
        }
        super::check_group_norm_levels(&self.channels, self.groups)?;
        for (name, value) in [
            ("image_channels", self.image_channels),
            ("image_size", self.image_size),
            ("num_classes", self.num_classes),
            ("class_tokens", self.class_tokens),
            ("context_dim", self.context_dim),
        ] {
            if value == 0 {
                return Err(format!("`{name}` must be at least 1"));
            }
        }
        if !self.channels[0].is_multiple_of(2) {
            return Err(format!(
                "the first level's channels ({}) must be even (the noise-level sinusoids)",
                self.channels[0]
            ));
        }
        let levels = self.channels.len();
        if let Some(l) = self.self_attention_levels.iter().chain(&self.cross_attention_levels).find(|l| **l >= levels) {
            return Err(format!("attention at level {l}, but the UNet has {levels} levels"));
        }
        for &c in &self.channels {
            let heads = (c / super::attention::HEAD_DIM).max(1);
            if c % heads != 0 {
                return Err(format!("channels {c} cannot be split into {heads} attention heads"));
            }
        }
        Ok(())
    }

    /// Weights and biases of every layer `init` builds (counted from the config, nothing allocated).
    pub fn parameter_count(&self) -> usize {
        self.cost(1, 1).parameters
    }

    /// Context tokens cross-attention attends over: a class's tokens or a prompt's.
    pub fn context_tokens(&self) -> usize {
        self.text.as_ref().map_or(self.class_tokens, |t| t.context_tokens)
    }

    /// The size of the noise-level embedding every residual block receives.
    pub fn embed_dim(&self) -> usize {
        4 * self.channels[0]
    }

    pub fn init(&self, device: &Device) -> UNet {
        let embed_dim = self.embed_dim();
        let levels = self.channels.len();
        let stage = |level: usize, input: usize| Stage {
            res: ResBlock::new(input, self.channels[level], embed_dim, self.groups, device),
            self_attention: self
                .self_attention_levels
                .contains(&level)
                .then(|| AttentionConfig::new(self.channels[level], self.groups).init(device)),
            cross_attention: self.cross_attention_levels.contains(&level).then(|| {
                AttentionConfig::new(self.channels[level], self.groups)
                    .with_context_dim(Some(self.context_dim))
                    .init(device)
            }),
        };
        let deepest = self.channels[levels - 1];
        UNet {
            stem: conv3x3(self.image_channels, self.channels[0], device),
            noise_level: NoiseLevelEmbeddingConfig::new(self.channels[0], embed_dim).init(device),
            class_encoder: self
                .text
                .is_none()
                .then(|| ClassEncoderConfig::new(self.num_classes, self.class_tokens, self.context_dim).init(device)),
            text_encoder: self.text.as_ref().map(|text| text.init(self.context_dim, device)),
            down: (0..levels).map(|l| stage(l, if l == 0 { self.channels[0] } else { self.channels[l - 1] })).collect(),
            downsample: (0..levels - 1)
                .map(|l| {
                    Conv2dConfig::new([self.channels[l], self.channels[l]], [3, 3])
                        .with_stride([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(device)
                })
                .collect(),
            mid_first: Stage {
                res: ResBlock::new(deepest, deepest, embed_dim, self.groups, device),
                self_attention: Some(AttentionConfig::new(deepest, self.groups).init(device)),
                cross_attention: Some(
                    AttentionConfig::new(deepest, self.groups).with_context_dim(Some(self.context_dim)).init(device),
                ),
            },
            mid_second: ResBlock::new(deepest, deepest, embed_dim, self.groups, device),
            upsample: (0..levels - 1).map(|l| conv3x3(self.channels[l + 1], self.channels[l], device)).collect(),
            up: (0..levels).map(|l| stage(l, 2 * self.channels[l])).collect(),
            out_norm: GroupNormConfig::new(self.groups, self.channels[0]).init(device),
            out_conv: conv3x3(self.channels[0], self.image_channels, device),
            num_classes: self.num_classes,
            objective: self.objective,
        }
    }
}

impl UNet {
    /// The label that means "no class": classifier-free guidance's unconditional branch.
    pub fn null_class(&self) -> usize {
        self.num_classes
    }

    /// What the network predicts.
    pub fn objective(&self) -> Objective {
        self.objective
    }

    /// The network's prediction of its objective's target (ε_θ(x_t, λ, y) for an ε model). x_t: [batch,
    /// channels, h, w]; log_snr: [batch]; class: [batch] in 0..=num_classes.
    pub fn forward(&self, x_t: Tensor<4>, log_snr: Tensor<1>, class: Tensor<1, Int>) -> Tensor<4> {
        self.forward_with_context(x_t, log_snr, self.context(class))
    }

    /// τ_θ(y), what cross-attention attends to: [batch] labels -> [batch, tokens, context_dim]. A text
    /// model reads each class's prompt (the null class: the empty prompt).
    pub fn context(&self, class: Tensor<1, Int>) -> Tensor<3> {
        match (&self.class_encoder, &self.text_encoder) {
            (_, Some(text)) => text.forward(text.class_ids(class)),
            (Some(classes), None) => classes.forward(class),
            (None, None) => unreachable!("init builds one of the two encoders"),
        }
    }

    /// τ_θ(y) of prompts: [batch, tokens] ids (`TextEncoderConfig::prompt`) -> [batch, tokens, context_dim].
    /// `None` for a class model.
    pub fn prompt_context(&self, ids: Tensor<2, Int>) -> Option<Tensor<3>> {
        self.text_encoder.as_ref().map(|text| text.forward(ids))
    }

    /// Whether τ_θ reads prompts.
    pub fn is_text(&self) -> bool {
        self.text_encoder.is_some()
    }

    /// ε̂ at x_t: the network's prediction read through its objective's conversion, image i at λ =
    /// `log_snr[i]` (one value: all at it), with context τ.
    pub fn epsilon_with_context(&self, x_t: Tensor<4>, log_snr: &[f64], context: Tensor<3>) -> Tensor<4> {
        let [batch, ..] = x_t.dims();
        let device = x_t.device();
        let levels: Vec<f32> = (0..batch).map(|i| log_snr[i.min(log_snr.len() - 1)] as f32).collect();
        let lambda = Tensor::<1>::from_data(TensorData::new(levels, [batch]), &device);
        let prediction = self.forward_with_context(x_t.clone(), lambda, context);
        self.objective.eps_batch(x_t, prediction, log_snr)
    }

    /// The network's raw prediction (its objective's target) with a given context in place of τ_θ(y)
    /// (e.g. a mix of two classes').
    pub fn forward_with_context(&self, x_t: Tensor<4>, log_snr: Tensor<1>, context: Tensor<3>) -> Tensor<4> {
        let [batch, ..] = x_t.dims();
        if let Some(parts) = super::cpu::batch_parts(&x_t.device(), batch) {
            // Every layer acts on each image alone: the parts' outputs are the whole batch's, side by side.
            let inputs: Vec<_> = parts
                .into_iter()
                .map(|part| {
                    (x_t.clone().slice(part.clone()), log_snr.clone().slice(part.clone()), context.clone().slice(part))
                })
                .collect();
            let outputs = super::cpu::run_parts(inputs, |(x, l, c)| self.forward_recording(x, l, c, None));
            return Tensor::cat(outputs, 0);
        }
        self.forward_recording(x_t, log_snr, context, None)
    }

    /// ε_θ and every cross-attention layer's weights, in the order the forward pass meets them.
    pub fn forward_with_attention(
        &self,
        x_t: Tensor<4>,
        log_snr: Tensor<1>,
        context: Tensor<3>,
    ) -> (Tensor<4>, Vec<CrossAttentionWeights>) {
        let mut weights = Vec::new();
        let eps = self.forward_recording(x_t, log_snr, context, Some(&mut weights));
        (eps, weights)
    }

    fn forward_recording(
        &self,
        x_t: Tensor<4>,
        log_snr: Tensor<1>,
        context: Tensor<3>,
        mut record: Option<&mut Vec<CrossAttentionWeights>>,
    ) -> Tensor<4> {
        let embedding = self.noise_level.forward(log_snr); // [batch, embed_dim]

        let mut h = conv2d(&self.stem, x_t);
        let mut skips = Vec::with_capacity(self.down.len());
        for (level, stage) in self.down.iter().enumerate() {
            h = stage.forward(h, embedding.clone(), &context, &mut record, "down");
            skips.push(h.clone());
            if let Some(downsample) = self.downsample.get(level) {
                h = conv2d(downsample, h);
            }
        }
        h = self.mid_first.forward(h, embedding.clone(), &context, &mut record, "middle");
        h = self.mid_second.forward(h, embedding.clone());
        for ((level, stage), skip) in self.up.iter().enumerate().rev().zip(skips.into_iter().rev()) {
            if let Some(upsample) = self.upsample.get(level) {
                // Nearest-neighbour to the skip's size (odd sizes such as 7 -> 4 -> 7 come back exactly).
                let [_, _, height, width] = skip.dims();
                let options = InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([height, width]);
                h = conv2d(upsample, interpolate(h, options));
            }
            h = stage.forward(Tensor::cat(vec![h, skip], 1), embedding.clone(), &context, &mut record, "up");
        }
        conv2d(&self.out_conv, group_norm_silu(&self.out_norm, h))
    }

    /// Parameters, for the model card and the UI.
    pub fn parameter_count(&self) -> usize {
        self.num_params()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_configs_that_would_panic() {
        assert!(UNetConfig::new().validate().is_ok());
        assert!(UNetConfig::tiny().validate().is_ok());
        for (config, says) in [
            (UNetConfig::new().with_channels(vec![]), "empty"),
            (UNetConfig::new().with_channels(vec![30, 60]), "groups"),
            (UNetConfig::new().with_groups(0), "groups"),
            (UNetConfig::new().with_self_attention_levels(vec![3]), "level 3"),
            (UNetConfig::new().with_num_classes(0), "num_classes"),
            (
                UNetConfig::new()
                    .with_channels(vec![32, 100])
                    .with_groups(4)
                    .with_self_attention_levels(vec![1])
                    .with_cross_attention_levels(vec![]),
                "heads",
            ),
        ] {
            let error = config.validate().expect_err(says);
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn output_has_input_shape_for_even_and_odd_sizes() {
        let device = Device::flex();
        let config = UNetConfig::tiny();
        let model = config.init(&device);
        for size in [28, 7] {
            let x = Tensor::<4>::zeros([3, 1, size, size], &device);
            let log_snr = Tensor::<1>::from_floats([-5.0, 0.0, 5.0], &device);
            let class = Tensor::<1, Int>::from_ints([0, 9, 10], &device);
            assert_eq!(model.forward(x, log_snr, class).dims(), [3, 1, size, size]);
        }
        assert!(model.parameter_count() > 1000);
    }

    /// A batch of more than `cpu::BATCH_PART` images runs as passes of that many side by side: the same bits on
    /// one thread as on two (the parts depend on the batch only), for 28x28 and 7x7 maps and a batch whose last
    /// part is short; and each image's output is its own (a part's images alone give the same values).
    #[test]
    fn a_batch_split_in_parts_gives_the_same_bits_on_any_number_of_threads() {
        let device = Device::flex();
        let model = UNetConfig::tiny().init(&device);
        let pools: Vec<rayon::ThreadPool> =
            [1, 2, 3].iter().map(|n| rayon::ThreadPoolBuilder::new().num_threads(*n).build().unwrap()).collect();
        for (size, batch) in [(28, 20), (7, 37)] {
            let x = Tensor::<4>::random([batch, 1, size, size], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
            let levels: Vec<f32> = (0..batch).map(|i| i as f32 / 4.0 - 4.0).collect();
            let classes: Vec<i32> = (0..batch as i32).map(|i| i % 11).collect();
            let log_snr = Tensor::<1>::from_floats(&levels[..], &device);
            let context = model.context(Tensor::<1, Int>::from_ints(&classes[..], &device));
            assert_eq!(crate::model::cpu::batch_parts(&device, batch).map(|p| p.len()), Some(batch.div_ceil(16)));
            let runs: Vec<Vec<f32>> = pools
                .iter()
                .map(|pool| {
                    let y = pool.install(|| model.forward_with_context(x.clone(), log_snr.clone(), context.clone()));
                    crate::model::read_f32(y).unwrap()
                })
                .collect();
            for run in &runs[1..] {
                assert!(run.iter().zip(&runs[0]).all(|(a, b)| a.to_bits() == b.to_bits()), "{size}x{size}, {batch}");
            }
            // The second part alone is the second part of the whole batch.
            let part = 16..32.min(batch);
            let alone = model.forward_recording(
                x.slice(part.clone()),
                log_snr.slice(part.clone()),
                context.slice(part.clone()),
                None,
            );
            let alone = crate::model::read_f32(alone).unwrap();
            let plane = size * size;
            assert_eq!(alone, runs[0][part.start * plane..part.end * plane], "{size}x{size}");
        }
    }
}
