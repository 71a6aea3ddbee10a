//! Images out of tensors: [-1, 1] values to 8-bit pixels, grids of samples, and PNGs that carry their
//! generation settings as text chunks.

use std::path::Path;

use crate::data::u8_from_unit;

/// A grayscale or RGB picture, 8 bits per channel, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    /// 1 (gray) or 3 (RGB).
    pub channels: usize,
    pub pixels: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("could not write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("could not encode the PNG: {0}")]
    Encode(String),
    #[error("could not read {path}: {detail}")]
    Read { path: String, detail: String },
}

/// Pictures from a batch of values laid out [batch, channels, height, width] in [-1, 1].
pub fn pictures_from_batch(values: &[f32], batch: usize, channels: usize, height: usize, width: usize) -> Vec<Picture> {
    let plane = height * width;
    (0..batch)
        .map(|b| {
            let image = &values[b * channels * plane..(b + 1) * channels * plane];
            // CHW -> HWC
            let pixels = (0..plane)
                .flat_map(|p| (0..channels).map(move |c| u8_from_unit(image[c * plane + p])))
                .collect();
            Picture { width, height, channels, pixels }
        })
        .collect()
}

/// Tiles pictures (all of one size) into rows of `columns`, with `gap` pixels of black between them.
pub fn grid(pictures: &[Picture], columns: usize, gap: usize) -> Picture {
    let Some(first) = pictures.first() else {
        return Picture { width: 0, height: 0, channels: 1, pixels: Vec::new() };
    };
    let columns = columns.clamp(1, pictures.len());
    let rows = pictures.len().div_ceil(columns);
    let (w, h, c) = (first.width, first.height, first.channels);
    let width = columns * w + (columns - 1) * gap;
    let height = rows * h + (rows - 1) * gap;
    let mut pixels = vec![0u8; width * height * c];
    for (i, picture) in pictures.iter().enumerate() {
        let (x0, y0) = ((i % columns) * (w + gap), (i / columns) * (h + gap));
        for y in 0..h {
            let src = &picture.pixels[y * w * c..(y + 1) * w * c];
            let start = ((y0 + y) * width + x0) * c;
            pixels[start..start + w * c].copy_from_slice(src);
        }
    }
    Picture { width, height, channels: c, pixels }
}

/// Nearest-neighbour enlargement by a whole `factor` (pixel art stays crisp).
pub fn scaled(picture: &Picture, factor: usize) -> Picture {
    let factor = factor.max(1);
    let (w, c) = (picture.width, picture.channels);
    let width = w * factor;
    let mut pixels = Vec::with_capacity(picture.pixels.len() * factor * factor);
    for row in picture.pixels.chunks_exact(w * c) {
        let wide: Vec<u8> = row.chunks_exact(c).flat_map(|px| std::iter::repeat_n(px, factor).flatten().copied()).collect();
        for _ in 0..factor {
            pixels.extend_from_slice(&wide);
        }
    }
    Picture { width, height: picture.height * factor, channels: c, pixels }
}

/// Encodes a PNG with `text` as tEXt/iTXt chunks (keyword, value).
pub fn png_bytes(picture: &Picture, text: &[(String, String)]) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, picture.width as u32, picture.height as u32);
        encoder.set_color(if picture.channels == 3 { png::ColorType::Rgb } else { png::ColorType::Grayscale });
        encoder.set_depth(png::BitDepth::Eight);
        for (key, value) in text {
            encoder.add_itxt_chunk(key.clone(), value.clone()).map_err(|e| ImageError::Encode(e.to_string()))?;
        }
        let mut writer = encoder.write_header().map_err(|e| ImageError::Encode(e.to_string()))?;
        writer.write_image_data(&picture.pixels).map_err(|e| ImageError::Encode(e.to_string()))?;
        writer.finish().map_err(|e| ImageError::Encode(e.to_string()))?;
    }
    Ok(out)
}

/// Writes a PNG atomically (temporary file, then rename).
/// The PNG text chunk keyword under which every PNG diffusion-lab writes (the window's exports and
/// `sample`'s images and grids) carries its settings.
pub const SETTINGS_CHUNK: &str = "diffusion-lab";

/// The settings text of a PNG: `{"request": <a GenerateRequest as JSON>, ...extra}` under
/// [`SETTINGS_CHUNK`]. The window's "Open settings from PNG…" reads the `request` back.
pub fn settings_text(request: serde_json::Value, extra: serde_json::Value) -> Vec<(String, String)> {
    let mut value = serde_json::json!({ "request": request });
    if let (Some(map), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra) {
        map.extend(extra);
    }
    vec![(SETTINGS_CHUNK.to_string(), value.to_string())]
}

pub fn save_png(path: &Path, picture: &Picture, text: &[(String, String)]) -> Result<(), ImageError> {
    let bytes = png_bytes(picture, text)?;
    crate::files::write_atomic(path, &bytes).map_err(|source| ImageError::Write { path: path.display().to_string(), source })
}

/// The text chunks of a PNG file (tEXt, zTXt and iTXt), as (keyword, value).
pub fn png_text(path: &Path) -> Result<Vec<(String, String)>, ImageError> {
    let read_error = |detail: String| ImageError::Read { path: path.display().to_string(), detail };
    let file = std::fs::File::open(path).map_err(|e| read_error(e.to_string()))?;
    png_text_from_reader(std::io::BufReader::new(file)).map_err(read_error)
}

/// The text chunks of PNG bytes (tEXt, zTXt and iTXt), as (keyword, value); the error says why they are
/// not a PNG. Chunks whose compressed text does not unpack are left out rather than failing the file.
pub fn png_text_from_bytes(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    png_text_from_reader(std::io::Cursor::new(bytes))
}

fn png_text_from_reader<R: std::io::BufRead + std::io::Seek>(reader: R) -> Result<Vec<(String, String)>, String> {
    let decoder = png::Decoder::new(reader);
    let reader = decoder.read_info().map_err(|e| e.to_string())?;
    let info = reader.info();
    let mut text: Vec<(String, String)> =
        info.uncompressed_latin1_text.iter().map(|c| (c.keyword.clone(), c.text.clone())).collect();
    for chunk in &info.compressed_latin1_text {
        if let Ok(value) = chunk.get_text() {
            text.push((chunk.keyword.clone(), value));
        }
    }
    for chunk in &info.utf8_text {
        if let Ok(value) = chunk.get_text() {
            text.push((chunk.keyword.clone(), value));
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_pictures_in_rows() {
        let pictures = pictures_from_batch(&[-1.0, 1.0, 1.0, -1.0, 1.0, 1.0], 3, 1, 1, 2);
        let g = grid(&pictures, 2, 1);
        assert_eq!((g.width, g.height), (5, 3));
        assert_eq!(&g.pixels[0..5], &[0, 255, 0, 255, 0]);
        assert_eq!(&g.pixels[10..15], &[255, 255, 0, 0, 0]);
    }

    #[test]
    fn scaling_repeats_each_pixel() {
        let picture = Picture { width: 2, height: 1, channels: 1, pixels: vec![10, 20] };
        let big = scaled(&picture, 2);
        assert_eq!((big.width, big.height), (4, 2));
        assert_eq!(big.pixels, vec![10, 10, 20, 20, 10, 10, 20, 20]);
    }

    #[test]
    fn png_round_trips_its_text_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let picture = Picture { width: 2, height: 2, channels: 1, pixels: vec![0, 64, 128, 255] };
        let text = vec![("diffusion-lab".to_string(), "{\"seed\": 3, \"λ\": 1}".to_string())];
        save_png(&path, &picture, &text).unwrap();
        assert_eq!(png_text(&path).unwrap(), text);
        let decoded = image::open(&path).unwrap().to_luma8();
        assert_eq!(decoded.into_raw(), picture.pixels);
    }
}
