//! Every kind of bad model file a user can hand the program: each is an error that names the cause, never a
//! panic, and the command line names the file.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;

use burn::prelude::*;
use diffusion_lab::diffusion::BetaSchedule;
use diffusion_lab::model::checkpoint::{Checkpoint, CheckpointHeader, ModelKind, bytes_from_module};
use diffusion_lab::model::{LoadedAutoencoder, LoadedUnet, UNetConfig};
use rand::{Rng, SeedableRng};

/// Each refusal takes well under a second; a hung binary fails the test instead of hanging it.
const COMMAND_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Loads `bytes` as a UNet the way the window and `sample` do; a panic fails the test with the case name.
fn load(case: &str, bytes: &[u8]) -> Result<LoadedUnet, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        Checkpoint::from_bytes(bytes).and_then(|c| LoadedUnet::from_checkpoint(&c, &Device::flex()))
    }));
    match outcome {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => panic!("{case}: loading panicked instead of failing"),
    }
}

fn header(kind: ModelKind, config: serde_json::Value) -> CheckpointHeader {
    CheckpointHeader {
        kind,
        config,
        training_schedule: Some(BetaSchedule::linear(1000)),
        log_snr_range: Some((-20.0, 10.0)),
        step: 0,
        extra: serde_json::Value::Null,
        sections: Vec::new(),
    }
}

fn tiny_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::read(common::tiny_unet_file(dir.path())).unwrap()
}

#[test]
fn a_good_file_loads() {
    assert!(load("good", &tiny_bytes()).is_ok());
}

#[test]
fn empty_truncated_and_random_files_are_errors() {
    let good = tiny_bytes();
    let error = load("empty", &[]).unwrap_err();
    assert!(error.contains("not a diffusion-lab checkpoint"), "{error}");
    // Truncated anywhere: every prefix of the header, and prefixes spread through the weights.
    let header_end = 16 + u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
    let cuts = (0..header_end + 64).chain((header_end..good.len()).step_by(997));
    for cut in cuts.filter(|c| *c < good.len()) {
        let error = load(&format!("truncated at {cut}"), &good[..cut]).unwrap_err();
        assert!(!error.is_empty());
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for len in [1, 7, 16, 100, 5000] {
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        assert!(load(&format!("{len} random bytes"), &bytes).is_err());
    }
    // The real signature followed by random bytes.
    let mut bytes = good[..8].to_vec();
    bytes.extend((0..4000).map(|_| rng.random::<u8>()));
    assert!(load("signature + random bytes", &bytes).is_err());
}

#[test]
fn another_kind_another_version_another_size_and_bad_configs_are_errors() {
    let good = tiny_bytes();
    let mut version = good.clone();
    version[8] = 99;
    let error = load("version 99", &version).unwrap_err();
    assert!(error.contains("format version 99"), "{error}");

    // An autoencoder where a UNet is expected.
    use diffusion_lab::model::autoencoder::AutoencoderConfig;
    let ae_config =
        AutoencoderConfig::new().with_image_size(8).with_channels(vec![8, 16]).with_groups(4).with_latent_channels(2);
    let ae = ae_config.init(&Device::flex());
    let ae_bytes = Checkpoint::new(header(ModelKind::Autoencoder, serde_json::to_value(&ae_config).unwrap()))
        .with_section("weights", bytes_from_module(&ae, false).unwrap())
        .to_bytes();
    let error = load("an autoencoder", &ae_bytes).unwrap_err();
    assert!(error.contains("wrong kind"), "{error}");
    // And a UNet where an autoencoder is expected.
    let error = Checkpoint::from_bytes(&good)
        .and_then(|c| LoadedAutoencoder::from_checkpoint(&c, &Device::flex()))
        .unwrap_err();
    assert!(error.to_string().contains("wrong kind"), "{error}");

    // The right kind, but weights of another size than its config says.
    let small = UNetConfig::tiny().with_image_size(8);
    let big = small.clone().with_channels(vec![16, 32]);
    let big_weights = bytes_from_module(&big.init(&Device::flex()), false).unwrap();
    let mismatched = Checkpoint::new(header(ModelKind::Unet, serde_json::to_value(&small).unwrap()))
        .with_section("weights", big_weights)
        .to_bytes();
    let error = load("weights of another size", &mismatched).unwrap_err();
    assert!(error.contains("do not fit the model"), "{error}");

    // A valid JSON header whose config cannot build a UNet.
    let model = small.init(&Device::flex());
    for (name, change) in [
        ("no levels", serde_json::json!({ "channels": [] })),
        ("indivisible groups", serde_json::json!({ "channels": [30, 60] })),
        ("zero groups", serde_json::json!({ "groups": 0 })),
        ("a string", serde_json::json!({ "channels": "many" })),
    ] {
        let mut config = serde_json::to_value(&small).unwrap();
        for (key, value) in change.as_object().unwrap() {
            config[key] = value.clone();
        }
        let bytes = Checkpoint::new(header(ModelKind::Unet, config))
            .with_section("weights", bytes_from_module(&model, false).unwrap())
            .to_bytes();
        let error = load(name, &bytes).unwrap_err();
        assert!(error.contains("UNet config"), "{name}: {error}");
    }

    // Configs that would allocate far more than the file holds are refused before anything is built
    // (without the checks, the first asks for ~6 TB and the second overflows the parameter count).
    for (name, channels, expected) in [
        ("channels far beyond the weights", vec![1 << 16, 1 << 16, 1 << 16], "weights section has only"),
        ("channels beyond the limit", vec![1usize << 40], "above the limit"),
    ] {
        let mut config = serde_json::to_value(&small).unwrap();
        config["channels"] = serde_json::json!(channels);
        let bytes = Checkpoint::new(header(ModelKind::Unet, config))
            .with_section("weights", bytes_from_module(&model, false).unwrap())
            .to_bytes();
        let error = load(name, &bytes).unwrap_err();
        assert!(error.contains(expected), "{name}: {error}");
    }
}

#[test]
fn corrupt_weight_bytes_fail_or_load_without_panicking() {
    let good = tiny_bytes();
    let header_end = 16 + u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for round in 0..40 {
        let mut bytes = good.clone();
        // Damage the weights section: its own header first (names, shapes, offsets), then anywhere.
        let span = if round < 20 { header_end..(header_end + 512).min(good.len()) } else { header_end..good.len() };
        for _ in 0..8 {
            let at = rng.random_range(span.clone());
            bytes[at] = rng.random();
        }
        // Either an error, or a model whose values were damaged (sampling then stops at non-finite values).
        let _ = load(&format!("corrupt weights, round {round}"), &bytes);
    }
}

#[test]
fn the_command_line_names_the_file_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty file.dlab", Vec::new(), "not a diffusion-lab checkpoint"),
        ("truncated ü.dlab", tiny_bytes()[..100].to_vec(), "truncated"),
        ("random.dlab", vec![7; 300], "not a diffusion-lab checkpoint"),
    ];
    for (name, bytes, cause) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_diffusion-lab"));
        command.args([
            "sample",
            "--n",
            "1",
            "--device",
            "cpu",
            "--model",
            path.to_str().unwrap(),
            "--out-dir",
            dir.path().join("out").to_str().unwrap(),
        ]);
        let out = common::output_within(&mut command, COMMAND_LIMIT, &format!("sample --model {name}"));
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert!(text.contains(name) && text.contains(cause), "{name}: {text}");
        assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
    }
    // A directory.
    let mut command = Command::new(env!("CARGO_BIN_EXE_diffusion-lab"));
    command.args([
        "sample",
        "--n",
        "1",
        "--device",
        "cpu",
        "--model",
        dir.path().to_str().unwrap(),
        "--out-dir",
        dir.path().join("out").to_str().unwrap(),
    ]);
    let out = common::output_within(&mut command, COMMAND_LIMIT, "sample --model on a directory");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(dir.path().to_str().unwrap()) && text.contains("directory"), "{text}");
}
