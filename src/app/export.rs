//! Save image, Export animation, Export filmstrip, Open settings from PNG.
//!
//! Choosing a path (an rfd dialog, on a thread of its own so the window keeps drawing) is kept apart from
//! writing the file (the `*_to` functions), so tests give a path directly.

use std::path::{Path, PathBuf};

use eframe::egui::{self, ColorImage};

use super::state::{ColorMap, Trajectory, View};
use super::view::color_image;
use super::{FileEvent, LabApp};
use crate::engine::GenerateRequest;
use crate::images::{Picture, png_text, save_png, scaled};

/// The PNG text chunk keyword that holds the generation settings (JSON).
pub use crate::images::SETTINGS_CHUNK;
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
    #[error("{path} holds no diffusion-lab settings (it was not saved by diffusion-lab)")]
    NoSettings { path: String },
    #[error("{path}: the saved settings are damaged: {detail}")]
    BadSettings { path: String, detail: String },
}

fn picture_from_color_image(image: &ColorImage) -> Picture {
    let pixels = image.pixels.iter().flat_map(|c| [c.r(), c.g(), c.b()]).collect();
    Picture { width: image.size[0], height: image.size[1], channels: 3, pixels }
}

fn settings_text(request: &GenerateRequest, extra: serde_json::Value) -> Vec<(String, String)> {
    crate::images::settings_text(serde_json::to_value(request).unwrap_or_default(), extra)
}

/// Writes the frame at `cursor` as shown (view and colour map) to a PNG with the settings as text.
pub fn save_frame_to(
    path: &Path,
    trajectory: &Trajectory,
    cursor: usize,
    view: View,
    map: ColorMap,
) -> Result<(), ExportError> {
    let frame = trajectory.frames.get(cursor).ok_or(ExportError::Empty)?;
    let picture = picture_from_color_image(&color_image(frame, view, map));
    let extra = serde_json::json!({ "t": frame.t, "view": view, "color_map": map });
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
    view: View,
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
            let image = scaled(&picture_from_color_image(&color_image(&trajectory.frames[*i], view, map)), zoom);
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
    view: View,
    map: ColorMap,
    zoom: usize,
) -> Result<(), ExportError> {
    let last = trajectory.frames.last().ok_or(ExportError::Empty)?;
    let [batch, channels, h, w] = super::view::frame_values(last, view).1;
    let indices = spread(trajectory.frames.len(), steps);
    let gap = 2;
    let columns = indices.len();
    let width = columns * w + (columns - 1) * gap;
    let height = batch * h + (batch.saturating_sub(1)) * gap;
    let mut pixels = vec![24u8; width * height * 3];
    let plane = channels * h * w;
    for (column, i) in indices.iter().enumerate() {
        let (values, _) = super::view::frame_values(&trajectory.frames[*i], view);
        for b in 0..batch {
            // Sample b of this frame, coloured the same way as the window.
            let image = super::view::color_image_of(&values[b * plane..(b + 1) * plane], [1, channels, h, w], map);
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
    let extra = serde_json::json!({ "timesteps": timesteps, "view": view });
    Ok(save_png(path, &picture, &settings_text(&trajectory.request, extra))?)
}

/// The generation settings saved in a PNG by [`save_frame_to`] or [`save_filmstrip_to`].
pub fn settings_from_png(path: &Path) -> Result<GenerateRequest, ExportError> {
    request_from_png_text(&png_text(path)?, &path.display().to_string())
}

/// The generation settings among a PNG's text chunks; `source` names the file in errors.
pub fn request_from_png_text(text: &[(String, String)], source: &str) -> Result<GenerateRequest, ExportError> {
    let (_, json) = text
        .iter()
        .find(|(k, _)| k == SETTINGS_CHUNK)
        .ok_or_else(|| ExportError::NoSettings { path: source.to_owned() })?;
    request_from_settings_json(json, source)
}

/// Parses the settings chunk's JSON ({"request": ..., ...}) into the request it holds.
pub fn request_from_settings_json(json: &str, source: &str) -> Result<GenerateRequest, ExportError> {
    let bad = |e: serde_json::Error| ExportError::BadSettings { path: source.to_owned(), detail: e.to_string() };
    let mut value: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
    // `value["request"]` on a mutable non-object panics (found by the `settings` fuzz target with "8").
    let request = value.get_mut("request").map(serde_json::Value::take).unwrap_or_default();
    serde_json::from_value(request).map_err(bad)
}

/// Which export a dialog was opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Export {
    Image,
    Animation,
    Filmstrip,
}

/// Opens a save dialog on a thread of its own, then writes the file there and reports back.
fn export_in_background(app: &LabApp, kind: Export, ctx: egui::Context) {
    let Some(trajectory) = app.trajectory.clone() else {
        return;
    };
    let (cursor, view, map, steps) =
        (app.cursor, app.settings.view, app.settings.color_map, app.settings.filmstrip_steps);
    let zoom = app.settings.zoom.round().max(1.0) as usize;
    let (name, extension, filter) = match kind {
        Export::Image => (
            format!(
                "diffusion-lab-seed{}-t{}.png",
                trajectory.request.seed,
                trajectory.frames.get(cursor).map_or(0, |f| f.t)
            ),
            "png",
            "PNG image",
        ),
        Export::Animation => (format!("diffusion-lab-seed{}.gif", trajectory.request.seed), "gif", "GIF animation"),
        Export::Filmstrip => {
            (format!("diffusion-lab-seed{}-filmstrip.png", trajectory.request.seed), "png", "PNG image")
        }
    };
    save_in_background(app, name, (extension, filter), ctx, move |path| match kind {
        Export::Image => save_frame_to(path, &trajectory, cursor, view, map),
        Export::Animation => save_animation_to(path, &trajectory, view, map, zoom),
        Export::Filmstrip => save_filmstrip_to(path, &trajectory, steps, view, map, zoom),
    });
}

/// Asks where to save `name` (a dialog on a thread of its own; without one, a new name in the default
/// folder), then runs `write` there and reports the outcome as a [`FileEvent`].
fn save_in_background(
    app: &LabApp,
    name: String,
    (extension, filter): (&'static str, &'static str),
    ctx: egui::Context,
    write: impl FnOnce(&Path) -> Result<(), ExportError> + Send + 'static,
) {
    let events = app.file_events();
    let fallback = (!app.file_dialogs).then(|| app.export_dir.clone());
    std::thread::spawn(move || {
        let (path, note) = match fallback {
            // No dialog can ask: the default folder, under a name that overwrites nothing.
            Some(dir) => {
                if let Err(e) = std::fs::create_dir_all(&dir) {
                    let _ = events.send(FileEvent::Failed(format!(
                        "{}, and the default folder {} cannot be created: {e}",
                        super::dialogs::NO_DIALOG,
                        dir.display()
                    )));
                    ctx.request_repaint();
                    return;
                }
                (super::dialogs::unique_path(&dir, &name), " (no file dialog here: saved to the default folder)")
            }
            None => match rfd::FileDialog::new().set_file_name(&name).add_filter(filter, &[extension]).save_file() {
                Some(path) => (path, ""),
                None => return, // Cancelled: nothing to do, nothing lost.
            },
        };
        let _ = events.send(match write(&path) {
            Ok(()) => FileEvent::Saved(format!("{}{note}", path.display())),
            Err(e) => FileEvent::Failed(format!("save failed: {e} (the run is still here: try another folder)")),
        });
        ctx.request_repaint();
    });
}

/// Writes a finished X/Y grid as one PNG: cells enlarged `zoom` times, both axes labelled, and in its
/// settings text the base request (what "Open settings from PNG…" restores), the axes and every cell's request.
pub fn save_grid_to(path: &Path, grid: &super::compare::GridRun, zoom: usize) -> Result<(), ExportError> {
    let cells: Vec<Option<Picture>> = grid.cells.iter().map(|c| c.as_ref().map(|p| scaled(p, zoom))).collect();
    let picture = crate::images::labelled_grid(&cells, &grid.labels(), 4);
    Ok(save_png(path, &picture, &settings_text(&grid.base, grid.settings.clone()))?)
}

/// Writes a finished interpolation strip as an animated GIF, there and back, each end held longer.
pub fn save_strip_gif_to(path: &Path, grid: &super::compare::GridRun, zoom: usize) -> Result<(), ExportError> {
    let write_error = |detail: String| ExportError::Write { path: path.display().to_string(), detail };
    let pictures: Vec<Picture> = grid.cells.iter().flatten().map(|p| scaled(p, zoom)).collect();
    let bytes =
        crate::images::gif_bytes(&crate::images::there_and_back(&pictures)).map_err(|e| write_error(e.to_string()))?;
    crate::files::write_atomic(path, &bytes).map_err(|e| write_error(e.to_string()))
}

pub fn save_strip_gif_in_background(app: &LabApp, ctx: egui::Context) {
    let Some(grid) = app.compare.grid.clone() else { return };
    let zoom = app.settings.zoom.round().max(1.0) as usize;
    let name = format!("diffusion-lab-strip-seed{}.gif", grid.base.seed);
    save_in_background(app, name, ("gif", "GIF animation"), ctx, move |path| save_strip_gif_to(path, &grid, zoom));
}

pub fn save_grid_in_background(app: &LabApp, ctx: egui::Context) {
    let Some(grid) = app.compare.grid.clone() else { return };
    let zoom = app.settings.zoom.round().max(1.0) as usize;
    let name = format!("diffusion-lab-grid-seed{}.png", grid.base.seed);
    save_in_background(app, name, ("png", "PNG image"), ctx, move |path| save_grid_to(path, &grid, zoom));
}

fn open_settings_in_background(app: &mut LabApp, ctx: egui::Context) {
    if !app.file_dialogs {
        app.set_status(format!("{}: cannot choose a PNG to read settings from", super::dialogs::NO_DIALOG), true);
        return;
    }
    let events = app.file_events();
    std::thread::spawn(move || {
        let Some(path): Option<PathBuf> = rfd::FileDialog::new().add_filter("PNG image", &["png"]).pick_file() else {
            return;
        };
        let _ = events.send(match settings_from_png(&path) {
            Ok(request) => FileEvent::SettingsLoaded(Box::new(request), path.display().to_string()),
            Err(e) => FileEvent::Failed(e.to_string()),
        });
        ctx.request_repaint();
    });
}

pub fn export_buttons_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let has_frames = app.trajectory.as_ref().is_some_and(|t| !t.frames.is_empty());
    // A latent run's frames get their pixels after the run; exports wait for all of them, and Save for the
    // frame on screen, rather than write a stand-in.
    let undecoded = app.trajectory.as_ref().map_or(0, |t| t.undecoded());
    let cursor_decoded = app
        .trajectory
        .as_ref()
        .is_some_and(|t| t.frames.get(app.cursor).is_some_and(|f| f.decoded.is_some() || !t.is_latent()));
    let waiting = format!("decoding the run's latent frames ({undecoded} to go)…");
    ui.horizontal_wrapped(|ui| {
        if ui
            .add_enabled(has_frames && cursor_decoded, egui::Button::new("Save image…"))
            .on_disabled_hover_text(&waiting)
            .clicked()
        {
            export_in_background(app, Export::Image, ui.ctx().clone());
        }
        let all_decoded = has_frames && undecoded == 0;
        if ui
            .add_enabled(all_decoded, egui::Button::new("Export animation…"))
            .on_disabled_hover_text(&waiting)
            .clicked()
        {
            export_in_background(app, Export::Animation, ui.ctx().clone());
        }
        if ui
            .add_enabled(all_decoded, egui::Button::new("Export filmstrip…"))
            .on_disabled_hover_text(&waiting)
            .clicked()
        {
            export_in_background(app, Export::Filmstrip, ui.ctx().clone());
        }
        ui.add(egui::DragValue::new(&mut app.settings.filmstrip_steps).range(2..=40).suffix(" steps"))
            .on_hover_text("Timesteps per sample in the filmstrip");
        if ui.button("Open settings from PNG…").clicked() {
            open_settings_in_background(app, ui.ctx().clone());
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
