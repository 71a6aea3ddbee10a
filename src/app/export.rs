//! Save image, Export animation, Export filmstrip, Open settings from PNG; grids and strips.
//!
//! Choosing a path (an rfd dialog, on a thread of its own so the window keeps drawing) is kept apart from
//! writing the file (the `*_to` functions), so tests give a path directly.

use std::path::{Path, PathBuf};

use eframe::egui::{self, ColorImage};

use super::colors::color_image;
use super::compare::Grid;
use super::context::PanelContext;
use super::dialogs::{FileEvent, Pick};
use super::state::{ColorMap, Quantity, Trajectory};
use super::viewer::TrajectoryViewer;
use crate::images::{Picture, save_png, scaled};
use crate::run::png_settings::{settings_from_png, settings_text};

/// Most frames an animation gets; longer runs are subsampled evenly (the last frame always included).
pub const MAX_ANIMATION_FRAMES: usize = 120;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("nothing to save yet: generate first")]
    Empty,
    #[error(transparent)]
    Image(#[from] crate::images::ImageError),
    #[error("could not write {path}: {detail}")]
    Write { path: String, detail: String },
}

fn picture_from_color_image(image: &ColorImage) -> Picture {
    let pixels = image.pixels.iter().flat_map(|c| [c.r(), c.g(), c.b()]).collect();
    Picture { width: image.size[0], height: image.size[1], channels: 3, pixels }
}

/// Writes the frame at `cursor` as shown (view and colour map) to a PNG with the settings as text.
pub fn save_frame_to(
    path: &Path,
    trajectory: &Trajectory,
    cursor: usize,
    quantity: Quantity,
    map: ColorMap,
) -> Result<(), ExportError> {
    let frame = trajectory.frames.get(cursor).ok_or(ExportError::Empty)?;
    let picture = picture_from_color_image(&color_image(frame, quantity, map));
    let extra = serde_json::json!({ "t": frame.t, "quantity": quantity, "color_map": map });
    Ok(save_png(path, &picture, &settings_text(&trajectory.request, extra))?)
}

/// Indices of at most `count` frames spread evenly from the first to the last.
pub fn spread(frames: usize, count: usize) -> Vec<usize> {
    if frames == 0 {
        return Vec::new();
    }
    let count = count.clamp(1, frames);
    if count == 1 {
        return vec![frames - 1];
    }
    (0..count).map(|k| (k * (frames - 1) + (count - 1) / 2) / (count - 1)).collect()
}

/// The trajectory as an animated GIF, x_T to x_0, at most [`MAX_ANIMATION_FRAMES`] frames, each image
/// pixel `zoom` x `zoom` screen pixels.
pub fn save_animation_to(
    path: &Path,
    trajectory: &Trajectory,
    quantity: Quantity,
    map: ColorMap,
    zoom: usize,
) -> Result<(), ExportError> {
    if trajectory.frames.is_empty() {
        return Err(ExportError::Empty);
    }
    let write_error = |detail: String| ExportError::Write { path: path.display().to_string(), detail };
    let indices = spread(trajectory.frames.len(), MAX_ANIMATION_FRAMES);
    let frames: Vec<(Picture, u32)> = indices
        .iter()
        .enumerate()
        .map(|(k, i)| {
            let image = scaled(&picture_from_color_image(&color_image(&trajectory.frames[*i], quantity, map)), zoom);
            // Hold the final image for two seconds so it can be seen.
            (image, if k + 1 == indices.len() { 2000 } else { 60 })
        })
        .collect();
    let bytes = crate::images::gif_bytes(&frames).map_err(|e| write_error(e.to_string()))?;
    crate::files::write_atomic(path, &bytes).map_err(|e| write_error(e.to_string()))
}

/// One row per sample, `steps` timesteps evenly spread from x_T to x_0 left to right (the seed paper's
/// "generated images" figure), as a PNG with the settings and the timesteps as text.
pub fn save_filmstrip_to(
    path: &Path,
    trajectory: &Trajectory,
    steps: usize,
    quantity: Quantity,
    map: ColorMap,
    zoom: usize,
) -> Result<(), ExportError> {
    let last = trajectory.frames.last().ok_or(ExportError::Empty)?;
    let [batch, channels, h, w] = super::colors::frame_values(last, quantity).1;
    let indices = spread(trajectory.frames.len(), steps);
    let gap = 2;
    let columns = indices.len();
    let width = columns * w + (columns - 1) * gap;
    let height = batch * h + (batch.saturating_sub(1)) * gap;
    let mut pixels = vec![24u8; width * height * 3];
    let plane = channels * h * w;
    for (column, i) in indices.iter().enumerate() {
        let (values, _) = super::colors::frame_values(&trajectory.frames[*i], quantity);
        for b in 0..batch {
            // Sample b of this frame, coloured the same way as the window.
            let image = super::colors::color_image_of(&values[b * plane..(b + 1) * plane], [1, channels, h, w], map);
            for y in 0..h {
                for x in 0..w {
                    let c = image.pixels[y * w + x];
                    let at = ((b * (h + gap) + y) * width + column * (w + gap) + x) * 3;
                    pixels[at..at + 3].copy_from_slice(&[c.r(), c.g(), c.b()]);
                }
            }
        }
    }
    let timesteps: Vec<usize> = indices.iter().map(|i| trajectory.frames[*i].t).collect();
    let picture = scaled(&Picture { width, height, channels: 3, pixels }, zoom);
    let extra = serde_json::json!({ "timesteps": timesteps, "quantity": quantity });
    Ok(save_png(path, &picture, &settings_text(&trajectory.request, extra))?)
}

/// Which export a dialog was opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Export {
    Image,
    Animation,
    Filmstrip,
}

/// Opens a save dialog on a thread of its own, then writes the file there and reports back.
fn export_in_background(ctx: &PanelContext, egui_ctx: &egui::Context, viewer: &TrajectoryViewer, kind: Export) {
    let Some(trajectory) = viewer.trajectory.clone() else {
        return;
    };
    let cursor = viewer.cursor;
    let (quantity, map, steps) = (ctx.settings.quantity, ctx.settings.color_map, ctx.settings.filmstrip_steps);
    let zoom = ctx.settings.zoom.round().max(1.0) as usize;
    let seed = trajectory.request.seed;
    let (name, extension, filter) = match kind {
        Export::Image => {
            let t = trajectory.frames.get(cursor).map_or(0, |f| f.t);
            (format!("diffusion-lab-seed{seed}-t{t}.png"), "png", "PNG image")
        }
        Export::Animation => (format!("diffusion-lab-seed{seed}.gif"), "gif", "GIF animation"),
        Export::Filmstrip => (format!("diffusion-lab-seed{seed}-filmstrip.png"), "png", "PNG image"),
    };
    ctx.dialogs.save_in_background(egui_ctx, name, (extension, filter), move |path| match kind {
        Export::Image => save_frame_to(path, &trajectory, cursor, quantity, map),
        Export::Animation => save_animation_to(path, &trajectory, quantity, map, zoom),
        Export::Filmstrip => save_filmstrip_to(path, &trajectory, steps, quantity, map, zoom),
    });
}

/// Writes a finished X/Y grid as one PNG: cells enlarged `zoom` times, both axes labelled, and in its
/// settings text the base request (what "Open settings from PNG…" restores), the axes and every cell's request.
pub fn save_grid_to(path: &Path, grid: &Grid, zoom: usize) -> Result<(), ExportError> {
    let cells: Vec<Option<Picture>> = grid.cells.iter().map(|c| c.as_ref().map(|p| scaled(p, zoom))).collect();
    let picture = crate::images::labelled_grid(&cells, &grid.labels(), 4);
    Ok(save_png(path, &picture, &settings_text(&grid.base, grid.settings.clone()))?)
}

/// Writes a finished interpolation strip as an animated GIF, there and back, each end held longer.
pub fn save_strip_gif_to(path: &Path, grid: &Grid, zoom: usize) -> Result<(), ExportError> {
    let write_error = |detail: String| ExportError::Write { path: path.display().to_string(), detail };
    let pictures: Vec<Picture> = grid.cells.iter().flatten().map(|p| scaled(p, zoom)).collect();
    let bytes =
        crate::images::gif_bytes(&crate::images::there_and_back(&pictures)).map_err(|e| write_error(e.to_string()))?;
    crate::files::write_atomic(path, &bytes).map_err(|e| write_error(e.to_string()))
}

pub fn save_strip_gif_in_background(ctx: &PanelContext, egui_ctx: &egui::Context, grid: Option<Grid>) {
    let Some(grid) = grid else { return };
    let zoom = ctx.settings.zoom.round().max(1.0) as usize;
    let name = format!("diffusion-lab-strip-seed{}.gif", grid.base.seed);
    let file = ("gif", "GIF animation");
    ctx.dialogs.save_in_background(egui_ctx, name, file, move |path| save_strip_gif_to(path, &grid, zoom));
}

pub fn save_grid_in_background(ctx: &PanelContext, egui_ctx: &egui::Context, grid: Option<Grid>) {
    let Some(grid) = grid else { return };
    let zoom = ctx.settings.zoom.round().max(1.0) as usize;
    let name = format!("diffusion-lab-grid-seed{}.png", grid.base.seed);
    ctx.dialogs.save_in_background(egui_ctx, name, ("png", "PNG image"), move |path| save_grid_to(path, &grid, zoom));
}

/// One Save image button for `viewer`'s frame on screen (B's, a branch's), with the settings of its run.
pub fn save_image_button_ui(ui: &mut egui::Ui, ctx: &PanelContext, viewer: &TrajectoryViewer, label: &str) {
    let trajectory = viewer.trajectory.as_ref();
    let ready = trajectory.is_some_and(|t| {
        t.frames.get(viewer.cursor).is_some_and(|f| f.decoded.is_some() || !t.is_latent()) && t.is_complete()
    });
    if ui.add_enabled(ready, egui::Button::new(label)).on_disabled_hover_text("run it to the end first").clicked() {
        export_in_background(ctx, ui.ctx(), viewer, Export::Image);
    }
}

/// Asks for a PNG (on a thread of its own) and reads the settings it carries.
fn open_settings_in_background(ctx: &mut PanelContext, egui_ctx: &egui::Context) {
    let chosen = |path: PathBuf| match settings_from_png(&path) {
        Ok(request) => FileEvent::SettingsLoaded(Box::new(request), path.display().to_string()),
        Err(e) => FileEvent::Failed(e.to_string()),
    };
    let pick = Pick::File("PNG image", &["png"]);
    if let Err(message) = ctx.dialogs.pick_in_background(egui_ctx, pick, "a PNG to read settings from", chosen) {
        ctx.set_status(message, true);
    }
}

/// Save image, Export animation, Export filmstrip (of `viewer`'s run), and Open settings from PNG.
pub fn export_ui(ui: &mut egui::Ui, ctx: &mut PanelContext, viewer: &TrajectoryViewer) {
    let trajectory = viewer.trajectory.as_ref();
    let has_frames = trajectory.is_some_and(|t| !t.frames.is_empty());
    // A latent run's frames get their pixels after the run; exports wait for all of them, and Save for the
    // frame on screen, rather than write a stand-in.
    let undecoded = trajectory.map_or(0, |t| t.undecoded());
    let cursor_decoded =
        trajectory.is_some_and(|t| t.frames.get(viewer.cursor).is_some_and(|f| f.decoded.is_some() || !t.is_latent()));
    let waiting = format!("decoding the run's latent frames ({undecoded} to go)…");
    ui.horizontal_wrapped(|ui| {
        let all_decoded = has_frames && undecoded == 0;
        for (kind, label, enabled) in [
            (Export::Image, "Save image…", has_frames && cursor_decoded),
            (Export::Animation, "Export animation…", all_decoded),
            (Export::Filmstrip, "Export filmstrip…", all_decoded),
        ] {
            if ui.add_enabled(enabled, egui::Button::new(label)).on_disabled_hover_text(&waiting).clicked() {
                export_in_background(ctx, ui.ctx(), viewer, kind);
            }
        }
        ui.add(egui::DragValue::new(&mut ctx.settings.filmstrip_steps).range(2..=40).suffix(" steps"))
            .on_hover_text("Timesteps per sample in the filmstrip");
        if ui.button("Open settings from PNG…").clicked() {
            open_settings_in_background(ctx, ui.ctx());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_both_ends() {
        assert_eq!(spread(1001, 5), vec![0, 250, 500, 750, 1000]);
        assert_eq!(spread(3, 10), vec![0, 1, 2]);
        assert_eq!(spread(7, 1), vec![6]);
        assert!(spread(0, 4).is_empty());
    }
}
