//! A training run of the diffusion UNet as both `diffusion-lab train` and the window's Train view drive it:
//! the data, the run folder (checkpoint, loss log, previews), new or resumed, one optimizer step at a time,
//! with atomic checkpoints every N steps. The command line and the window differ only in what they show.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use super::ddpm::{DdpmTrainer, StepReport, TrainConfig, TrainingFiles};
use super::defaults::TRAIN_DEFAULTS;
use super::recipe::Recipe;
use crate::data::folder::load_folder;
use crate::data::{DataError, Dataset, Split};
use crate::diffusion::{Objective, Weighting};
use crate::model::checkpoint::{Checkpoint, CheckpointError, ModelKind};
use crate::model::{LoadedAutoencoder, LoadedUnet, ReadbackError, UNetConfig};

/// Where training images come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// Fashion-MNIST's train split: the IDX files in `dir` (the Debian package's folder by default).
    FashionMnist { dir: PathBuf },
    /// A folder of PNG / JPEG images; sub-folder names become class labels.
    Folder { dir: PathBuf },
}

impl DataSource {
    pub fn dir(&self) -> &Path {
        match self {
            DataSource::FashionMnist { dir } | DataSource::Folder { dir } => dir,
        }
    }
}

/// Training images, what they are, and the files of a folder that could not be used (each with why).
#[derive(Debug)]
pub struct TrainingData {
    pub data: Dataset,
    pub description: String,
    pub skipped: Vec<(PathBuf, String)>,
    /// A folder's captions (a `.txt` beside each image), one per image; empty for Fashion-MNIST.
    pub captions: Vec<Option<String>>,
}

/// Loads `source`; a folder's images are converted to `channels` x `image_size` x `image_size`.
/// Unreadable images of a folder are listed in [`TrainingData::skipped`], never fatal.
pub fn load_training_data(source: &DataSource, image_size: usize, channels: usize) -> Result<TrainingData, DataError> {
    match source {
        DataSource::FashionMnist { dir } => Ok(TrainingData {
            data: Dataset::fashion_mnist(dir, Split::Train)?,
            description: format!("Fashion-MNIST train split ({})", dir.display()),
            skipped: Vec::new(),
            captions: Vec::new(),
        }),
        DataSource::Folder { dir } => {
            let folder = load_folder(dir, image_size, image_size, channels)?;
            Ok(TrainingData {
                data: folder.data,
                description: format!("folder {}", dir.display()),
                skipped: folder.skipped,
                captions: folder.captions,
            })
        }
    }
}

/// How a run is set up: everything `train`'s flags and the Train view's controls choose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingOptions {
    /// The run folder: checkpoint, loss log, previews.
    pub out: PathBuf,
    /// Total optimizer steps (a resumed run may extend it).
    pub steps: u64,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Feature channels per resolution level; `None`: [`default_channels`].
    pub channels: Option<Vec<usize>>,
    /// Latent diffusion on the latents of this autoencoder checkpoint; `None`: on pixels.
    pub autoencoder: Option<PathBuf>,
    pub seed: u64,
    pub checkpoint_every: u64,
    pub preview_every: u64,
    /// Also write the shippable model (EMA weights in f16) here at every checkpoint.
    pub export: Option<PathBuf>,
    /// Train a text model on captions ([`captions_for`]) instead of a class model.
    #[serde(default)]
    pub captions: bool,
    /// What the model predicts; `None`: ε for a new run, the run's own for a resumed one (a different
    /// choice is refused).
    #[serde(default)]
    pub objective: Option<Objective>,
    /// How much each noise level counts; `None`: the objective's usual weighting for a new run, the run's
    /// own for a resumed one (a different choice is refused).
    #[serde(default)]
    pub weighting: Option<Weighting>,
    /// Score the model every this many steps with the quality meter (`eval::quality`); 0: off.
    #[serde(default)]
    pub quality_every: u64,
    /// Samples per quality reading.
    #[serde(default = "default_quality_samples")]
    pub quality_samples: usize,
}

/// Samples per quality reading unless set: enough that the Fréchet distance's bias is the same at every
/// reading and the floor beside it shows its size.
pub const DEFAULT_QUALITY_SAMPLES: usize = 250;

fn default_quality_samples() -> usize {
    DEFAULT_QUALITY_SAMPLES
}

impl TrainingOptions {
    /// The hyperparameters of a new run with these options: [`TrainConfig`]'s defaults with this run's
    /// steps (and the warm-up they give), batch size, learning rate, seed and weighting.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig::new()
            .with_run_steps(self.steps)
            .with_batch_size(self.batch_size)
            .with_learning_rate(self.learning_rate)
            .with_seed(self.seed)
            .with_weighting(self.recipe().weighting)
    }

    /// The recipe of a new run with these options: ε unless chosen, with the objective's usual weighting
    /// unless chosen.
    pub fn recipe(&self) -> Recipe {
        let objective = self.objective.unwrap_or_default();
        Recipe { objective, weighting: self.weighting.unwrap_or_else(|| super::recipe::usual_weighting(objective)) }
    }
}

/// The UNet `train` builds for new runs: self-attention at the lowest resolution, cross-attention to the
/// class below the top level.
pub fn unet_config_for(
    channels: Vec<usize>,
    image_channels: usize,
    image_size: usize,
    num_classes: usize,
) -> UNetConfig {
    let levels = channels.len().max(1);
    UNetConfig::new()
        .with_self_attention_levels(vec![levels - 1])
        .with_cross_attention_levels((1..levels).collect())
        .with_channels(channels)
        .with_image_channels(image_channels)
        .with_image_size(image_size)
        .with_num_classes(num_classes)
}

/// The captions a text model trains on: a folder's `.txt` files where it has any (an image without one
/// gets the empty caption), else captions measured from labelled 28x28 grayscale images of Fashion-MNIST's
/// ten classes. Other data cannot be captioned.
pub fn captions_for(data: &Dataset, given: &[Option<String>]) -> Result<crate::text::Captions, TrainingError> {
    if given.iter().any(Option::is_some) {
        return Ok(crate::text::Captions::Given(given.iter().map(|c| c.clone().unwrap_or_default()).collect()));
    }
    match &data.labels {
        Some(labels) if data.channels == 1 && data.height == 28 && data.width == 28 && data.num_classes() <= 10 => {
            let image_len = data.channels * data.height * data.width;
            Ok(crate::text::Captions::Measured(crate::text::captions::CaptionSet::new(
                &data.images,
                image_len,
                labels,
                10,
            )))
        }
        _ => Err(TrainingError::Invalid(
            "no captions for these images: put a .txt file beside each image (cat.png -> cat.txt), or train on \
             Fashion-MNIST, whose captions are measured from its images"
                .into(),
        )),
    }
}

/// Most words of a prompt a new text model reads (more: the context grows to fit the longest caption, up to
/// [`MAX_PROMPT_WORDS`]).
pub const PROMPT_WORDS: usize = 11;
/// Words past this in a caption are cut off in training.
pub const MAX_PROMPT_WORDS: usize = 31;

/// The text encoder of a new text model trained on `captions`.
pub fn text_config_for(captions: &crate::text::Captions) -> crate::model::text_encoder::TextEncoderConfig {
    let words = captions.longest().clamp(PROMPT_WORDS, MAX_PROMPT_WORDS);
    crate::model::text_encoder::TextEncoderConfig::new(captions.vocabulary().all_words().to_vec())
        .with_context_tokens(words + 1)
        .with_class_prompts(captions.class_prompts())
}

/// The channels of a new run when none are given: [`TRAIN_DEFAULTS`]' size.
pub fn default_channels(latent: bool) -> Vec<usize> {
    TRAIN_DEFAULTS.size.channels(latent)
}

#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} already holds a run (step {step} of {steps}): resume it, or choose another folder", dir.display())]
    AlreadyHoldsRun { dir: PathBuf, step: u64, steps: u64 },
    #[error("cannot resume from {}: {source}", path.display())]
    NoRunToResume { path: PathBuf, source: CheckpointError },
    #[error("cannot load the autoencoder {}: {source}", path.display())]
    Autoencoder { path: PathBuf, source: CheckpointError },
    #[error("encoding the images with the autoencoder: {0}")]
    Encode(#[from] ReadbackError),
    #[error("{0}")]
    Invalid(String),
}

/// What one call of [`Training::step`] did.
#[derive(Clone, Debug)]
pub struct StepOutcome {
    pub report: StepReport,
    /// The loss smoothed over about 50 steps ([`LossSmoothing`]).
    pub smoothed: f64,
    /// Whether this step wrote the checkpoint.
    pub checkpointed: bool,
}

/// Where a run folder's run stands, read from its checkpoint header.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingProgress {
    pub step: u64,
    pub steps: u64,
    pub latent: bool,
    pub data: String,
}

/// The run in `dir`, if it holds a checkpoint.
pub fn training_progress(dir: &Path) -> Result<Option<TrainingProgress>, CheckpointError> {
    let path = TrainingFiles::new(dir).checkpoint();
    if !path.exists() {
        return Ok(None);
    }
    let checkpoint = Checkpoint::read(&path)?;
    let (_, record, config): (serde_json::Value, super::ddpm::TrainRecord, TrainConfig) =
        super::resume_header(&checkpoint)?;
    Ok(Some(TrainingProgress {
        step: checkpoint.header.step,
        steps: config.steps,
        latent: checkpoint.header.kind == ModelKind::LatentUnet,
        data: record.data,
    }))
}

pub const LOSS_LOG_HEADER: &str = "step,loss,learning_rate,images_per_second,wall_seconds";

pub struct Training {
    pub trainer: DdpmTrainer,
    /// What the UNet learns from: the pixels, or their latents for a latent model.
    pub data: Dataset,
    pub files: TrainingFiles,
    pub autoencoder: Option<LoadedAutoencoder>,
    pub options: TrainingOptions,
    log: std::fs::File,
    smoothing: LossSmoothing,
}

/// The trainer of a new run: refused where the folder holds one; the UNet for `data` (latents when
/// `latent`), checked, with the warm-up fitted to the run's length.
fn new_trainer(
    options: &TrainingOptions,
    files: &TrainingFiles,
    data: &Dataset,
    latent: bool,
    description: String,
    captions: Option<&crate::text::Captions>,
    device: &Device,
) -> Result<DdpmTrainer, TrainingError> {
    if let Some(progress) = training_progress(&files.dir).ok().flatten() {
        return Err(TrainingError::AlreadyHoldsRun {
            dir: files.dir.clone(),
            step: progress.step,
            steps: progress.steps,
        });
    }
    let channels = options.channels.clone().unwrap_or_else(|| default_channels(latent));
    if channels.is_empty() {
        return Err(TrainingError::Invalid("the UNet needs at least one level of channels".into()));
    }
    let recipe = options.recipe();
    if !recipe.weighting.needs_sigma_data() {
        recipe.weighting.validate().map_err(|e| TrainingError::Invalid(e.to_string()))?;
    }
    let unet = unet_config_for(channels, data.channels, data.height, data.num_classes().max(1))
        .with_text(captions.map(text_config_for))
        .with_objective(recipe.objective);
    unet.validate().map_err(|e| TrainingError::Invalid(format!("cannot train this UNet: {e}")))?;
    if options.batch_size == 0 || options.steps == 0 || !(options.learning_rate > 0.0 && options.learning_rate < 1.0) {
        return Err(TrainingError::Invalid(format!(
            "steps and batch size must be at least 1 and the learning rate in (0, 1): got {} steps, batch {}, rate {}",
            options.steps, options.batch_size, options.learning_rate
        )));
    }
    // EDM's σ_data, where not given, is measured on what the model learns (pixels or latents).
    let weighting = recipe.weighting.with_measured_sigma_data(super::recipe::sigma_data_of(&data.images));
    weighting.validate().map_err(|e| TrainingError::Invalid(format!("{e} (measured on the data)")))?;
    let trainer = DdpmTrainer::new(options.train_config().with_weighting(weighting), unet, device, description);
    Ok(match &options.autoencoder {
        Some(path) => trainer.latent(path.display().to_string()),
        None => trainer,
    })
}

/// A resumed run keeps its recipe: a flag that names another objective or weighting is refused, with both.
fn check_recipe_kept(trainer: &DdpmTrainer, options: &TrainingOptions) -> Result<(), TrainingError> {
    let run = trainer.recipe();
    let conflict = |what: &str, asked: String, has: String| {
        Err(TrainingError::Invalid(format!(
            "this run trains with {what} {has}; asked for {asked}: resume it without choosing another {what} \
             (a run keeps its recipe), or start a new run in another folder"
        )))
    };
    if let Some(objective) = options.objective.filter(|o| *o != run.objective) {
        return conflict("objective", objective.name().into(), run.objective.name().into());
    }
    // `edm` without σ_data asks for EDM, whatever σ_data the run measured.
    let asked = options.weighting.map(|w| match (w, run.weighting) {
        (Weighting::Edm { p_mean, p_std, .. }, Weighting::Edm { sigma_data, .. }) if w.needs_sigma_data() => {
            Weighting::Edm { p_mean, p_std, sigma_data }
        }
        (w, _) => w,
    });
    if let Some(weighting) = asked.filter(|w| *w != run.weighting) {
        return conflict("weighting", weighting.name(), run.weighting.name());
    }
    Ok(())
}

/// The autoencoder a latent run trains on the latents of.
fn load_autoencoder(path: &Path, device: &Device) -> Result<LoadedAutoencoder, TrainingError> {
    Checkpoint::read(path)
        .and_then(|c| LoadedAutoencoder::from_checkpoint(&c, device))
        .map_err(|source| TrainingError::Autoencoder { path: path.to_path_buf(), source })
}

/// The autoencoder encodes images of the data's shape.
fn check_autoencoder_fits(ae: &LoadedAutoencoder, pixels: &Dataset) -> Result<(), TrainingError> {
    let wanted = [ae.config.image_channels, ae.config.image_size, ae.config.image_size];
    if [pixels.channels, pixels.height, pixels.width] != wanted {
        return Err(TrainingError::Invalid(format!(
            "the autoencoder encodes {}x{}x{} images but the data is {}x{}x{}",
            wanted[0], wanted[1], wanted[2], pixels.channels, pixels.height, pixels.width
        )));
    }
    Ok(())
}

/// The trainer (new or resumed) fits what it is given: an autoencoder exactly for a latent model, data of
/// its shape, no label past its classes.
fn check_trainer_fits(trainer: &DdpmTrainer, data: &Dataset, has_autoencoder: bool) -> Result<(), TrainingError> {
    if trainer.kind == ModelKind::LatentUnet && !has_autoencoder {
        return Err(TrainingError::Invalid(format!(
            "this run trains a latent model: choose its autoencoder {}",
            trainer.autoencoder.clone().unwrap_or_default()
        )));
    }
    if trainer.kind == ModelKind::Unet && has_autoencoder {
        return Err(TrainingError::Invalid("this run trains a pixel model: resume it without an autoencoder".into()));
    }
    let expected = [trainer.unet_config.image_channels, trainer.unet_config.image_size];
    if [data.channels, data.height] != expected || data.width != data.height {
        return Err(TrainingError::Invalid(format!(
            "the data is {}x{}x{} but the model learns {}x{s}x{s}",
            data.channels,
            data.height,
            data.width,
            expected[0],
            s = expected[1]
        )));
    }
    // A label past the model's classes would index outside its class embedding (a resumed run on other data).
    let model_classes = trainer.unet_config.num_classes;
    if data.num_classes() > model_classes {
        return Err(TrainingError::Invalid(format!(
            "the data has {} classes but the model learns {model_classes}: resume it on data with at most \
             {model_classes} classes, or start a new run",
            data.num_classes()
        )));
    }
    Ok(())
}

/// The loss smoothing of a run at `step`: a resumed run's curve carries on smoothly from the steps it has logged.
fn resumed_smoothing(files: &TrainingFiles, step: u64) -> LossSmoothing {
    let mut smoothing = LossSmoothing::default();
    if step > 0 {
        for (_, loss) in read_loss_log(&files.loss_log()) {
            smoothing.add(loss);
        }
    }
    smoothing
}

impl Training {
    /// A new run in `options.out` (refused if the folder already holds one), or with `resume` the run the
    /// folder holds, continued exactly where its checkpoint left it (to `options.steps`).
    pub fn open(
        options: TrainingOptions,
        data: TrainingData,
        resume: bool,
        device: &Device,
    ) -> Result<Self, TrainingError> {
        let TrainingData { data: pixels, description, captions: given_captions, .. } = data;
        let files = TrainingFiles::new(&options.out);
        std::fs::create_dir_all(&files.dir).map_err(|source| TrainingError::Io {
            what: "cannot create",
            path: files.dir.clone(),
            source,
        })?;
        let autoencoder = options.autoencoder.as_deref().map(|path| load_autoencoder(path, device)).transpose()?;
        if let Some(ae) = &autoencoder {
            check_autoencoder_fits(ae, &pixels)?;
        }
        // The run a resume continues, read once: whether it is a text model decides the captions, then it resumes.
        let resumed = if resume {
            let path = files.checkpoint();
            Some(Checkpoint::read(&path).map_err(|source| TrainingError::NoRunToResume { path, source })?)
        } else {
            None
        };
        let resumes_text =
            resumed.as_ref().is_some_and(|c| c.header.config.get("text").is_some_and(|text| !text.is_null()));
        // Measured from the pixels, so made before they become latents.
        let captions =
            if options.captions || resumes_text { Some(captions_for(&pixels, &given_captions)?) } else { None };
        let (data, description) = match &autoencoder {
            Some(ae) => (
                super::autoencoder::latent_dataset(&ae.model, &ae.config, &pixels, device)?,
                format!("latents of {description}"),
            ),
            None => (pixels, description),
        };
        let trainer = match &resumed {
            Some(checkpoint) => DdpmTrainer::resume(checkpoint, device, Some(options.steps))?,
            None => {
                new_trainer(&options, &files, &data, autoencoder.is_some(), description, captions.as_ref(), device)?
            }
        };
        let trainer = match captions {
            Some(captions) if trainer.unet_config.text.is_some() => trainer.with_captions(captions),
            _ => trainer,
        };
        check_trainer_fits(&trainer, &data, autoencoder.is_some())?;
        check_recipe_kept(&trainer, &options)?;
        let log = csv_log_from_step(&files.loss_log(), LOSS_LOG_HEADER, trainer.step)?;
        let smoothing = resumed_smoothing(&files, trainer.step);
        Ok(Self { trainer, data, files, autoencoder, options, log, smoothing })
    }

    pub fn step_count(&self) -> u64 {
        self.trainer.step
    }

    pub fn total_steps(&self) -> u64 {
        self.trainer.config.steps
    }

    pub fn is_finished(&self) -> bool {
        self.trainer.step >= self.trainer.config.steps
    }

    /// One optimizer step, logged; the checkpoint is written every `checkpoint_every` steps and at the last.
    pub fn step(&mut self) -> Result<StepOutcome, TrainingError> {
        let report = self.trainer.train_step(&self.data);
        let smoothed = self.smoothing.add(report.loss);
        let io = |source| TrainingError::Io { what: "cannot write", path: self.files.loss_log(), source };
        writeln!(
            self.log,
            "{},{},{},{:.2},{:.1}",
            report.step, report.loss, report.learning_rate, report.images_per_second, self.trainer.wall_seconds
        )
        .map_err(io)?;
        let checkpointed = self.trainer.step.is_multiple_of(self.options.checkpoint_every.max(1)) || self.is_finished();
        if checkpointed {
            self.checkpoint()?;
        }
        Ok(StepOutcome { report, smoothed, checkpointed })
    }

    /// Writes the checkpoint (atomically: a kill leaves the previous one) and the export, if any.
    pub fn checkpoint(&mut self) -> Result<(), TrainingError> {
        self.log.flush().map_err(|source| TrainingError::Io {
            what: "cannot write",
            path: self.files.loss_log(),
            source,
        })?;
        self.trainer.checkpoint()?.write(&self.files.checkpoint())?;
        if let Some(path) = &self.options.export {
            self.trainer.export()?.write(path)?;
        }
        Ok(())
    }

    /// Whether the step just done should show samples: every `preview_every` steps and at the last.
    pub fn preview_due(&self) -> bool {
        self.trainer.step.is_multiple_of(self.options.preview_every.max(1)) || self.is_finished()
    }

    /// The model as shipped (EMA weights in f16), ready to sample.
    pub fn model(&self, device: &Device) -> Result<LoadedUnet, TrainingError> {
        Ok(LoadedUnet::from_checkpoint(&self.trainer.export()?, device)?)
    }
}

/// An exponential moving average of the loss over about 50 steps (decay 0.98), divided by 1 - 0.98^n as
/// Adam debiases its moments: without that, the first steps' average leans towards 0 (or, started at the
/// first loss, towards it for a hundred steps).
#[derive(Clone, Copy, Debug, Default)]
pub struct LossSmoothing {
    average: f64,
    weight: f64,
}

impl LossSmoothing {
    pub const DECAY: f64 = 0.98;

    /// Adds a step's loss; returns the smoothed loss so far.
    pub fn add(&mut self, loss: f64) -> f64 {
        self.average = Self::DECAY * self.average + (1.0 - Self::DECAY) * loss;
        self.weight = Self::DECAY * self.weight + (1.0 - Self::DECAY);
        self.average / self.weight
    }
}

/// Opens a run's CSV log (first column: the step) for appending, writing `header` if the file is new. Rows
/// after `step`, the step of the checkpoint the run continues from (0 for a new run), are dropped first: a
/// killed run logged steps that its last checkpoint does not hold, and the resumed run logs them again.
pub fn csv_log_from_step(path: &Path, header: &str, step: u64) -> Result<std::fs::File, TrainingError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let mut lines = text.lines();
        let kept: Vec<&str> = lines
            .next()
            .into_iter()
            .chain(
                lines
                    .filter(|row| row.split(',').next().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s <= step)),
            )
            .collect();
        if kept.len() < text.lines().count() {
            let mut trimmed = kept.join("\n");
            trimmed.push('\n');
            crate::files::write_atomic(path, trimmed.as_bytes()).map_err(|source| TrainingError::Io {
                what: "cannot rewrite",
                path: path.into(),
                source,
            })?;
        }
    }
    csv_log(path, header)
}

/// Opens a CSV log for appending, writing `header` if the file is new.
pub fn csv_log(path: &Path, header: &str) -> Result<std::fs::File, TrainingError> {
    let io = |source| TrainingError::Io { what: "cannot open", path: path.into(), source };
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    if log.metadata().map_err(io)?.len() == 0 {
        writeln!(log, "{header}").map_err(io)?;
    }
    Ok(log)
}

/// The (step, loss) rows of a run's loss log, for a resumed run's plot.
pub fn read_loss_log(path: &Path) -> Vec<(u64, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .skip(1)
        .filter_map(|row| {
            let mut fields = row.split(',');
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_unbiased_from_the_first_step() {
        let mut smoothing = LossSmoothing::default();
        assert!((smoothing.add(0.5) - 0.5).abs() < 1e-12, "one loss smooths to itself");
        for _ in 0..10 {
            smoothing.add(0.5);
        }
        assert!((smoothing.add(0.5) - 0.5).abs() < 1e-12, "a constant loss stays constant");
        let mut falling = LossSmoothing::default();
        let last = (0..400).map(|i| falling.add(if i < 200 { 1.0 } else { 0.1 })).last().unwrap();
        assert!((last - 0.1).abs() < 0.02, "200 steps after a drop the average has followed it: {last}");
    }
}
