//! The settings text a PNG carries, as the window restores it: parsed into a request, applied to the
//! window's settings, and checked against a model of 10 classes. Whatever the text, the result must be
//! settings the window can use: a second check finds nothing left to fix, and the schedule builds.
//! The check lives in the library (diffusion_lab::fuzz_checks), shared with tests/fuzz_inputs.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = diffusion_lab::fuzz_checks::settings(bytes);
});
