//! Images out of tensors: [-1, 1] values to 8-bit pixels, grids of samples, and PNGs that carry their
//! generation settings as text chunks.

use std::path::Path;

use crate::data::u8_from_unit;

pub mod font;
pub mod plot;

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
            let pixels =
                (0..plane).flat_map(|p| (0..channels).map(move |c| u8_from_unit(image[c * plane + p]))).collect();
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

/// The labels of a [`labelled_grid`]: a title and one label per column and per row.
#[derive(Clone, Debug, PartialEq)]
pub struct GridLabels {
    pub x_title: String,
    pub columns: Vec<String>,
    pub y_title: String,
    pub rows: Vec<String>,
}

/// Background and text of labelled grids.
const PAPER: u8 = 255;
const INK: u8 = 0;

/// Where everything of a [`labelled_grid`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridLayout {
    /// Size and channels of a cell.
    pub cell: (usize, usize, usize),
    pub columns: usize,
    pub rows: usize,
    /// Font scale of the labels.
    pub scale: usize,
    pub width: usize,
    pub height: usize,
    row_label_width: usize,
    header: usize,
    line: usize,
    gap: usize,
}

impl GridLayout {
    /// Every cell has the size of the first one present (28 x 28 gray while none is).
    pub fn new(cells: &[Option<Picture>], labels: &GridLabels, gap: usize) -> Self {
        let columns = labels.columns.len().max(1);
        let cell = cells.iter().flatten().next().map_or((28, 28, 1), |p| (p.width, p.height, p.channels));
        // Labels at twice the font size where they fit their cell, else at its size.
        let longest = labels.columns.iter().map(|l| font::text_width(l, 1)).max().unwrap_or(0);
        let scale = if 2 * longest <= cell.0 { 2 } else { 1 };
        let line = (font::HEIGHT + 3) * scale;
        let y_title = y_title_text(labels);
        let row_label_width =
            labels.rows.iter().chain([&y_title]).map(|l| font::text_width(l, scale)).max().unwrap_or(0)
                + font::ADVANCE * scale
                + gap;
        let header = 2 * line + gap;
        let rows = labels.rows.len().max(cells.len().div_ceil(columns));
        let width = row_label_width + columns * (cell.0 + gap);
        let height = header + rows * (cell.1 + gap);
        Self { cell, columns, rows, scale, width, height, row_label_width, header, line, gap }
    }

    /// (x, y) of the top-left pixel of cell `index` (row-major).
    pub fn cell_origin(&self, index: usize) -> (usize, usize) {
        let (w, h, _) = self.cell;
        (
            self.row_label_width + (index % self.columns) * (w + self.gap),
            self.header + (index / self.columns) * (h + self.gap),
        )
    }
}

/// "y: <title>", or nothing for a single unlabelled row (a strip).
fn y_title_text(labels: &GridLabels) -> String {
    if labels.y_title.is_empty() { String::new() } else { format!("y: {}", labels.y_title) }
}

/// Cells (row-major, `labels.columns.len()` per row; `None` for a cell not drawn yet, left blank) under a
/// header of column labels and beside a column of row labels, as an X/Y plot: "x: <title>" above the
/// columns, "y: <title>" above the row labels.
pub fn labelled_grid(cells: &[Option<Picture>], labels: &GridLabels, gap: usize) -> Picture {
    let layout = GridLayout::new(cells, labels, gap);
    let (w, h, c) = layout.cell;
    let (scale, line) = (layout.scale, layout.line);
    let mut picture = Picture {
        width: layout.width,
        height: layout.height,
        channels: c,
        pixels: vec![PAPER; layout.width * layout.height * c],
    };
    font::draw_text(&mut picture, layout.row_label_width, gap, &format!("x: {}", labels.x_title), scale, INK);
    font::draw_text(&mut picture, gap, line + gap, &y_title_text(labels), scale, INK);
    for (i, label) in labels.columns.iter().enumerate() {
        font::draw_text(&mut picture, layout.cell_origin(i).0, line + gap, label, scale, INK);
    }
    for (j, label) in labels.rows.iter().enumerate() {
        let y = layout.cell_origin(j * layout.columns).1 + h.saturating_sub(font::HEIGHT * scale) / 2;
        font::draw_text(&mut picture, gap, y, label, scale, INK);
    }
    for (i, cell) in cells.iter().enumerate() {
        let Some(cell) = cell.as_ref().filter(|p| (p.width, p.height, p.channels) == (w, h, c)) else { continue };
        let (x0, y0) = layout.cell_origin(i);
        for y in 0..h {
            let start = ((y0 + y) * layout.width + x0) * c;
            picture.pixels[start..start + w * c].copy_from_slice(&cell.pixels[y * w * c..(y + 1) * w * c]);
        }
    }
    picture
}

/// Nearest-neighbour enlargement by a whole `factor` (pixel art stays crisp).
pub fn scaled(picture: &Picture, factor: usize) -> Picture {
    let factor = factor.max(1);
    let (w, c) = (picture.width, picture.channels);
    let width = w * factor;
    let mut pixels = Vec::with_capacity(picture.pixels.len() * factor * factor);
    for row in picture.pixels.chunks_exact(w * c) {
        let wide: Vec<u8> =
            row.chunks_exact(c).flat_map(|px| std::iter::repeat_n(px, factor).flatten().copied()).collect();
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

/// An endlessly looping animated GIF of `frames` (gray or RGB pictures of one size), each shown for its
/// delay in milliseconds.
pub fn gif_bytes(frames: &[(Picture, u32)]) -> Result<Vec<u8>, ImageError> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let encode_error = |e: image::ImageError| ImageError::Encode(e.to_string());
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder.set_repeat(Repeat::Infinite).map_err(encode_error)?;
        for (picture, delay) in frames {
            let rgba: Vec<u8> = match picture.channels {
                3 => picture.pixels.chunks_exact(3).flat_map(|c| [c[0], c[1], c[2], 255]).collect(),
                _ => picture.pixels.iter().flat_map(|v| [*v, *v, *v, 255]).collect(),
            };
            let buffer = image::RgbaImage::from_raw(picture.width as u32, picture.height as u32, rgba)
                .ok_or_else(|| ImageError::Encode("frame size mismatch".into()))?;
            let frame = image::Frame::from_parts(buffer, 0, 0, image::Delay::from_numer_denom_ms(*delay, 1));
            encoder.encode_frame(frame).map_err(encode_error)?;
        }
    }
    Ok(bytes)
}

/// The frames of a strip played there and back (1, 2, ..., n, ..., 2), each end held longer, for [`gif_bytes`].
pub fn there_and_back(pictures: &[Picture]) -> Vec<(Picture, u32)> {
    let n = pictures.len();
    pictures
        .iter()
        .chain(pictures.iter().rev().skip(1).take(n.saturating_sub(2)))
        .enumerate()
        .map(|(i, p)| (p.clone(), if i == 0 || i + 1 == n { 600 } else { 120 }))
        .collect()
}

/// Writes a PNG atomically (temporary file, then rename).
pub fn save_png(path: &Path, picture: &Picture, text: &[(String, String)]) -> Result<(), ImageError> {
    let bytes = png_bytes(picture, text)?;
    crate::files::write_atomic(path, &bytes)
        .map_err(|source| ImageError::Write { path: path.display().to_string(), source })
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
