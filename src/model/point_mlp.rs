//! ε_θ(x_t, λ, y) for points of the plane: the 2-D lab's network. The same conditioning as the image UNet
//! (the noise level λ = log-SNR through [`NoiseLevelEmbedding`], a class or the "no class" label), with an
//! MLP of residual blocks in place of the convolutions.

use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;

use super::embedding::{NoiseLevelEmbedding, NoiseLevelEmbeddingConfig};
use crate::diffusion::Objective;

#[derive(Config, Debug, PartialEq)]
pub struct PointDenoiserConfig {
    /// Width of every hidden layer.
    #[config(default = 128)]
    pub hidden: usize,
    /// Residual blocks (two linear layers each).
    #[config(default = 3)]
    pub blocks: usize,
    /// Classes of the data; label `num_classes` is "no class" (classifier-free guidance's ∅).
    #[config(default = 1)]
    pub num_classes: usize,
    /// Size of λ's sinusoidal features.
    #[config(default = 32)]
    pub sinusoid_dim: usize,
    /// What the network predicts (ε, x_0, v or the flow velocity).
    #[config(default = "Objective::Eps")]
    pub objective: Objective,
}

/// h + W₂ SiLU(W₁ SiLU(h) + E c): c is the conditioning (λ and y), added inside every block as the UNet's
/// residual blocks add the noise-level embedding.
#[derive(Module, Debug)]
pub struct PointBlock {
    first: Linear,
    condition: Linear,
    second: Linear,
}

impl PointBlock {
    /// h: [batch, hidden], condition: [batch, hidden] -> [batch, hidden]
    fn forward(&self, h: Tensor<2>, condition: Tensor<2>) -> Tensor<2> {
        let inner = self.first.forward(silu(h.clone())).add(self.condition.forward(condition));
        h.add(self.second.forward(silu(inner)))
    }
}

#[derive(Module, Debug)]
pub struct PointDenoiser {
    input: Linear,
    level: NoiseLevelEmbedding,
    class: Embedding,
    blocks: Vec<PointBlock>,
    output: Linear,
    num_classes: usize,
    #[module(skip)]
    objective: Objective,
}

impl PointDenoiserConfig {
    pub fn init(&self, device: &Device) -> PointDenoiser {
        let hidden = self.hidden;
        PointDenoiser {
            input: LinearConfig::new(2, hidden).init(device),
            level: NoiseLevelEmbeddingConfig::new(self.sinusoid_dim, hidden).init(device),
            class: EmbeddingConfig::new(self.num_classes + 1, hidden).init(device),
            blocks: (0..self.blocks)
                .map(|_| PointBlock {
                    first: LinearConfig::new(hidden, hidden).init(device),
                    condition: LinearConfig::new(hidden, hidden).init(device),
                    second: LinearConfig::new(hidden, hidden).init(device),
                })
                .collect(),
            output: LinearConfig::new(hidden, 2).init(device),
            num_classes: self.num_classes,
            objective: self.objective,
        }
    }

    /// Weights and biases of the network this config makes.
    pub fn parameters(&self) -> usize {
        let h = self.hidden;
        let linear = |i: usize, o: usize| i * o + o;
        linear(2, h)
            + linear(self.sinusoid_dim, h)
            + linear(h, h)
            + (self.num_classes + 1) * h
            + self.blocks * 3 * linear(h, h)
            + linear(h, 2)
    }
}

impl PointDenoiser {
    /// The label of "no class".
    /// What the network predicts.
    pub fn objective(&self) -> Objective {
        self.objective
    }

    pub fn null_class(&self) -> usize {
        self.num_classes
    }

    /// x_t: [batch, 2], log_snr: [batch], class: [batch] -> ε̂: [batch, 2]
    pub fn forward(&self, x_t: Tensor<2>, log_snr: Tensor<1>, class: Tensor<1, Int>) -> Tensor<2> {
        let [batch, _] = x_t.dims();
        let hidden = self.output.weight.dims()[0];
        // [batch] -> [batch, 1] -> [batch, 1, hidden] -> [batch, hidden]
        let class = self.class.forward(class.unsqueeze_dim(1)).reshape([batch, hidden]);
        let condition = silu(self.level.forward(log_snr).add(class));
        let mut h = self.input.forward(x_t);
        for block in &self.blocks {
            h = block.forward(h, condition.clone());
        }
        self.output.forward(silu(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_parameter_count() {
        let device = Device::flex();
        let config = PointDenoiserConfig::new().with_num_classes(3);
        let model = config.init(&device);
        let x = Tensor::<2>::zeros([5, 2], &device);
        let log_snr = Tensor::<1>::zeros([5], &device);
        let class = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 3, 3], [5]), &device);
        assert_eq!(model.forward(x, log_snr, class).dims(), [5, 2]);
        assert_eq!(model.num_params(), config.parameters());
        assert_eq!(model.null_class(), 3);
    }
}
