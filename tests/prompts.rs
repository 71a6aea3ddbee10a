//! A prompt reaches the picture through the product's own paths (issue 34): with the built-in text model,
//! "dark …" draws darker pictures than "light …" from the same x_T, seed after seed, through the engine's run
//! (what the window does) and through `sample`; a negative prompt moves brightness away from its word; and
//! `eval --prompts` runs on a small case, its brightness rows the asked way. (tests/text.rs trains a tiny model
//! and calls the denoiser directly; this is the shipped model through the shipped paths.)

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use burn::prelude::*;
use diffusion_lab::diffusion::{Method, Sampler, Spacing};
use diffusion_lab::images::Picture;
use diffusion_lab::model::checkpoint::Checkpoint;
use diffusion_lab::model::{LoadedAutoencoder, LoadedUnet, ModelId, embedded};
use diffusion_lab::run::generate::{GenerateRequest, PromptRequest, RunHooks, run_generate};

/// Three seeds, eight images each: every comparison is made seed by seed, from the same x_T.
const SEEDS: [u64; 3] = [1, 2, 3];
const BATCH: usize = 8;
/// A fast sampler: DPM++ 2M (Karras spacing, as `sample` uses by default), 15 steps.
const STEPS: usize = 15;
/// Far beyond the slowest command here: a hung binary fails the test instead of hanging it.
const COMMAND_LIMIT: Duration = Duration::from_secs(900);

/// The garment each seed draws: the asked attribute must move brightness whatever the garment.
fn garment(seed: u64) -> &'static str {
    ["sneaker", "dress", "bag"][seed as usize % 3]
}

/// Mean pixel value (0 black … 1 white) over every pixel of `pictures`.
fn brightness(pictures: &[Picture]) -> f64 {
    let (sum, count) = pictures.iter().fold((0.0, 0usize), |(sum, count), p| {
        (sum + p.pixels.iter().map(|v| f64::from(*v)).sum::<f64>(), count + p.pixels.len())
    });
    sum / 255.0 / count as f64
}

struct TextModel {
    unet: LoadedUnet,
    autoencoder: LoadedAutoencoder,
    device: Device,
}

impl TextModel {
    fn load() -> Self {
        let device = Device::flex();
        let built_in = embedded::model_by_short_name("fashion-text").expect("the built-in text model");
        let unet = LoadedUnet::from_checkpoint(&Checkpoint::from_bytes(built_in.unet).unwrap(), &device).unwrap();
        let autoencoder = built_in.autoencoder.expect("a latent model has its autoencoder");
        let autoencoder = LoadedAutoencoder::from_checkpoint(&Checkpoint::from_bytes(autoencoder).unwrap(), &device);
        Self { unet, autoencoder: autoencoder.unwrap(), device }
    }

    /// What the window asks the engine for: `prompt` (and `negative`) from `seed`, guided at the default w.
    fn request(&self, prompt: &str, negative: &str, seed: u64) -> GenerateRequest {
        GenerateRequest {
            model: ModelId::BuiltIn(embedded::model_by_short_name("fashion-text").unwrap().name.into()),
            schedule: self.unet.header.training_schedule.unwrap_or_default(),
            sampler: Sampler::new(Method::DpmSolver2M, STEPS).with_spacing(Spacing::Karras),
            seed,
            batch: BATCH,
            class: Some(0),
            prompt: Some(PromptRequest { text: prompt.into(), negative: negative.into() }),
            guidance: diffusion_lab::model::denoise::DEFAULT_GUIDANCE,
            guidance_interval: None,
            guidance_method: Default::default(),
            init: None,
            interpolate: None,
            branch: None,
        }
    }

    /// Mean brightness of the pictures the engine's run of `prompt` (not `negative`) ends with.
    fn run(&self, prompt: &str, negative: &str, seed: u64) -> f64 {
        let request = self.request(prompt, negative, seed);
        let mut last = None;
        let mut emit = |frame: diffusion_lab::engine::Frame| last = Some(frame);
        let keep_going = || true;
        let hooks = RunHooks { keep_going: &keep_going, stream: false, emit: &mut emit };
        run_generate(&self.unet, Some(&self.autoencoder), &request, &self.device, hooks).unwrap();
        let pictures = last.expect("the run's result").pictures();
        assert_eq!(pictures.len(), BATCH);
        brightness(&pictures)
    }
}

/// The engine's run (the window's path): "dark X" is darker than "light X" from every seed's x_T.
#[test]
fn dark_and_light_prompts_move_brightness_the_asked_way_through_the_engine() {
    let model = TextModel::load();
    for seed in SEEDS {
        let (dark, light) = (format!("a dark {}", garment(seed)), format!("a light {}", garment(seed)));
        let (dark_mean, light_mean) = (model.run(&dark, "", seed), model.run(&light, "", seed));
        eprintln!("engine, seed {seed}: '{dark}' {dark_mean:.3}, '{light}' {light_mean:.3}");
        assert!(light_mean - dark_mean > 0.03, "seed {seed}: '{dark}' {dark_mean:.3} vs '{light}' {light_mean:.3}");
    }
}

/// A negative prompt steers away from its word: "a X" not "dark" is brighter than "a X" alone, and not
/// "light" darker, from every seed's x_T. (Tops, which fill much of the frame: on the whole picture's mean,
/// the negative word moves them 0.04-0.05 each way at the default w, sneakers and sandals about 0.015.)
#[test]
fn a_negative_prompt_moves_brightness_away_from_its_word() {
    let model = TextModel::load();
    for seed in SEEDS {
        let prompt = format!("a {}", ["t-shirt", "pullover", "shirt"][seed as usize % 3]);
        let none = model.run(&prompt, "", seed);
        let not_dark = model.run(&prompt, "dark", seed);
        let not_light = model.run(&prompt, "light", seed);
        eprintln!("engine, seed {seed}: '{prompt}' {none:.3}, not 'dark' {not_dark:.3}, not 'light' {not_light:.3}");
        assert!(not_dark - none > 0.02, "seed {seed}: not 'dark' {not_dark:.3} vs none {none:.3}");
        assert!(none - not_light > 0.02, "seed {seed}: not 'light' {not_light:.3} vs none {none:.3}");
    }
}

fn diffusion_lab(args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_diffusion-lab"));
    let out = common::output_within(command.args(args), COMMAND_LIMIT, &format!("diffusion-lab {}", args.join(" ")));
    assert!(out.status.success(), "diffusion-lab {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out
}

/// Mean brightness of every PNG `sample --out-dir` wrote into `dir`.
fn brightness_of_folder(dir: &Path) -> f64 {
    let pictures: Vec<Picture> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let image = image::open(entry.unwrap().path()).unwrap().into_luma8();
            Picture {
                width: image.width() as usize,
                height: image.height() as usize,
                channels: 1,
                pixels: image.into_raw(),
            }
        })
        .collect();
    assert_eq!(pictures.len(), BATCH);
    brightness(&pictures)
}

/// `sample --model fashion-text --prompt …` (the command line's path): "dark X" is darker than "light X" from
/// every seed.
#[test]
fn dark_and_light_prompts_move_brightness_the_asked_way_through_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (n, steps) = (BATCH.to_string(), STEPS.to_string());
    let sample = |prompt: &str, seed: u64| {
        let out = dir.path().join(format!("{seed}-{prompt}"));
        let seed = seed.to_string();
        let args = ["sample", "--model", "fashion-text", "--prompt", prompt, "--n", &n, "--seed", &seed];
        diffusion_lab(&[&args[..], &["--sampling-steps", &steps, "--out-dir", out.to_str().unwrap()]].concat());
        brightness_of_folder(&out)
    };
    for seed in SEEDS {
        let (dark, light) = (format!("a dark {}", garment(seed)), format!("a light {}", garment(seed)));
        let (dark_mean, light_mean) = (sample(&dark, seed), sample(&light, seed));
        eprintln!("sample, seed {seed}: '{dark}' {dark_mean:.3}, '{light}' {light_mean:.3}");
        assert!(light_mean - dark_mean > 0.03, "seed {seed}: '{dark}' {dark_mean:.3} vs '{light}' {light_mean:.3}");
    }
}

/// `eval --prompts --n 2` on the 500-image fixture (as both splits): every table comes out, and every class's
/// "dark X" measures darker than its "light X".
#[test]
fn eval_prompts_runs_on_a_small_case() {
    let fixture = common::fashion_mnist_fixture();
    let data = tempfile::tempdir().unwrap();
    for split in ["t10k", "train"] {
        for file in ["images-idx3-ubyte.gz", "labels-idx1-ubyte.gz"] {
            std::fs::copy(fixture.join(format!("t10k-{file}")), data.path().join(format!("{split}-{file}"))).unwrap();
        }
    }
    let dir = data.path().to_str().unwrap();
    let out = diffusion_lab(&["eval", "--prompts", "--model", "fashion-text", "--n", "2", "--fashion-mnist-dir", dir]);
    let table = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !["| prompt", "| class", "| ---"].iter().any(|h| l.starts_with(h)))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    assert_eq!(rows.iter().filter(|r| r.len() == 3).count(), 19, "a row per class word:\n{table}");
    assert_eq!(rows.iter().filter(|r| r.len() == 11).count(), 30, "a row per class and axis:\n{table}");
    let measure = |cell: &str| cell.split(' ').next().unwrap().parse::<f64>().unwrap();
    let brightness: Vec<(&str, f64, f64)> = rows
        .iter()
        .filter(|r| r.len() == 11 && r[1] == "Brightness")
        .map(|r| (r[0], measure(r[4]), measure(r[8])))
        .collect();
    assert_eq!(brightness.len(), 10, "{table}");
    for (class, dark, light) in &brightness {
        eprintln!("eval --prompts: dark {class} {dark:.3}, light {class} {light:.3}");
        assert!(light - dark > 0.05, "{class}: dark {dark:.3} vs light {light:.3}\n{table}");
    }
}
