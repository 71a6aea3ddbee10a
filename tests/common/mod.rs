//! Helpers shared by the integration tests.

// Each test binary includes this module and uses some of it.
#![allow(dead_code)]

use burn::prelude::*;
use diffusion_lab::diffusion::BetaSchedule;
use diffusion_lab::model::UNetConfig;
use diffusion_lab::model::checkpoint::{Checkpoint, CheckpointHeader, ModelKind, bytes_from_module};

/// A checkpoint of an untrained tiny UNet on 8x8 images, written into `dir`.
pub fn tiny_unet_file(dir: &std::path::Path) -> std::path::PathBuf {
    let config = UNetConfig::tiny().with_image_size(8);
    let model = config.init(&Device::flex());
    let header = CheckpointHeader {
        kind: ModelKind::Unet,
        config: serde_json::to_value(&config).unwrap(),
        training_schedule: Some(BetaSchedule::linear(1000)),
        log_snr_range: Some((-20.0, 10.0)),
        step: 0,
        extra: serde_json::Value::Null,
        sections: Vec::new(),
    };
    let path = dir.join("tiny.dlab");
    Checkpoint::new(header).with_section("weights", bytes_from_module(&model, false).unwrap()).write(&path).unwrap();
    path
}

/// The first 500 Fashion-MNIST test images and labels, shipped as IDX files under tests/fixtures.
pub fn fashion_mnist_fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist")
}

/// |a - b|, with equal values (NaN and NaN, or the same infinity) 0 and a NaN facing a number infinite:
/// `f32::max` drops NaN, so without this a NaN in a result would compare as a perfect match.
pub fn difference(a: f32, b: f32) -> f32 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0.0;
    }
    let d = (a - b).abs();
    if d.is_nan() { f32::INFINITY } else { d }
}

/// The largest [`difference`] between two equally long slices.
pub fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared values differ in length");
    a.iter().zip(b).map(|(a, b)| difference(*a, *b)).fold(0.0f32, f32::max)
}
