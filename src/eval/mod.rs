//! Measuring sample quality with the project's Fashion-MNIST classifier: the Fréchet distance of its
//! features against the test set, and the share of samples classified as the class they were asked for.

pub mod decided;
pub mod distance;
pub mod frechet;
pub mod nll;
pub mod ode_nll;
pub mod quality;

use std::path::Path;

use crate::model::{ReadbackError, read_f32, read_i64};
use burn::prelude::*;

use crate::data::{DataError, Dataset, unit_from_u8};
use crate::model::checkpoint::{Checkpoint, CheckpointError, ModelKind, module_from_bytes};
use crate::model::classifier::{Classifier, ClassifierConfig};
use frechet::{Gaussian, frechet_distance};

/// The classifier used as a judge.
pub struct Judge {
    pub model: Classifier,
    pub config: ClassifierConfig,
    device: Device,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    pub count: usize,
    pub frechet_distance: f64,
    /// Share of labelled samples predicted as their label; `None` when no sample has one.
    pub class_accuracy: Option<f64>,
}

impl Judge {
    pub fn from_checkpoint(checkpoint: &Checkpoint, device: &Device) -> Result<Self, CheckpointError> {
        checkpoint.expect_kind(ModelKind::Classifier)?;
        let config: ClassifierConfig = serde_json::from_value(checkpoint.header.config.clone())
            .map_err(|e| CheckpointError::Header(format!("classifier config: {e}")))?;
        config.validate().map_err(|e| CheckpointError::Header(format!("classifier config: {e}")))?;
        crate::model::check_weights_fit(config.parameter_count(), checkpoint)?;
        let model = module_from_bytes(config.init(device), checkpoint.section("weights")?, "weights")?;
        Ok(Self { model, config, device: device.clone() })
    }

    /// Penultimate features of every image, [count, feature_dim] row-major, and the predicted classes.
    pub fn features_and_predictions(&self, data: &Dataset) -> Result<(Vec<f32>, Vec<usize>), ReadbackError> {
        let indices: Vec<usize> = (0..data.count).collect();
        let mut features = Vec::with_capacity(data.count * self.config.feature_dim);
        let mut predictions = Vec::with_capacity(data.count);
        for chunk in indices.chunks(500) {
            let (pixels, _) = data.gather(chunk);
            let shape = [chunk.len(), data.channels, data.height, data.width];
            let x = Tensor::<4>::from_data(TensorData::new(pixels, shape), &self.device);
            let f = self.model.features(x);
            let logits = self.model.logits_from_features(f.clone());
            features.extend(read_f32(f)?);
            let classes = read_i64(logits.argmax(1))?;
            predictions.extend(classes.into_iter().map(|c| c as usize));
        }
        Ok((features, predictions))
    }

    /// The class the judge gives each image of `images`, [count, channels, h, w] in [-1, 1].
    pub fn predictions(&self, images: &[f32], [c, h, w]: [usize; 3]) -> Result<Vec<usize>, ReadbackError> {
        let per_image = (c * h * w).max(1);
        let mut predictions = Vec::with_capacity(images.len() / per_image);
        for chunk in images.chunks(500 * per_image) {
            let x = Tensor::<4>::from_data(
                TensorData::new(chunk.to_vec(), [chunk.len() / per_image, c, h, w]),
                &self.device,
            );
            let classes = read_i64(self.model.logits_from_features(self.model.features(x)).argmax(1))?;
            predictions.extend(classes.into_iter().map(|c| c as usize));
        }
        Ok(predictions)
    }

    pub fn gaussian(&self, data: &Dataset) -> Result<Gaussian, ReadbackError> {
        Ok(Gaussian::fit(&self.features_and_predictions(data)?.0, self.config.feature_dim))
    }

    /// Scores `samples` (labels = the class each was asked for) against `reference` (the test set's features).
    pub fn score(&self, samples: &Dataset, reference: &Gaussian) -> Result<Score, ReadbackError> {
        let (features, predictions) = self.features_and_predictions(samples)?;
        let fitted = Gaussian::fit(&features, self.config.feature_dim);
        let labelled: Vec<(usize, usize)> =
            (0..samples.count).filter_map(|i| samples.label(i).map(|l| (l, predictions[i]))).collect();
        let class_accuracy = (!labelled.is_empty())
            .then(|| labelled.iter().filter(|(l, p)| l == p).count() as f64 / labelled.len() as f64);
        Ok(Score { count: samples.count, frechet_distance: frechet_distance(&fitted, reference), class_accuracy })
    }
}

/// Loads a folder of generated PNGs (as `sample --out-dir` writes them); the intended class is read from
/// `classN` in each file name.
pub fn load_samples(dir: &Path, channels: usize, size: usize) -> Result<Dataset, DataError> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| DataError::Io { path: dir.to_path_buf(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(DataError::NoImages { path: dir.to_path_buf() });
    }
    let mut images = Vec::with_capacity(paths.len() * size * size * channels);
    let mut labels = Vec::with_capacity(paths.len());
    for path in &paths {
        let image = image::open(path).map_err(|source| DataError::Decode { path: path.clone(), source })?;
        if image.width() as usize != size || image.height() as usize != size {
            return Err(DataError::WrongSize {
                path: path.clone(),
                expected: size,
                width: image.width(),
                height: image.height(),
            });
        }
        if channels == 1 {
            images.extend(image.to_luma8().into_raw().into_iter().map(unit_from_u8));
        } else {
            let rgb = image.to_rgb8().into_raw();
            for c in 0..3 {
                images.extend(rgb.iter().skip(c).step_by(3).map(|v| unit_from_u8(*v)));
            }
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        labels.push(
            name.split("class")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|d| d.parse().ok()),
        );
    }
    let count = paths.len();
    let labels = labels.iter().all(Option::is_some).then(|| labels.into_iter().flatten().collect());
    Ok(Dataset { images, count, channels, height: size, width: size, labels, class_names: Vec::new() })
}
