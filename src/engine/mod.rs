//! The only place with threads: owns the device and the loaded models, runs Generate and the rest.

mod backlog;
pub mod device;
pub mod error;
pub mod explain;
mod forward;
pub mod generate;
pub mod grid;
pub mod lab2d;
mod models;
pub mod png_settings;
mod thread;
pub mod train;
pub mod worker;

pub use device::{ComputeDevice, DeviceChoice, open_device};
pub use error::EngineError;
pub use forward::{POSTERIOR_CURVE_POINTS, PosteriorView};
pub use generate::{Decoded, Frame, GenerateRequest, RunSummary};
pub use worker::{Command, Engine, Event, ForwardSource, ModelInfo, ModelSource};
