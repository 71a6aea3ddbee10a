//! Mutation tests for the three parsers that read files a user hands the program: the IDX reader, the
//! checkpoint header and the PNG settings reader. Valid inputs are damaged at random (bytes flipped,
//! inserted, deleted, cut) thousands of times; every result must be a value or an error, never a panic.
//! These loops run with every `cargo test`; the coverage-guided fuzz targets in fuzz/ (nightly only) go
//! deeper, and what they found is replayed by tests/fuzz_inputs.rs.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `bytes` with one to eight random damages.
fn mutate(bytes: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..rng.random_range(1..=8) {
        let at = if out.is_empty() { 0 } else { rng.random_range(0..out.len()) };
        match rng.random_range(0..5) {
            0 if !out.is_empty() => out[at] ^= 1 << rng.random_range(0..8),
            1 if !out.is_empty() => out[at] = rng.random(),
            2 => out.insert(at, rng.random()),
            3 if !out.is_empty() => {
                out.remove(at);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Damages `valid` `rounds` times; `parse` says whether it accepted its input (parsed it into a value).
/// The undamaged input must be accepted: a parser that refused it would refuse every mutant at its
/// first check, and the rounds would never reach the code they are meant to shake.
fn never_panics(name: &str, seed: u64, valid: &[u8], rounds: usize, parse: impl Fn(&[u8]) -> bool) {
    assert!(parse(valid), "{name}: the undamaged input ({} bytes) is not accepted", valid.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for round in 0..rounds {
        let input = mutate(valid, &mut rng);
        if catch_unwind(AssertUnwindSafe(|| parse(&input))).is_err() {
            panic!("{name}: round {round} (seed {seed}) panicked on {} bytes", input.len());
        }
    }
}

#[test]
fn the_idx_reader_never_panics() {
    use diffusion_lab::data::idx::{parse_idx, write_idx};
    let raw = write_idx(&[3, 4, 5], &(0..60).collect::<Vec<u8>>());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let packed = gz.finish().unwrap();
    let source = Path::new("fuzz.idx");
    never_panics("raw IDX", 1, &raw, 20_000, |bytes| parse_idx(bytes, source).is_ok());
    never_panics("gzipped IDX", 2, &packed, 5_000, |bytes| parse_idx(bytes, source).is_ok());
}

#[test]
fn the_checkpoint_header_never_panics() {
    use diffusion_lab::model::checkpoint::Checkpoint;
    let dir = tempfile::tempdir().unwrap();
    let unet = Checkpoint::read(&common::tiny_unet_file(dir.path())).unwrap();
    // The real header before one small section: the damage lands where the parsing happens (signature,
    // version, header length, JSON header, section table), and the file is still a whole valid one.
    let small = Checkpoint::new(unet.header.clone()).with_section("weights", vec![7; 16]).to_bytes();
    never_panics("checkpoint header", 3, &small, 20_000, |bytes| Checkpoint::from_bytes(bytes).is_ok());
}

#[test]
fn the_png_settings_reader_never_panics() {
    use diffusion_lab::images::{Picture, png_bytes};
    use diffusion_lab::run::png_settings::settings_text;
    let request = diffusion_lab::app::state::Settings::default().request(false);
    let picture = Picture { width: 4, height: 4, channels: 1, pixels: vec![128; 16] };
    let png = png_bytes(&picture, &settings_text(&request, serde_json::json!({ "t": 0 }))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.png");
    never_panics("PNG settings", 4, &png, 3_000, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        diffusion_lab::run::png_settings::settings_from_png(&path).is_ok()
    });
}
