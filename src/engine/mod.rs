//! The only place with threads: owns the device and the loaded models, runs Generate and the rest on its
//! worker thread through the run library (`crate::run`): commands in, events out, cancellation.

mod backlog;
pub mod device;
pub mod error;
pub mod forward;
pub mod lab2d;
mod lab2d_guidance;
mod lab2d_jobs;
mod models;
mod thread;
pub mod train;
mod train_preview;
mod train_runs;
pub mod worker;

pub use crate::run::{Decoded, Frame, GenerateRequest, RunSummary};
pub use device::{ComputeDevice, DeviceChoice, open_device};
pub use error::EngineError;
pub use forward::{POSTERIOR_CURVE_POINTS, PosteriorView};
pub use lab2d_jobs::Measurement;
pub use worker::{Command, CommandFailure, Engine, Event, ForwardSource, ModelInfo, ModelSource};
