//! The quality meter of a training run: every K steps, the same few hundred samples (the same x_T and
//! classes each time) scored as `eval` scores them — the Fréchet distance of the classifier's features
//! against the test set and the share classified as asked — beside real test images' numbers at the same n
//! (at a few hundred samples the distance is mostly bias: the floor shows how much), and how close each
//! sample comes to a training image (the nearest one's root-mean-square distance, beside the same for
//! held-out real images: well below it means copying). So "the loss is flat but the samples still improve"
//! is read off a curve.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::Judge;
use super::frechet::Gaussian;
use crate::data::{DataError, Dataset, Split};
use crate::diffusion::{BetaSchedule, NoiseSource};
use crate::model::checkpoint::{Checkpoint, CheckpointError};
use crate::model::denoise::{Condition, DEFAULT_GUIDANCE, DEFAULT_SAMPLER, denoise};
use crate::model::{LoadedAutoencoder, LoadedUnet, ReadbackError, read_f32};
use crate::train::training::{DataSource, Training, TrainingError, csv_log_from_step};

/// The x_T of every reading comes from this seed: the same starting noise each time.
pub const QUALITY_SEED: u64 = 20_261_207;

/// One reading of the meter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityReading {
    pub step: u64,
    pub samples: usize,
    /// Fréchet distance of the samples' classifier features to the test set's.
    pub frechet_distance: f64,
    /// Share of samples the classifier gives the class they were asked for.
    pub class_accuracy: f64,
    /// The same two numbers for `samples` real test images: the floor at this n.
    pub floor_frechet_distance: f64,
    pub floor_class_accuracy: f64,
    /// Mean over samples of the RMS pixel distance to the nearest training image.
    pub nearest_training: f64,
    /// The same for held-out real test images.
    pub floor_nearest_training: f64,
    /// What the reading cost (sampling and scoring).
    pub seconds: f64,
}

pub const QUALITY_LOG_HEADER: &str = "step,samples,frechet_distance,class_accuracy,floor_frechet_distance,\
floor_class_accuracy,nearest_training,floor_nearest_training,seconds";

#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error(
        "the quality meter scores with the Fashion-MNIST classifier's ten classes, and this run trains on {0}: \
         turn the meter off (--quality-every 0), or train on Fashion-MNIST"
    )]
    NotFashionMnist(String),
    #[error("the quality meter needs Fashion-MNIST's test split: {0}")]
    Data(#[from] DataError),
    #[error("the quality meter's classifier: {0}")]
    Classifier(#[from] CheckpointError),
    #[error("the quality meter needs at least 10 samples per reading, got {0}")]
    TooFew(usize),
    #[error(transparent)]
    Readback(#[from] ReadbackError),
    #[error("the quality meter's sampler: {0}")]
    Sampler(String),
    #[error(transparent)]
    Training(#[from] TrainingError),
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The meter's stop flag was set (the window's Stop or Pause): no reading, nothing wrong.
    #[error("the quality reading was stopped")]
    Stopped,
}

/// The judge, the test set's features and the floors, computed once per run.
pub struct QualityMeter {
    judge: Judge,
    reference: Gaussian,
    /// [count, 784] training pixels, on the device, and their squared norms [1, count].
    train: Tensor<2>,
    train_norms: Tensor<2>,
    samples: usize,
    floor: (f64, f64, f64),
    device: Device,
    /// Set by another thread to stop the reading (or the floor's measurement) where it is: between sampling
    /// steps and between chunks of the nearest-image search, which for thousands of samples take minutes.
    stop: Arc<AtomicBool>,
}

impl QualityMeter {
    /// A meter for a run on `source` (Fashion-MNIST only) taking `samples` per reading; setting `stop` ends
    /// a reading (or this floor's measurement) early with [`QualityError::Stopped`].
    pub fn new(
        source: &DataSource,
        samples: usize,
        device: &Device,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, QualityError> {
        let DataSource::FashionMnist { dir } = source else {
            return Err(QualityError::NotFashionMnist(format!("the folder {}", source.dir().display())));
        };
        if samples < 10 {
            return Err(QualityError::TooFew(samples));
        }
        let test = Dataset::fashion_mnist(dir, Split::Test)?;
        let train = Dataset::fashion_mnist(dir, Split::Train)?;
        let judge =
            Judge::from_checkpoint(&Checkpoint::from_bytes(crate::model::embedded::FASHION_CLASSIFIER)?, device)?;
        let reference = judge.gaussian(&test)?;
        let (count, values) = (train.count, train.image_len());
        // Moved, not copied: the split is only needed on the device (188 MB as f32).
        let train_pixels = Tensor::<2>::from_data(TensorData::new(train.images, [count, values]), device);
        let train_norms = train_pixels.clone().powi_scalar(2).sum_dim(1).reshape([1, count]);
        let mut meter = Self {
            judge,
            reference,
            train: train_pixels,
            train_norms,
            samples,
            floor: (0.0, 0.0, 0.0),
            device: device.clone(),
            stop,
        };
        // Real images the model never trained on, drawn once: the floor of every number at this n.
        let picks = crate::data::shuffled_indices(test.count, QUALITY_SEED);
        let (pixels, labels) = test.gather(&picks[..samples.min(test.count)]);
        let real = Dataset {
            images: pixels,
            count: samples.min(test.count),
            labels: labels.into_iter().collect(),
            ..test.subset(0)
        };
        let score = meter.judge.score(&real, &meter.reference)?;
        let nearest = meter.nearest_training(&real.images)?;
        meter.floor = (score.frechet_distance, score.class_accuracy.unwrap_or(0.0), nearest);
        Ok(meter)
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Real test images' (Fréchet distance, class accuracy, nearest training image) at this n.
    pub fn floor(&self) -> (f64, f64, f64) {
        self.floor
    }

    /// Whether the stop flag is set.
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Mean over `images` ([n, 784] in [-1, 1]) of the RMS distance to the nearest training image.
    fn nearest_training(&self, images: &[f32]) -> Result<f64, QualityError> {
        let [_, values] = self.train.dims();
        let n = images.len() / values.max(1);
        let mut total = 0.0;
        for chunk in images.chunks(100 * values) {
            if self.stopped() {
                return Err(QualityError::Stopped);
            }
            let rows = chunk.len() / values;
            let x = Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [rows, values]), &self.device);
            let norms = x.clone().powi_scalar(2).sum_dim(1);
            // ||x - y||² = |x|² + |y|² - 2 x·y: [rows, count]
            let distances =
                norms.add(self.train_norms.clone()).sub(x.matmul(self.train.clone().transpose()).mul_scalar(2.0));
            let nearest = read_f32(distances.min_dim(1))?;
            total += nearest.iter().map(|d| (f64::from(d.max(0.0)) / values as f64).sqrt()).sum::<f64>();
        }
        Ok(total / n.max(1) as f64)
    }

    /// Samples of `model` (the default sampler and guidance, `samples` of them over the ten classes, from
    /// the same x_T every time) scored.
    pub fn measure(
        &self,
        model: &LoadedUnet,
        autoencoder: Option<&LoadedAutoencoder>,
        step: u64,
    ) -> Result<QualityReading, QualityError> {
        let started = Instant::now();
        let images = self.sample(model, autoencoder)?;
        let classes: Vec<usize> = (0..self.samples).map(|i| i % 10).collect();
        let samples = Dataset {
            images,
            count: self.samples,
            channels: 1,
            height: 28,
            width: 28,
            labels: Some(classes),
            class_names: Vec::new(),
        };
        let score = self.judge.score(&samples, &self.reference)?;
        let nearest = self.nearest_training(&samples.images)?;
        Ok(QualityReading {
            step,
            samples: self.samples,
            frechet_distance: score.frechet_distance,
            class_accuracy: score.class_accuracy.unwrap_or(0.0),
            floor_frechet_distance: self.floor.0,
            floor_class_accuracy: self.floor.1,
            nearest_training: nearest,
            floor_nearest_training: self.floor.2,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The samples in [-1, 1], [samples, 1, 28, 28] row-major, decoded for a latent model.
    fn sample(&self, model: &LoadedUnet, autoencoder: Option<&LoadedAutoencoder>) -> Result<Vec<f32>, QualityError> {
        let schedule = BetaSchedule::cosine(1000).build().map_err(|e| QualityError::Sampler(e.to_string()))?;
        let plan = DEFAULT_SAMPLER
            .plan(&schedule)
            .map_err(|e| QualityError::Sampler(e.to_string()))?
            .with_x0_bound(model.x0_bound());
        let size = model.config.image_size;
        let shape_of = |n: usize| [n, model.config.image_channels, size, size];
        let mut noise = NoiseSource::new(QUALITY_SEED);
        let mut out = Vec::with_capacity(self.samples * 784);
        let batch = 125;
        let mut start = 0;
        while start < self.samples {
            let n = batch.min(self.samples - start);
            let x_start = noise.tensor(shape_of(n), &self.device);
            let classes: Vec<i64> = (start..start + n).map(|i| (i % 10) as i64).collect();
            let condition =
                Condition::classes(Tensor::<1, Int>::from_data(TensorData::new(classes, [n]), &self.device));
            let x0 = denoise(&model.model, &plan, x_start, &condition, DEFAULT_GUIDANCE, &mut noise, None, |_| {
                if self.stopped() { std::ops::ControlFlow::Break(()) } else { std::ops::ControlFlow::Continue(()) }
            });
            if self.stopped() {
                return Err(QualityError::Stopped);
            }
            let pixels = match autoencoder {
                Some(ae) => ae.decode_scaled(x0),
                None => x0,
            };
            out.extend(read_f32(pixels.clamp(-1.0, 1.0))?);
            start += n;
        }
        Ok(out)
    }

    /// A reading of `run`'s model as shipped (EMA weights in f16), at its current step.
    pub fn measure_run(&self, run: &Training, device: &Device) -> Result<QualityReading, QualityError> {
        let model = run.model(device)?;
        self.measure(&model, run.autoencoder.as_ref(), run.step_count())
    }
}

/// The run folder's quality log, `quality.csv`.
pub fn quality_log_path(dir: &Path) -> PathBuf {
    dir.join("quality.csv")
}

/// Appends readings to a run's quality log, dropping rows past the step the run continues from.
pub struct QualityLog {
    path: PathBuf,
    file: std::fs::File,
}

impl QualityLog {
    pub fn open(dir: &Path, step: u64) -> Result<Self, QualityError> {
        let path = quality_log_path(dir);
        let file = csv_log_from_step(&path, QUALITY_LOG_HEADER, step)?;
        Ok(Self { path, file })
    }

    pub fn append(&mut self, r: &QualityReading) -> Result<(), QualityError> {
        writeln!(
            self.file,
            "{},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.2}",
            r.step,
            r.samples,
            r.frechet_distance,
            r.class_accuracy,
            r.floor_frechet_distance,
            r.floor_class_accuracy,
            r.nearest_training,
            r.floor_nearest_training,
            r.seconds
        )
        .and_then(|_| self.file.flush())
        .map_err(|source| QualityError::Io { path: self.path.clone(), source })
    }
}

/// The readings a run folder's quality log holds (rows that do not parse are skipped).
pub fn read_quality_log(dir: &Path) -> Vec<QualityReading> {
    let Ok(text) = std::fs::read_to_string(quality_log_path(dir)) else { return Vec::new() };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<f64> = line.split(',').map(|v| v.trim().parse::<f64>()).collect::<Result<_, _>>().ok()?;
            let [step, samples, fd, acc, floor_fd, floor_acc, nearest, floor_nearest, seconds] = f[..] else {
                return None;
            };
            Some(QualityReading {
                step: step as u64,
                samples: samples as usize,
                frechet_distance: fd,
                class_accuracy: acc,
                floor_frechet_distance: floor_fd,
                floor_class_accuracy: floor_acc,
                nearest_training: nearest,
                floor_nearest_training: floor_nearest,
                seconds,
            })
        })
        .collect()
}
