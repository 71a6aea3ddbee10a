//! A small Fashion-MNIST classifier: the judge of sample quality (its penultimate features give the
//! Fréchet distance, its predictions the class accuracy). Trained by `diffusion-lab train-classifier`.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

#[derive(Config, Debug, PartialEq)]
pub struct ClassifierConfig {
    #[config(default = 1)]
    pub image_channels: usize,
    #[config(default = 28)]
    pub image_size: usize,
    #[config(default = 10)]
    pub num_classes: usize,
    /// Size of the feature vector the Fréchet distance is computed on.
    #[config(default = 128)]
    pub feature_dim: usize,
    #[config(default = 0.3)]
    pub dropout: f64,
}

/// conv 3x3 (32) -> pool -> conv 3x3 (64) -> pool -> dense (features) -> dense (logits).
#[derive(Module, Debug)]
pub struct Classifier {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    dropout: Dropout,
    features: Linear,
    logits: Linear,
}

impl ClassifierConfig {
    /// Checks what `init` relies on (see [`super::UNetConfig::validate`]).
    pub fn validate(&self) -> Result<(), String> {
        super::check_config_sizes(&[
            ("image_channels", self.image_channels),
            ("image_size", self.image_size),
            ("num_classes", self.num_classes),
            ("feature_dim", self.feature_dim),
        ])?;
        if self.image_channels == 0 || self.num_classes == 0 || self.feature_dim == 0 {
            return Err("image channels, classes and feature size must be at least 1".into());
        }
        if self.image_size < 4 {
            return Err(format!("image size {} is below 4, which two 2x2 poolings need", self.image_size));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }

    /// Weights and biases of every layer `init` builds.
    pub fn parameter_count(&self) -> usize {
        let pooled = self.image_size / 4;
        let conv = |i: usize, o: usize| 9 * i * o + o;
        let linear = |i: usize, o: usize| i * o + o;
        conv(self.image_channels, 32)
            + conv(32, 64)
            + linear(64 * pooled * pooled, self.feature_dim)
            + linear(self.feature_dim, self.num_classes)
    }

    pub fn init(&self, device: &Device) -> Classifier {
        let conv =
            |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device);
        let pooled = self.image_size / 4;
        Classifier {
            conv1: conv(self.image_channels, 32),
            conv2: conv(32, 64),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            features: LinearConfig::new(64 * pooled * pooled, self.feature_dim).init(device),
            logits: LinearConfig::new(self.feature_dim, self.num_classes).init(device),
        }
    }
}

impl Classifier {
    /// [batch, channels, h, w] in [-1, 1] -> [batch, feature_dim]
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let h = self.pool.forward(relu(self.conv1.forward(x)));
        let h = self.pool.forward(relu(self.conv2.forward(h)));
        let h: Tensor<2> = h.flatten(1, 3);
        relu(self.features.forward(self.dropout.forward(h)))
    }

    /// [batch, channels, h, w] -> [batch, num_classes]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.logits_from_features(self.features(x))
    }

    /// [batch, feature_dim] -> [batch, num_classes]
    pub fn logits_from_features(&self, features: Tensor<2>) -> Tensor<2> {
        self.logits.forward(self.dropout.forward(features))
    }
}
