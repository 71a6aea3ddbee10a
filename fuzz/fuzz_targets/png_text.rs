//! "Open settings from PNG…" up to the settings text: any bytes are an error or the PNG's text chunks,
//! and whatever settings chunk they hold is parsed without a panic.
//! The check lives in the library (diffusion_lab::fuzz_checks), shared with tests/fuzz_inputs.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = diffusion_lab::fuzz_checks::png_text(bytes);
});
