//! diffusion-lab: watch a diffusion model turn noise into an image, step by step.
//!
//! The window (`app`) and the command line (`cli`, in the binary) are two faces over the same math
//! (`diffusion`). ARCHITECTURE.md at the repository's root is the map: the rooms, who may use whom, the
//! threads, and where to change what.

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
