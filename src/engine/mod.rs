//! The only place with threads: owns the device and the loaded models, runs Generate and the rest.

pub mod device;
pub mod generate;
pub mod grid;
pub mod png_settings;
pub mod train;
pub mod worker;

pub use device::{ComputeDevice, DeviceChoice, open_device};
pub use generate::{Decoded, Frame, GenerateRequest, RunSummary};
pub use worker::{Command, Engine, Event, ForwardSource, ModelInfo, ModelSource};
