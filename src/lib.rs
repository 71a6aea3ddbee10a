//! diffusion-lab: watch a diffusion model turn noise into an image, step by step.
//!
//! The window (`app`) and the command line (`cli`, in the binary) are two faces over the same math
//! (`diffusion`). See ARCHITECTURE.md in the shared folder for who may use whom.

pub mod app;
pub mod data;
pub mod diffusion;
pub mod engine;
pub mod eval;
pub mod files;
pub mod fuzz_checks;
pub mod images;
pub mod model;
pub mod train;
