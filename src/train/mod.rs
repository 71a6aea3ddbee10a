//! Training: the diffusion model's trainer and its exponential moving average.

pub mod autoencoder;
pub mod classifier;
pub mod ddpm;
pub mod ema;
