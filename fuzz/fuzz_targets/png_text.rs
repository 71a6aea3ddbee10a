//! "Open settings from PNG…" up to the settings text: any bytes are an error or the PNG's text chunks,
//! and whatever settings chunk they hold is parsed without a panic.
#![no_main]

use diffusion_lab::engine::png_settings::request_from_png_text;
use diffusion_lab::images::png_text_from_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = png_text_from_bytes(bytes) else { return };
    let _ = request_from_png_text(&text, "fuzz.png");
});
