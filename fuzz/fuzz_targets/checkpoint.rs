//! A model file, as the window and the command line open it: the container (signature, version, JSON
//! header, sections), then each kind's config check and weight loading. Any bytes are an error or a
//! model, never a panic or an allocation the file cannot back.
//! The check lives in the library (diffusion_lab::fuzz_checks), shared with tests/fuzz_inputs.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = diffusion_lab::fuzz_checks::checkpoint(bytes);
});
