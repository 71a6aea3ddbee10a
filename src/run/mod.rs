//! The run library: one denoising run to its end with every step handed out (`generate`, whose `run_from` is
//! the one sampling loop), any number of images in batches through it (`batches`), the one model resolver
//! (`models`: a name or file to a loaded UNet and its autoencoder), a recorded step taken apart ("This step",
//! `explain`), grids and strips of runs (`grid`), and the settings a PNG carries (`png_settings`). No threads
//! and no channels: the engine's worker thread calls it for the window, and the command line calls it directly.

pub mod batches;
pub mod explain;
pub mod explain_guidance;
pub mod frame;
pub mod generate;
pub mod grid;
pub mod models;
pub mod png_settings;
pub mod request;

pub use generate::{Decoded, Frame, GenerateRequest, RunSummary};
