//! Training recipes through the product's paths: `train --objective --weighting` trains the chosen recipe
//! and keeps it when resumed (a conflicting flag refused, nothing written), bad recipes are refused with one
//! line, old checkpoints (the built-in models) load as ε models, and the quality meter refuses data
//! without the classifier's classes.

mod common;

use std::path::Path;
use std::process::Command;

use diffusion_lab::diffusion::{Objective, Weighting};
use diffusion_lab::model::LoadedUnet;
use diffusion_lab::model::checkpoint::Checkpoint;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diffusion-lab"))
}

/// Two classes of 8x8 gray images.
fn image_folder(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("images");
    for (class, shade) in [("dark", 40u8), ("light", 210)] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..8u8 {
            let image = image::GrayImage::from_fn(8, 8, |x, y| {
                image::Luma([shade.wrapping_add((x as u8 * 7 + y as u8 * 3) ^ i)])
            });
            image.save(data.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    data
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut command = bin();
    command.args(["train", "--data", data.to_str().unwrap(), "--image-size", "8", "--channels", "8,16"]);
    command.args(["--batch-size", "4", "--preview-every", "1000", "--out", out.to_str().unwrap()]);
    command.args(extra);
    command.output().unwrap()
}

fn recipe_of(out: &Path) -> (Objective, Weighting) {
    let checkpoint = Checkpoint::read(&out.join("checkpoint.dlab")).unwrap();
    let config: diffusion_lab::model::UNetConfig = serde_json::from_value(checkpoint.header.config.clone()).unwrap();
    let record: diffusion_lab::train::ddpm::TrainRecord = serde_json::from_value(checkpoint.header.extra).unwrap();
    let train: diffusion_lab::train::ddpm::TrainConfig = serde_json::from_value(record.train_config).unwrap();
    (config.objective, train.weighting)
}

#[test]
fn a_run_keeps_its_recipe_and_a_conflicting_flag_is_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = image_folder(dir.path());
    let out = dir.path().join("run");
    let first = train(&data, &out, &["--steps", "6", "--objective", "v", "--weighting", "min-snr:3"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(recipe_of(&out), (Objective::V, Weighting::MinSnr { gamma: 3.0 }));

    let log_before = std::fs::read(out.join("loss.csv")).unwrap();
    let checkpoint_before = std::fs::read(out.join("checkpoint.dlab")).unwrap();
    for (flag, value, named) in [("--objective", "x0", "objective v"), ("--weighting", "edm", "weighting min-snr:3")] {
        let refused = train(&data, &out, &["--steps", "9", "--resume", flag, value]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{flag} {value} on a resumed run was accepted");
        assert!(stderr.contains(named) && stderr.contains(value) && stderr.contains("keeps its recipe"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert_eq!(std::fs::read(out.join("loss.csv")).unwrap(), log_before, "the loss log was touched");
        assert_eq!(
            std::fs::read(out.join("checkpoint.dlab")).unwrap(),
            checkpoint_before,
            "the checkpoint was touched"
        );
    }

    // Without the flags, or with the same recipe named, it resumes and keeps it.
    let resumed = train(&data, &out, &["--steps", "9", "--resume"]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let again = train(&data, &out, &["--steps", "12", "--resume", "--objective", "v", "--weighting", "min-snr:3"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(recipe_of(&out), (Objective::V, Weighting::MinSnr { gamma: 3.0 }));
    assert_eq!(Checkpoint::read(&out.join("checkpoint.dlab")).unwrap().header.step, 12);
}

#[test]
fn every_objective_trains_and_samples_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = image_folder(dir.path());
    for (objective, weighting) in
        [("eps", "edm"), ("x0", "plain"), ("v", "plain"), ("flow", "uniform-t"), ("flow", "logit-normal")]
    {
        let out = dir.path().join(format!("{objective}-{weighting}"));
        let trained = train(&data, &out, &["--steps", "4", "--objective", objective, "--weighting", weighting]);
        assert!(trained.status.success(), "{objective}: {}", String::from_utf8_lossy(&trained.stderr));
        let (saved, saved_weighting) = recipe_of(&out);
        assert_eq!(saved.name(), objective);
        if weighting == "edm" {
            // σ_data measured on the data: the fixture's values spread well away from 0.
            let Weighting::Edm { sigma_data, .. } = saved_weighting else { panic!("{saved_weighting:?}") };
            assert!(sigma_data > 0.3 && sigma_data < 1.0, "σ_data = {sigma_data}");
        }
        let samples = dir.path().join(format!("samples-{objective}-{weighting}"));
        let sampled = bin()
            .args([
                "sample",
                "--model",
                out.join("checkpoint.dlab").to_str().unwrap(),
                "--n",
                "2",
                "--sampling-steps",
                "3",
            ])
            .args(["--out-dir", samples.to_str().unwrap(), "--device", "cpu"])
            .output()
            .unwrap();
        assert!(sampled.status.success(), "{objective}: {}", String::from_utf8_lossy(&sampled.stderr));
        assert_eq!(std::fs::read_dir(&samples).unwrap().count(), 2);
    }
}

#[test]
fn bad_recipes_and_a_meter_without_its_classes_are_refused_in_one_line_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = image_folder(dir.path());
    for (flags, named) in [
        (vec!["--objective", "score"], "unknown objective `score`"),
        (vec!["--weighting", "min-snr:0"], "γ must be above 0"),
        (vec!["--weighting", "min-snr:-1"], "γ must be above 0"),
        (vec!["--weighting", "loud"], "unknown weighting `loud`"),
        (vec!["--quality-every", "5"], "Fashion-MNIST classifier's ten classes"),
    ] {
        let out = dir.path().join("refused");
        let mut args = vec!["--steps", "3"];
        args.extend(&flags);
        let refused = train(&data, &out, &args);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{flags:?} was accepted");
        assert!(stderr.contains(named), "{flags:?}: {stderr}");
        assert!(!out.exists(), "{flags:?} wrote {}", out.display());
    }
}

/// Checkpoints from before objectives existed have no `objective` in their config: they load as ε models
/// and sample as before (the built-in models are such checkpoints).
#[test]
fn old_checkpoints_load_as_eps_models() {
    use burn::prelude::*;
    let device = Device::flex();
    for bytes in [diffusion_lab::model::embedded::FASHION_UNET, diffusion_lab::model::embedded::FASHION_LATENT_UNET] {
        let checkpoint = Checkpoint::from_bytes(bytes).unwrap();
        assert!(checkpoint.header.config.get("objective").is_none(), "a built-in model names its objective");
        let record = checkpoint.header.extra.get("train_config").cloned().unwrap_or_default();
        assert!(record.get("weighting").is_none());
        let model = LoadedUnet::from_checkpoint(&checkpoint, &device).unwrap();
        assert_eq!(model.model.objective(), Objective::Eps);
        assert_eq!(model.config.objective, Objective::Eps);
    }
}
