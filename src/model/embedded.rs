//! Models compiled into the binary, so that a fresh build generates offline. Each was trained by this
//! project's own `train` command; how is written in assets/models/README.md.

/// (name shown in the app, checkpoint bytes).
pub const MODELS: &[(&str, &[u8])] = &[("Fashion-MNIST (pixel UNet)", FASHION_UNET)];

/// The pixel-space UNet trained on Fashion-MNIST: EMA weights in f16, with its config and schedule.
pub const FASHION_UNET: &[u8] = include_bytes!("../../assets/models/fashion-unet.dlab");

/// The Fashion-MNIST classifier `eval` uses as its judge.
pub const FASHION_CLASSIFIER: &[u8] = include_bytes!("../../assets/models/fashion-classifier.dlab");
