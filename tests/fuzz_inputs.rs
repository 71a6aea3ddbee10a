//! The fuzz targets' inputs (see fuzz/README.md), replayed on the stable toolchain:
//! - fuzz/seeds/<target>: one valid file of each kind, so that fuzzing starts deep inside each parser.
//!   They must stay valid, or the fuzzer would start from the outside again.
//! - fuzz/regressions/<target>: every input a fuzzer found that once crashed or hung. Each must now be
//!   an error or a value, never a panic, with the same checks as the fuzz target: both call
//!   `diffusion_lab::fuzz_checks`.
//!
//! `cargo test --release --test fuzz_inputs -- --ignored` rewrites the seeds (after a format change).

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use burn::prelude::*;
use diffusion_lab::app::state::Settings;
use diffusion_lab::data::idx::write_idx;
use diffusion_lab::fuzz_checks::TARGETS;
use diffusion_lab::images::{Picture, png_bytes};
use diffusion_lab::model::checkpoint::{Checkpoint, CheckpointHeader, ModelKind, bytes_from_module};
use diffusion_lab::run::png_settings::settings_text;

fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target)
}

/// The input files in `dir`, sorted; a folder that is not there is none, any other read error fails.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", dir.display()),
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())).path())
        .filter(|p| p.is_file() && !p.ends_with("README.md"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_is_a_valid_input_of_its_kind() {
    for (target, check) in TARGETS {
        let seeds = files_in(&fuzz_dir("seeds", target));
        assert!(!seeds.is_empty(), "fuzz/seeds/{target} is empty");
        for seed in seeds {
            let bytes = std::fs::read(&seed).unwrap();
            assert!(check(&bytes), "{} is not accepted", seed.display());
        }
    }
}

#[test]
fn no_input_the_fuzzers_found_crashes() {
    // Without the folder (a bad checkout, a rename) the loop below would replay nothing and pass.
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    assert!(regressions.is_dir(), "{} is missing: nothing would be replayed", regressions.display());
    // A folder named for no target (a typo, a renamed target) would be skipped silently.
    for entry in std::fs::read_dir(&regressions).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(TARGETS.iter().any(|(target, _)| *target == name), "fuzz/regressions/{name} is no fuzz target");
        }
    }
    let mut replayed = 0;
    for (target, check) in TARGETS {
        for input in files_in(&fuzz_dir("regressions", target)) {
            let bytes = std::fs::read(&input).unwrap();
            if catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err() {
                panic!("{} panicked", input.display());
            }
            replayed += 1;
        }
    }
    assert!(replayed > 0, "{} holds no input: nothing was replayed", regressions.display());
}

fn header(kind: ModelKind, config: serde_json::Value) -> CheckpointHeader {
    CheckpointHeader {
        kind,
        config,
        training_schedule: Some(diffusion_lab::diffusion::BetaSchedule::linear(1000)),
        log_snr_range: Some((-20.0, 10.0)),
        step: 0,
        extra: serde_json::Value::Null,
        sections: Vec::new(),
    }
}

/// Small files of each kind: a fuzzer mutates a few kilobytes far faster than the real megabytes.
#[test]
#[ignore = "rewrites fuzz/seeds; run by hand after a format change"]
fn write_seeds() {
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir("seeds", target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    // IDX: a 2 x 3 x 3 image stack and labels, raw and gzipped.
    let images = write_idx(&[2, 3, 3], &(0..18).collect::<Vec<u8>>());
    write("idx", "images.idx", &images);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &write_idx(&[4], &[0, 9, 3, 1])).unwrap();
    write("idx", "labels.idx.gz", &gz.finish().unwrap());

    // Checkpoints: the smallest networks of each kind, half precision.
    use diffusion_lab::model::UNetConfig;
    use diffusion_lab::model::autoencoder::AutoencoderConfig;
    use diffusion_lab::model::classifier::ClassifierConfig;
    let device = Device::flex();
    let unet = UNetConfig::new()
        .with_channels(vec![4, 8])
        .with_groups(2)
        .with_image_size(4)
        .with_context_dim(4)
        .with_class_tokens(1)
        .with_self_attention_levels(vec![1])
        .with_cross_attention_levels(vec![1]);
    let autoencoder =
        AutoencoderConfig::new().with_image_size(4).with_channels(vec![2, 2]).with_groups(1).with_latent_channels(1);
    let classifier = ClassifierConfig::new().with_image_size(4).with_feature_dim(2).with_num_classes(2);
    let files = [
        (
            "unet.dlab",
            ModelKind::Unet,
            serde_json::to_value(&unet).unwrap(),
            bytes_from_module(&unet.init(&device), true).unwrap(),
        ),
        (
            "autoencoder.dlab",
            ModelKind::Autoencoder,
            serde_json::to_value(&autoencoder).unwrap(),
            bytes_from_module(&autoencoder.init(&device), true).unwrap(),
        ),
        (
            "classifier.dlab",
            ModelKind::Classifier,
            serde_json::to_value(&classifier).unwrap(),
            bytes_from_module(&classifier.init(&device), true).unwrap(),
        ),
    ];
    for (name, kind, config, weights) in files {
        write("checkpoint", name, &Checkpoint::new(header(kind, config)).with_section("weights", weights).to_bytes());
    }

    // A PNG as the app writes it, and its settings text alone.
    let request = Settings::default().request(false);
    let text = settings_text(&request, serde_json::json!({ "t": 0 }));
    let picture = Picture { width: 2, height: 2, channels: 1, pixels: vec![0, 64, 128, 255] };
    write("png_text", "frame.png", &png_bytes(&picture, &text).unwrap());
    write("settings", "settings.json", text[0].1.as_bytes());
}
