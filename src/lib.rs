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
pub mod lab2d;
pub mod model;
pub mod run;
pub mod text;
pub mod tour;
pub mod train;

/// The desktop's name for the app: the Wayland app id and X11 WM_CLASS of the window, and the name of the
/// package's desktop entry, icon and AppStream metainfo (assets/packaging/), which is how a desktop
/// matches the running window to its launcher and icon.
pub const APP_ID: &str = "io.github.diffusionlab.DiffusionLab";
