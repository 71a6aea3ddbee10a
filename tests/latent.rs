//! Latent diffusion with the built-in models: the autoencoder on real Fashion-MNIST test images, and
//! the latent UNet sampling through it.

use burn::prelude::*;
mod common;

use diffusion_lab::data::{Dataset, FASHION_MNIST_CLASSES, Split};
use diffusion_lab::diffusion::{NoiseSource, Sampler};
use diffusion_lab::eval::Judge;
use diffusion_lab::model::checkpoint::Checkpoint;
use diffusion_lab::model::denoise::denoise;
use diffusion_lab::model::embedded;
use diffusion_lab::model::{LoadedAutoencoder, LoadedUnet};

fn builtin_autoencoder(device: &Device) -> LoadedAutoencoder {
    let latent = embedded::model_by_short_name("latent").expect("a built-in latent model");
    let bytes = latent.autoencoder.expect("the latent model comes with its autoencoder");
    LoadedAutoencoder::from_checkpoint(&Checkpoint::from_bytes(bytes).unwrap(), device).unwrap()
}

fn judge(device: &Device) -> Judge {
    Judge::from_checkpoint(&Checkpoint::from_bytes(embedded::FASHION_CLASSIFIER).unwrap(), device).unwrap()
}

/// D(E(x)) of real test images keeps what makes them their class, pixel by pixel and to the judge: on the
/// shipped fixture (500 real test images), so that this runs without the data set package.
#[test]
fn autoencoder_round_trip_keeps_real_test_images() {
    let test = Dataset::fashion_mnist(&common::fashion_mnist_fixture(), Split::Test).expect("the fixture loads");
    round_trip_keeps(&test, 300);
}

/// The same on the whole test split of the installed data set (`.ci/run` installs it and runs this).
#[test]
#[ignore = "needs dataset-fashion-mnist; .ci/run runs it"]
fn autoencoder_round_trip_keeps_the_full_test_split() {
    let dir = diffusion_lab::data::FASHION_MNIST_DIR;
    let test = Dataset::fashion_mnist(dir.as_ref(), Split::Test).expect("dataset-fashion-mnist is installed");
    assert_eq!(test.count, 10_000);
    round_trip_keeps(&test, 2000);
}

fn round_trip_keeps(test: &Dataset, n: usize) {
    let device = Device::flex();
    let autoencoder = builtin_autoencoder(&device);
    let originals = test.pick(&test.shuffled_indices(3)[..n]);
    let reconstructed = autoencoder.reconstruct(&originals, &device).unwrap();
    assert_eq!(reconstructed.count, originals.count);
    assert_eq!(reconstructed.images.len(), originals.images.len());

    // Pixels in [-1, 1]: the mean absolute error of a useless reconstruction (the mean image) is ~0.5.
    let error = originals.images.iter().zip(&reconstructed.images).map(|(a, b)| (a - b).abs() as f64).sum::<f64>()
        / originals.images.len() as f64;
    assert!(error < 0.1, "mean absolute reconstruction error {error}");

    let judge = judge(&device);
    let reference = judge.gaussian(test).unwrap();
    let original_score = judge.score(&originals, &reference).unwrap();
    let score = judge.score(&reconstructed, &reference).unwrap();
    let (original_accuracy, accuracy) = (original_score.class_accuracy.unwrap(), score.class_accuracy.unwrap());
    assert!(accuracy > original_accuracy - 0.05, "reconstructions {accuracy}, originals {original_accuracy}");

    // The latent scale makes E(x) unit-variance for the diffusion model.
    let x = Tensor::<4>::from_data(TensorData::new(originals.images.clone(), [originals.count, 1, 28, 28]), &device);
    let z: Vec<f32> = autoencoder
        .model
        .encode(x)
        .mean
        .mul_scalar(autoencoder.config.latent_scale)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let mean = z.iter().map(|v| *v as f64).sum::<f64>() / z.len() as f64;
    let std = (z.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / z.len() as f64).sqrt();
    assert!((0.8..1.25).contains(&std), "scaled latent std {std}");
}

/// A few DDIM steps of the built-in latent UNet, decoded by D, give images of the asked-for class.
#[test]
fn latent_model_samples_its_class() {
    let device = Device::flex();
    let latent = embedded::model_by_short_name("latent").unwrap();
    let unet = LoadedUnet::from_checkpoint(&Checkpoint::from_bytes(latent.unet).unwrap(), &device).unwrap();
    assert!(unet.is_latent());
    let autoencoder = builtin_autoencoder(&device);
    let (c, s) = (unet.config.image_channels, unet.config.image_size);
    assert_eq!((c, s), (autoencoder.config.latent_channels, autoencoder.config.latent_size()));

    let per_class = 4;
    let labels: Vec<i64> = (0..10).flat_map(|k| std::iter::repeat_n(k, per_class)).collect();
    let n = labels.len();
    let classes = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [n]), &device);
    let schedule = unet.header.training_schedule.unwrap_or_default().build().unwrap();
    let plan = Sampler::ddim(25, 0.0).plan(&schedule).unwrap().with_x0_bound(unet.x0_bound());
    let mut noise = NoiseSource::new(5);
    let z_t = noise.tensor([n, c, s, s], &device);
    let z0 = denoise(
        &unet.model,
        &plan,
        z_t,
        &diffusion_lab::model::denoise::Condition::classes(classes),
        3.0,
        &mut noise,
        None,
        |_| std::ops::ControlFlow::Continue(()),
    );
    let pixels: Vec<f32> = autoencoder.decode_scaled(z0).clamp(-1.0, 1.0).into_data().try_to_vec::<f32>().unwrap();

    let samples = Dataset {
        images: pixels,
        count: n,
        channels: 1,
        height: 28,
        width: 28,
        labels: Some(labels.iter().map(|&k| k as usize).collect()),
        class_names: FASHION_MNIST_CLASSES.iter().map(|name| name.to_string()).collect(),
    };
    let judge = judge(&device);
    let (_, predictions) = judge.features_and_predictions(&samples).unwrap();
    let correct = predictions.iter().zip(&labels).filter(|(p, l)| **p as i64 == **l).count();
    // Chance is 10 %; the model scores ~90 % at 1000 samples.
    assert!(correct * 10 >= n * 7, "{correct} of {n} samples classified as their class");
}
