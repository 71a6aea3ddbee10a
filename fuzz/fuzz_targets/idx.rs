//! The IDX reader (Fashion-MNIST's format, raw or gzipped): any bytes are an error or an array whose
//! data is exactly as long as its dimensions say, and an uncompressed file reads back to what it was.
//! The check lives in the library (diffusion_lab::fuzz_checks), shared with tests/fuzz_inputs.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = diffusion_lab::fuzz_checks::idx(bytes);
});
