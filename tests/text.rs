//! Text prompts end to end on the library: a tiny text model trained on the real-image fixture follows a
//! two-word prompt (dark vs light), its cross-attention over the prompt's tokens is a distribution, prompts
//! round-trip through PNG settings, and prompt grids read their axes.

mod common;

use std::ops::ControlFlow;

use burn::prelude::*;
use diffusion_lab::data::{Dataset, Split};
use diffusion_lab::diffusion::{BetaSchedule, NoiseSource, Sampler};
use diffusion_lab::engine::GenerateRequest;
use diffusion_lab::model::UNetConfig;
use diffusion_lab::model::denoise::{Condition, denoise};
use diffusion_lab::run::generate::{PromptRequest, prompt_condition};
use diffusion_lab::run::grid::{GridAxis, GridSetting, grid_requests};
use diffusion_lab::text::Captions;
use diffusion_lab::train::ddpm::{DdpmTrainer, TrainConfig};
use diffusion_lab::train::training::text_config_for;

fn fixture() -> Dataset {
    Dataset::fashion_mnist(&common::fashion_mnist_fixture(), Split::Test).expect("the fixture loads")
}

/// Mean intensity (0 black … 1 white) of a picture with values in [-1, 1].
fn brightness(image: &[f32]) -> f64 {
    image.iter().map(|v| (f64::from(*v) + 1.0) / 2.0).sum::<f64>() / image.len() as f64
}

/// Samples of `prompt` from `model`: DDIM 20 steps, guided.
fn samples(trainer: &DdpmTrainer, prompt: &str, n: usize, side: usize, device: &Device) -> Vec<Vec<f32>> {
    let config = &trainer.unet_config;
    let text = config.text.as_ref().expect("a text model");
    let plan = Sampler::ddim(20, 0.0).plan(&BetaSchedule::cosine(1000).build().unwrap()).unwrap();
    let mut noise = NoiseSource::new(5);
    let x_start = noise.tensor([n, 1, side, side], device);
    let condition = Condition {
        prompt: Some(prompt_condition(text, &PromptRequest::new(prompt), None, n, device).unwrap()),
        ..Condition::classes(Tensor::<1, Int>::full([n], config.num_classes as i64, device))
    };
    let x0 = denoise(&trainer.ema, &plan, x_start, &condition, 3.0, &mut noise, None, |_| ControlFlow::Continue(()));
    let values = diffusion_lab::model::read_f32(x0).unwrap();
    values.chunks(side * side).map(<[f32]>::to_vec).collect()
}

/// The fixture at 14x14 (means of 2x2 pixels): brightness survives, and a tiny model trains 4x faster.
fn half_size(data: &Dataset) -> Dataset {
    let images = data
        .images
        .chunks(28 * 28)
        .flat_map(|image| {
            (0..14 * 14).map(move |k| {
                let (y, x) = (2 * (k / 14), 2 * (k % 14));
                (image[y * 28 + x] + image[y * 28 + x + 1] + image[(y + 1) * 28 + x] + image[(y + 1) * 28 + x + 1])
                    / 4.0
            })
        })
        .collect();
    Dataset { images, height: 14, width: 14, ..data.clone() }
}

/// A tiny text UNet trained 1200 steps on the fixture (at 14x14), each image captioned "dark garment" or "light
/// garment" by its brightness against the set's median, draws darker pictures for "dark" than for "light" from
/// the same x_T (a model that ignored the words would draw the same pictures for both).
#[test]
fn a_tiny_text_model_follows_dark_and_light() {
    let device = Device::flex();
    let data = half_size(&fixture());
    let values: Vec<f64> = data.images.chunks(data.image_len()).map(brightness).collect();
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let captions = Captions::Given(
        values.iter().map(|b| if *b < median { "dark garment" } else { "light garment" }.to_string()).collect(),
    );
    let unet = UNetConfig::tiny()
        .with_channels(vec![16, 32])
        .with_context_dim(16)
        .with_image_size(14)
        .with_text(Some(text_config_for(&captions)));
    unet.validate().unwrap();
    let config = TrainConfig::new().with_batch_size(32).with_warmup_steps(20).with_steps(1200).with_learning_rate(3e-3);
    let mut trainer = DdpmTrainer::new(config, unet, &device, "fixture".into()).with_captions(captions);
    for _ in 0..1200 {
        trainer.train_step(&data);
    }
    let mean = |pictures: &[Vec<f32>]| pictures.iter().map(|p| brightness(p)).sum::<f64>() / pictures.len() as f64;
    let dark = mean(&samples(&trainer, "dark garment", 16, 14, &device));
    let light = mean(&samples(&trainer, "light garment", 16, 14, &device));
    let (data_dark, data_light) = {
        let half = |dark: bool| {
            let picked: Vec<f64> = values.iter().copied().filter(|b| (*b < median) == dark).collect();
            picked.iter().sum::<f64>() / picked.len() as f64
        };
        (half(true), half(false))
    };
    eprintln!(
        "brightness: dark {dark:.3}, light {light:.3} (data: dark half {data_dark:.3}, light half {data_light:.3})"
    );
    assert!(light - dark > 0.2 * (data_light - data_dark), "dark {dark:.3} vs light {light:.3}");
}

/// Cross-attention of a text model spreads each position's weight over the prompt's tokens: the start
/// token, one per word and the padding, summing to 1; the first word's share differs between two prompts.
#[test]
fn attention_over_the_prompt_sums_to_one() {
    let device = Device::flex();
    let captions = Captions::Given(vec!["dark boot".into(), "light sandal".into()]);
    let unet = UNetConfig::tiny().with_text(Some(text_config_for(&captions)));
    let model = unet.init(&device);
    let text = unet.text.as_ref().unwrap();
    let tokens = text.context_tokens;
    let ids = prompt_condition(text, &PromptRequest::new("dark boot"), None, 2, &device).unwrap().ids;
    let context = model.prompt_context(ids).expect("a text model");
    let x = NoiseSource::new(1).tensor::<4>([2, 1, 28, 28], &device);
    let (_, layers) = model.forward_with_attention(x, Tensor::<1>::from_floats([0.0, 1.0], &device), context);
    assert!(!layers.is_empty());
    for layer in layers {
        let [batch, _heads, positions, keys] = layer.weights.dims();
        assert_eq!((batch, positions, keys), (2, layer.height * layer.width, tokens), "{}", layer.layer);
        let sums = diffusion_lab::model::read_f32(layer.weights.sum_dim(3)).unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-4), "{}: sums {:?}", layer.layer, &sums[..4]);
    }
}

/// A prompt and its negative survive a PNG's settings; a class model's request carries none.
#[test]
fn prompts_round_trip_through_png_settings() {
    let request = GenerateRequest {
        prompt: Some(PromptRequest { text: "a dark ankle boot, large".into(), negative: "patterned".into() }),
        ..grid_base()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prompt.png");
    let picture = diffusion_lab::images::Picture { width: 2, height: 2, channels: 1, pixels: vec![0, 64, 128, 255] };
    let text = diffusion_lab::run::png_settings::settings_text(&request, serde_json::json!({}));
    diffusion_lab::images::save_png(&path, &picture, &text).unwrap();
    let back = diffusion_lab::run::png_settings::settings_from_png(&path).unwrap();
    assert_eq!(back.prompt, request.prompt);
    assert_eq!(back, request);
    let plain = grid_base();
    let text = diffusion_lab::run::png_settings::settings_text(&plain, serde_json::json!({}));
    assert!(!text.iter().any(|(_, v)| v.contains("prompt")), "no prompt key for a class run: {text:?}");
}

fn grid_base() -> GenerateRequest {
    GenerateRequest {
        model: diffusion_lab::model::ModelId::default_built_in(),
        schedule: BetaSchedule::cosine(1000),
        sampler: Sampler::ddim(20, 0.0),
        seed: 3,
        batch: 1,
        class: None,
        prompt: None,
        guidance: 2.0,
        guidance_interval: None,
        guidance_method: Default::default(),
        init: None,
        interpolate: None,
        branch: None,
    }
}

/// `prompt=` takes whole prompts (split on `|` where commas are inside them); `prompt_sr=` replaces its
/// first value in the base prompt, and says so when the word is not there.
#[test]
fn prompt_axes() {
    let x: GridAxis = "prompt=dark boot, large|light sandal".parse().unwrap();
    assert_eq!(x.setting, GridSetting::Prompt);
    assert_eq!(x.values, ["dark boot, large", "light sandal"]);
    let y: GridAxis = "prompt_sr=dark,light,plain".parse().unwrap();
    let base = GenerateRequest { prompt: Some(PromptRequest::new("a dark bag")), ..grid_base() };
    let seed: GridAxis = "seed=1,2".parse().unwrap();
    let cells = grid_requests(&base, &seed, &y).unwrap();
    let texts: Vec<&str> = cells.iter().map(|c| c.prompt.as_ref().unwrap().text.as_str()).collect();
    assert_eq!(texts, ["a dark bag", "a dark bag", "a light bag", "a light bag", "a plain bag", "a plain bag"]);
    let cells = grid_requests(&base, &x, &seed).unwrap();
    assert_eq!(cells[1].prompt.as_ref().unwrap().text, "light sandal");
    let missing: GridAxis = "prompt_sr=velvet,silk".parse().unwrap();
    let error = grid_requests(&base, &seed, &missing).unwrap_err().to_string();
    assert!(error.contains("`velvet` is not in the prompt"), "{error}");
}
