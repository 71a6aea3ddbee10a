//! What each fuzz target checks (fuzz/fuzz_targets/*.rs), in one place: the targets call these on the
//! fuzzer's bytes, and tests/fuzz_inputs.rs replays the stored seeds and regressions through the same
//! functions on the stable toolchain, so the two cannot drift apart.
//!
//! Each function takes raw bytes, returns whether they were accepted (parsed into a value the program
//! would use), and panics where a parser broke one of its promises: that panic is what a fuzzer reports
//! as a crash, and what the replay test turns into a failure.

use std::path::Path;

use burn::prelude::*;

use crate::app::state::Settings;
use crate::data::idx::{parse_idx, write_idx};
use crate::eval::Judge;
use crate::images::png_text_from_bytes;
use crate::model::checkpoint::Checkpoint;
use crate::model::{LoadedAutoencoder, LoadedUnet};
use crate::run::png_settings::{request_from_png_text, request_from_settings_json};

/// A target's check: whether the input was accepted; it panics where the parser broke its promise.
pub type Check = fn(&[u8]) -> bool;

/// Every fuzz target by name (the folder names under fuzz/seeds and fuzz/regressions), with its check.
pub const TARGETS: [(&str, Check); 4] =
    [("idx", idx), ("checkpoint", checkpoint), ("png_text", png_text), ("settings", settings)];

/// The IDX reader (Fashion-MNIST's format, raw or gzipped): an error, or an array whose data is exactly
/// as long as its dimensions say; an uncompressed file reads back to what it was.
pub fn idx(bytes: &[u8]) -> bool {
    let Ok(array) = parse_idx(bytes, Path::new("fuzz.idx")) else { return false };
    assert_eq!(array.dims.iter().product::<usize>(), array.data.len(), "the data is as long as the dimensions say");
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        assert_eq!(write_idx(&array.dims, &array.data), bytes, "an uncompressed IDX file writes back byte for byte");
    }
    true
}

/// A model file as the window and the command line open it: the container (signature, version, JSON
/// header, sections), then each kind's config check and weight loading. Accepted when one of the model
/// kinds loads from it; never a panic or an allocation the file cannot back.
pub fn checkpoint(bytes: &[u8]) -> bool {
    let Ok(checkpoint) = Checkpoint::from_bytes(bytes) else { return false };
    let again = match Checkpoint::from_bytes(&checkpoint.to_bytes()) {
        Ok(again) => again,
        Err(e) => panic!("a checkpoint that was read writes back unreadable: {e}"),
    };
    assert_eq!(again.header, checkpoint.header, "a checkpoint that was read writes back the same header");
    let device = Device::flex();
    // Every loader runs (no short-circuit): each must survive any container that reads.
    let loaded = [
        LoadedUnet::from_checkpoint(&checkpoint, &device).is_ok(),
        LoadedAutoencoder::from_checkpoint(&checkpoint, &device).is_ok(),
        Judge::from_checkpoint(&checkpoint, &device).is_ok(),
    ];
    loaded.contains(&true)
}

/// "Open settings from PNG…" up to the settings: a PNG's text chunks, and whatever settings chunk they
/// hold parsed into a request. Accepted when a request comes out.
pub fn png_text(bytes: &[u8]) -> bool {
    let Ok(text) = png_text_from_bytes(bytes) else { return false };
    request_from_png_text(&text, "fuzz.png").is_ok()
}

/// The settings text a PNG carries, as the window restores it: parsed into a request, applied to the
/// window's settings and checked against a model of 10 classes. Whatever the text, the result must be
/// settings the window can use: a second check finds nothing left to fix, and the schedule builds.
pub fn settings(bytes: &[u8]) -> bool {
    let Ok(json) = std::str::from_utf8(bytes) else { return false };
    let Ok(request) = request_from_settings_json(json, "fuzz.png") else { return false };
    let mut settings = Settings::default();
    settings.apply_request(&request);
    settings.sanitize(10);
    assert_eq!(settings.sanitize(10), Vec::<String>::new(), "sanitize must leave valid settings");
    assert!(settings.schedule.build().is_ok(), "sanitized settings must hold a schedule that builds");
    true
}
