//! What the Train view compares runs by, read on the engine's thread: a run folder's recipe (from its
//! checkpoint's header), its loss log and quality log, the other run folders beside it, and its checkpoint's
//! loss at every noise level measured on the same images with the same noise as every other run's
//! (`eval --loss-by-level`'s numbers, in ε units whatever the recipe), so that runs of different recipes
//! are drawn on one axis.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::data::Dataset;
use crate::eval::quality::{QualityReading, read_quality_log};
use crate::model::UNetConfig;
use crate::model::checkpoint::{Checkpoint, CheckpointError};
use crate::run::models::{CheckpointSource, ResolvedModel};
use crate::train::ddpm::{TrainConfig, TrainingFiles};
use crate::train::recipe::Recipe;
use crate::train::training::read_loss_log;

/// Images each run's loss by noise level is measured on.
pub const LEVEL_IMAGES: usize = 100;

/// The images and the noise of that measurement come from this seed: the same for every run.
pub const LEVEL_SEED: u64 = 36;

/// What a run folder holds, for the Train view's overlays.
#[derive(Clone, Debug)]
pub struct RunFolderRecord {
    pub dir: PathBuf,
    /// What the run trains (`None`: its checkpoint cannot be read; `error` says why).
    pub recipe: Option<Recipe>,
    /// The step of its checkpoint.
    pub step: u64,
    /// (step, loss) of its loss log.
    pub losses: Vec<(u64, f64)>,
    pub quality: Vec<QualityReading>,
    /// (λ, mean ||ε - ε̂||²) at the centre of every noise-level bin, measured on its checkpoint, or why not.
    pub levels: Result<Vec<[f64; 2]>, String>,
    pub error: Option<String>,
}

/// The recipe a checkpoint's header records: its UNet's objective and its training config's weighting.
pub fn checkpoint_recipe(checkpoint: &Checkpoint) -> Result<Recipe, CheckpointError> {
    let (unet, _, train): (UNetConfig, _, TrainConfig) = crate::train::resume_header(checkpoint)?;
    Ok(Recipe { objective: unet.objective, weighting: train.weighting })
}

/// The recipe of the run in `dir`, where it holds a readable checkpoint.
pub fn run_recipe(dir: &Path) -> Option<Recipe> {
    let path = TrainingFiles::new(dir).checkpoint();
    Checkpoint::read(&path).ok().and_then(|c| checkpoint_recipe(&c).ok())
}

/// The folders beside `dir` (and `dir`) that hold a run: a loss log or a checkpoint; sorted by name.
pub fn run_folders_beside(dir: &Path) -> Vec<PathBuf> {
    let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(parent) else { return Vec::new() };
    let mut runs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let files = TrainingFiles::new(path);
            files.loss_log().is_file() || files.checkpoint().is_file()
        })
        .collect();
    runs.sort();
    runs
}

/// [`LEVEL_IMAGES`] images of `data`, drawn by [`LEVEL_SEED`] (the same ones for every run).
pub fn level_images(data: &Dataset) -> Dataset {
    let picks = crate::data::shuffled_indices(data.count, LEVEL_SEED);
    data.pick(&picks[..LEVEL_IMAGES.min(data.count)])
}

/// The run in `dir`: its logs, its recipe, and its loss by noise level on `images` (pixels of the Train
/// view's data, or why there are none).
pub fn read_run_folder(dir: &Path, images: Option<Result<Dataset, String>>, device: &Device) -> RunFolderRecord {
    let files = TrainingFiles::new(dir);
    let checkpoint = Checkpoint::read(&files.checkpoint());
    let (recipe, step, error) = match &checkpoint {
        Ok(c) => match checkpoint_recipe(c) {
            Ok(recipe) => (Some(recipe), c.header.step, None),
            Err(e) => (None, c.header.step, Some(e.to_string())),
        },
        Err(e) => (None, 0, Some(format!("{}: {e}", files.checkpoint().display()))),
    };
    let levels = match (images, &checkpoint) {
        (_, Err(_)) => Err("no checkpoint to measure".to_string()),
        (None, _) => Err("load the data to measure the runs on it".to_string()),
        (Some(Err(e)), _) => Err(e),
        (Some(Ok(images)), Ok(_)) => measure_levels(&files.checkpoint(), &images, device),
    };
    RunFolderRecord {
        dir: dir.to_path_buf(),
        recipe,
        step,
        losses: read_loss_log(&files.loss_log()),
        quality: read_quality_log(dir),
        levels,
        error,
    }
}

/// The checkpoint at `path` (with its autoencoder, for a latent run) measured on `images`: the ε loss at
/// each noise level's centre.
fn measure_levels(path: &Path, images: &Dataset, device: &Device) -> Result<Vec<[f64; 2]>, String> {
    let id = crate::model::ModelId::File(path.to_path_buf());
    let resolved = ResolvedModel::from_sources(id, &CheckpointSource::File(path.to_path_buf()), None)
        .map_err(|e| e.to_string())?;
    let (channels, size) = resolved.picture_shape().map_err(|e| e.to_string())?;
    if [images.channels, images.height, images.width] != [channels, size, size] {
        return Err(format!(
            "it learns {channels}x{size}x{size} pictures, the loaded data is {}x{}x{}",
            images.channels, images.height, images.width
        ));
    }
    let model = resolved.load(device).map_err(|e| e.to_string())?;
    let values = match &model.autoencoder {
        Some(ae) => {
            crate::train::autoencoder::latent_dataset(&ae.model, &ae.config, images, device)
                .map_err(|e| e.to_string())?
                .images
        }
        None => images.images.clone(),
    };
    let labels: Vec<Option<usize>> = match &images.labels {
        Some(labels) => labels.iter().map(|l| Some(*l)).collect(),
        None => vec![None; images.count],
    };
    let conditional = images.labels.is_some() && images.num_classes() <= model.unet.config.num_classes;
    let config = &model.unet.config;
    let shape = [config.image_channels, config.image_size, config.image_size];
    let levels = crate::eval::nll::loss_by_level(
        &model.unet,
        &values,
        &labels,
        shape,
        conditional,
        LEVEL_SEED,
        device,
        |_, _| {},
    )
    .map_err(|e| e.to_string())?;
    Ok(levels.into_iter().map(|(l, loss)| [l, loss]).collect())
}
