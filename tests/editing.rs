//! Editing real images with the built-in models: image-to-image (SDEdit) and inpainting (RePaint), through
//! the engine's own run, on real Fashion-MNIST test images from the shipped fixture.

mod common;

use burn::prelude::*;
use diffusion_lab::data::{Dataset, Split, u8_from_unit};
use diffusion_lab::diffusion::{BetaSchedule, Method, Sampler};
use diffusion_lab::engine::{Frame, GenerateRequest};
use diffusion_lab::model::checkpoint::Checkpoint;
use diffusion_lab::model::{LoadedAutoencoder, LoadedUnet, embedded};
use diffusion_lab::run::generate::InitImage;
use diffusion_lab::run::generate::{RunHooks, run_generate};

struct Model {
    unet: LoadedUnet,
    decoder: Option<LoadedAutoencoder>,
    name: &'static str,
}

fn model(short_name: &str) -> Model {
    let device = Device::flex();
    let builtin = embedded::model_by_short_name(short_name).unwrap();
    let unet = LoadedUnet::from_checkpoint(&Checkpoint::from_bytes(builtin.unet).unwrap(), &device).unwrap();
    let decoder = builtin
        .autoencoder
        .map(|b| LoadedAutoencoder::from_checkpoint(&Checkpoint::from_bytes(b).unwrap(), &device).unwrap());
    Model { unet, decoder, name: builtin.name }
}

/// Test image `index` of the fixture as 8-bit pixels.
fn test_picture(index: usize) -> Vec<u8> {
    let test = Dataset::fashion_mnist(&common::fashion_mnist_fixture(), Split::Test).unwrap();
    test.image(index).iter().map(|v| u8_from_unit(*v)).collect()
}

fn request(model: &Model, init: Option<InitImage>) -> GenerateRequest {
    GenerateRequest {
        model: model.name.into(),
        schedule: BetaSchedule::cosine(1000),
        sampler: Sampler::new(Method::DpmSolver2M, 8),
        seed: 11,
        batch: 2,
        class: Some(3),
        prompt: None,
        guidance: 2.0,
        guidance_interval: None,
        guidance_method: Default::default(),
        init,
        interpolate: None,
        branch: None,
    }
}

fn init(pixels: Vec<u8>, strength: f64, mask: Option<Vec<u8>>) -> InitImage {
    InitImage { label: "test image".into(), shape: [1, 28, 28], pixels, strength, mask, resample: 1 }
}

/// Every frame of a run.
fn run(model: &Model, request: &GenerateRequest) -> Vec<Frame> {
    let mut frames = Vec::new();
    let hooks = RunHooks { keep_going: &|| true, stream: true, emit: &mut |f| frames.push(f) };
    run_generate(&model.unet, model.decoder.as_ref(), request, &Device::flex(), hooks).unwrap();
    frames
}

/// The final image's pixels (decoded for a latent model), [batch, 1, 28, 28] row-major.
fn final_pixels(frames: &[Frame]) -> Vec<f32> {
    let last = frames.last().unwrap();
    last.decoded.as_ref().map_or_else(|| last.x_t.to_vec(), |d| d.x_t.to_vec())
}

#[test]
fn strength_zero_returns_the_picture_and_strength_one_is_a_plain_generate() {
    let pixel = model("fashion");
    let picture = test_picture(0);
    let frames = run(&pixel, &request(&pixel, Some(init(picture.clone(), 0.0, None))));
    assert_eq!(frames.len(), 1, "no step at strength 0");
    let values: Vec<f32> = picture.iter().map(|p| diffusion_lab::data::unit_from_u8(*p)).collect();
    assert_eq!(final_pixels(&frames), [values.clone(), values].concat(), "the picture itself, exactly");

    let plain = run(&pixel, &request(&pixel, None));
    let full = run(&pixel, &request(&pixel, Some(init(picture.clone(), 1.0, None))));
    assert_eq!(full.len(), plain.len());
    assert_eq!(final_pixels(&full), final_pixels(&plain), "strength 1 = Generate with the same seed");

    // In between: fewer steps, from the picture noised to where they start.
    let half = run(&pixel, &request(&pixel, Some(init(picture, 0.5, None))));
    assert_eq!(half.len(), 1 + 4);
    assert!(half[0].t < plain[0].t && half[0].t > 0);
}

#[test]
fn inpainting_keeps_every_unmasked_pixel_exactly() {
    let pixel = model("fashion");
    let picture = test_picture(1);
    // Repaint the top half.
    let mask: Vec<u8> = (0..28 * 28).map(|i| if i / 28 < 14 { 255 } else { 0 }).collect();
    for resample in [1, 3] {
        let init = InitImage { resample, ..init(picture.clone(), 1.0, Some(mask.clone())) };
        let frames = run(&pixel, &request(&pixel, Some(init)));
        let result = final_pixels(&frames);
        for b in 0..2 {
            for i in 0..28 * 28 {
                let kept = diffusion_lab::data::unit_from_u8(picture[i]);
                if mask[i] == 0 {
                    assert_eq!(result[b * 784 + i], kept, "resample {resample}: image {b} pixel {i} changed");
                }
            }
        }
        let repainted: f32 =
            (0..14 * 28).map(|i| (result[i] - diffusion_lab::data::unit_from_u8(picture[i])).abs()).sum();
        assert!(repainted > 1.0, "the masked half is repainted");
    }
}

/// For the latent model the known region is kept in the latent, so the decoded result keeps it within
/// what the autoencoder itself changes: D(E(x)) against x, on the pixels whose latent cells are all kept.
#[test]
fn latent_inpainting_keeps_the_region_within_the_decoders_error() {
    let latent = model("latent");
    let device = Device::flex();
    let picture = test_picture(2);
    let mask: Vec<u8> = (0..28 * 28).map(|i| if i % 28 < 12 { 255 } else { 0 }).collect();
    let frames = run(&latent, &request(&latent, Some(init(picture.clone(), 1.0, Some(mask.clone())))));
    let result = final_pixels(&frames);
    let ae = latent.decoder.as_ref().unwrap();
    let x = Tensor::<4>::from_data(
        TensorData::new(
            picture.iter().map(|p| diffusion_lab::data::unit_from_u8(*p)).collect::<Vec<_>>(),
            [1, 1, 28, 28],
        ),
        &device,
    );
    let reconstructed: Vec<f32> = ae.decode_scaled(ae.encode_scaled(x)).into_data().try_to_vec().unwrap();
    // Columns 16.. are 4 pixels (one latent cell) clear of the mask's edge.
    let far: Vec<usize> = (0..28 * 28).filter(|i| i % 28 >= 16).collect();
    let error = |values: &[f32]| {
        far.iter()
            .map(|i| common::difference(values[*i], diffusion_lab::data::unit_from_u8(picture[*i])))
            .fold(0.0f32, f32::max)
    };
    let (kept, decoder) = (error(&result), error(&reconstructed));
    eprintln!("latent inpainting: kept region off by at most {kept:.4}; D(E(x)) alone: {decoder:.4}");
    assert!(kept <= decoder + 0.05, "kept region off by {kept}, the decoder alone by {decoder}");
}

#[test]
fn a_bad_picture_is_refused_with_the_reason() {
    let pixel = model("fashion");
    let cases = [
        (init(vec![0; 10], 0.5, None), "pixel values"),
        (InitImage { shape: [3, 28, 28], ..init(vec![0; 784], 0.5, None) }, "the model makes 1x28x28"),
        (init(vec![0; 784], 1.5, None), "strength"),
        (init(vec![0; 784], 0.5, Some(vec![0; 9])), "mask"),
        (InitImage { resample: 0, ..init(vec![0; 784], 0.5, None) }, "resampling"),
    ];
    for (bad, expected) in cases {
        let hooks = RunHooks { keep_going: &|| true, stream: false, emit: &mut |_| {} };
        let error = run_generate(&pixel.unet, None, &request(&pixel, Some(bad)), &Device::flex(), hooks)
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{error}");
    }
}
