//! The generation settings a PNG carries: written by the window's exports and by `sample` / `grid`, read
//! back by the window's "Open settings from PNG…" (and by the fuzz targets, which import nothing of the
//! window). One place for both directions, so that what is written is what can be read.

use std::path::Path;

use super::GenerateRequest;
use crate::images::{ImageError, png_text};

/// The PNG text chunk keyword under which every PNG diffusion-lab writes (the window's exports and
/// `sample`'s images and grids) carries its settings.
pub const SETTINGS_CHUNK: &str = "diffusion-lab";

#[derive(Debug, thiserror::Error)]
pub enum PngSettingsError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{path} holds no diffusion-lab settings (it was not saved by diffusion-lab)")]
    NoSettings { path: String },
    #[error("{path}: the saved settings are damaged: {detail}")]
    BadSettings { path: String, detail: String },
}

/// The PNG text chunks for `request` and what else the picture records (`extra`: t, the quantity shown,
/// a grid's axes…): `{"request": …, …extra}` under [`SETTINGS_CHUNK`].
pub fn settings_text(request: &GenerateRequest, extra: serde_json::Value) -> Vec<(String, String)> {
    let mut value = serde_json::json!({ "request": request });
    if let (Some(map), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra) {
        map.extend(extra);
    }
    vec![(SETTINGS_CHUNK.to_string(), value.to_string())]
}

/// The generation settings saved in the PNG at `path`.
pub fn settings_from_png(path: &Path) -> Result<GenerateRequest, PngSettingsError> {
    request_from_png_text(&png_text(path)?, &path.display().to_string())
}

/// The generation settings among a PNG's text chunks; `source` names the file in errors.
pub fn request_from_png_text(text: &[(String, String)], source: &str) -> Result<GenerateRequest, PngSettingsError> {
    let (_, json) = text
        .iter()
        .find(|(k, _)| k == SETTINGS_CHUNK)
        .ok_or_else(|| PngSettingsError::NoSettings { path: source.to_owned() })?;
    request_from_settings_json(json, source)
}

/// Parses the settings chunk's JSON ({"request": ..., ...}) into the request it holds.
pub fn request_from_settings_json(json: &str, source: &str) -> Result<GenerateRequest, PngSettingsError> {
    let bad = |e: serde_json::Error| PngSettingsError::BadSettings { path: source.to_owned(), detail: e.to_string() };
    let mut value: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
    // `value["request"]` on a mutable non-object panics (found by the `settings` fuzz target with "8").
    let request = value.get_mut("request").map(serde_json::Value::take).unwrap_or_default();
    serde_json::from_value(request).map_err(bad)
}
