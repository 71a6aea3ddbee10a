//! Training the judge: cross-entropy on labelled images with AdamW.

use crate::model::{ReadbackError, read_i64};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;

use crate::data::Dataset;
use crate::model::checkpoint::{Checkpoint, CheckpointError, CheckpointHeader, ModelKind, bytes_from_module};
use crate::model::classifier::{Classifier, ClassifierConfig};

#[derive(Clone, Debug)]
pub struct EpochReport {
    pub epoch: usize,
    pub mean_loss: f64,
    pub test_accuracy: f64,
}

/// Trains for `epochs` over `train`, reporting test accuracy after each epoch.
pub fn train_classifier(
    config: &ClassifierConfig,
    train: &Dataset,
    test: &Dataset,
    epochs: usize,
    device: &Device,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<Classifier, ReadbackError> {
    let autodiff = device.clone().autodiff();
    let mut model = config.init(&autodiff);
    let mut optimizer = AdamWConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&autodiff);
    let batch_size = 128;
    for epoch in 0..epochs {
        let order = train.shuffled_indices(epoch as u64 + 17);
        let mut total = 0.0;
        let mut batches = 0;
        for chunk in order.chunks(batch_size) {
            let (pixels, labels) = train.gather(chunk);
            let x = Tensor::<4>::from_data(
                TensorData::new(pixels, [chunk.len(), train.channels, train.height, train.width]),
                &autodiff,
            );
            let y: Vec<i64> = labels.iter().map(|l| l.unwrap_or(0) as i64).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(y, [chunk.len()]), &autodiff);
            let loss = loss_fn.forward(model.forward(x), y);
            total += loss.clone().into_scalar::<f32>() as f64;
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-3, model, grads);
        }
        let test_accuracy = accuracy(&model.valid(), test, device)?;
        on_epoch(&EpochReport { epoch: epoch + 1, mean_loss: total / batches as f64, test_accuracy });
    }
    Ok(model.valid())
}

/// Predicted class of every image of `data`.
pub fn predict(model: &Classifier, data: &Dataset, device: &Device) -> Result<Vec<usize>, ReadbackError> {
    let indices: Vec<usize> = (0..data.count).collect();
    let mut predictions = Vec::with_capacity(data.count);
    for chunk in indices.chunks(500) {
        let (pixels, _) = data.gather(chunk);
        let x = Tensor::<4>::from_data(
            TensorData::new(pixels, [chunk.len(), data.channels, data.height, data.width]),
            device,
        );
        let classes = read_i64(model.forward(x).argmax(1))?;
        predictions.extend(classes.into_iter().map(|c| c as usize));
    }
    Ok(predictions)
}

pub fn accuracy(model: &Classifier, data: &Dataset, device: &Device) -> Result<f64, ReadbackError> {
    let predictions = predict(model, data, device)?;
    let correct = predictions.iter().enumerate().filter(|(i, p)| data.label(*i) == Some(**p)).count();
    Ok(correct as f64 / data.count.max(1) as f64)
}

pub fn classifier_checkpoint(
    model: &Classifier,
    config: &ClassifierConfig,
    test_accuracy: f64,
) -> Result<Checkpoint, CheckpointError> {
    let header = CheckpointHeader {
        kind: ModelKind::Classifier,
        config: serde_json::to_value(config).unwrap_or_default(),
        training_schedule: None,
        log_snr_range: None,
        step: 0,
        extra: serde_json::json!({ "test_accuracy": test_accuracy }),
        sections: Vec::new(),
    };
    Ok(Checkpoint::new(header).with_section("weights", bytes_from_module(model, true)?))
}
