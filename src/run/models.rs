//! The one model resolver: a model's name or file to its checkpoints (read, checked, not yet on a device),
//! and those to loaded modules. The engine (the window's models) and every subcommand find a model here,
//! so they find the same one, with the same autoencoder: the one given (`--autoencoder`, or the window's
//! built-in pairing), else a built-in model's own, else the file a latent checkpoint's header records (the
//! autoencoder it was trained with). The judge and the perceptual loss's classifier are found here too.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::Device;

use super::generate::{Frame, GenerateRequest, RunHooks, run_generate};
use crate::diffusion::BetaSchedule;
use crate::model::autoencoder::AutoencoderConfig;
use crate::model::checkpoint::{Checkpoint, CheckpointError, ModelKind};
use crate::model::{LoadedAutoencoder, LoadedUnet, ModelId, UNetConfig, embedded};

/// Where a checkpoint comes from.
#[derive(Clone, Debug)]
pub enum CheckpointSource {
    /// Checkpoint bytes compiled into the binary.
    Embedded(&'static [u8]),
    /// A checkpoint file.
    File(PathBuf),
}

impl CheckpointSource {
    pub fn read(&self) -> Result<Checkpoint, CheckpointError> {
        match self {
            CheckpointSource::Embedded(bytes) => Checkpoint::from_bytes(bytes),
            CheckpointSource::File(path) => Checkpoint::read(path),
        }
    }

    /// How messages name it: the file, or `built_in`.
    fn name(&self, built_in: &str) -> String {
        match self {
            CheckpointSource::Embedded(_) => built_in.into(),
            CheckpointSource::File(path) => path.display().to_string(),
        }
    }
}

/// Why a model could not be found or read. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no built-in model `{name}` (built in: {built_in}) and no such file")]
    NoSuchModel { name: String, built_in: String },
    #[error("cannot load the model {name}: {cause}")]
    Model { name: String, cause: CheckpointError },
    #[error("cannot load the autoencoder {name}: {cause}")]
    Autoencoder { name: String, cause: CheckpointError },
    /// The autoencoder a latent checkpoint's header records, which could not be read.
    #[error(
        "cannot load the autoencoder {} that {name} was trained with ({cause}): pass --autoencoder with it",
        path.display()
    )]
    RecordedAutoencoder { name: String, path: PathBuf, cause: CheckpointError },
    #[error("{name} is a latent model and names no autoencoder: pass --autoencoder with the one it was trained on")]
    NoAutoencoder { name: String },
    #[error("cannot load the classifier {name}: {cause}")]
    Classifier { name: String, cause: CheckpointError },
    #[error("cannot guide with {name}: {why}")]
    Guide { name: String, why: String },
}

impl ResolveError {
    /// The checkpoint's own error beneath, where there is one (the engine reports that, as it always has).
    pub fn checkpoint_error(self) -> Option<CheckpointError> {
        match self {
            ResolveError::Model { cause, .. }
            | ResolveError::Autoencoder { cause, .. }
            | ResolveError::RecordedAutoencoder { cause, .. }
            | ResolveError::Classifier { cause, .. } => Some(cause),
            ResolveError::NoSuchModel { .. } | ResolveError::NoAutoencoder { .. } | ResolveError::Guide { .. } => None,
        }
    }
}

/// A diffusion model found and read, not yet on a device: what the command line checks flags against
/// before the (possibly slow) device starts.
#[derive(Clone, Debug)]
pub struct ResolvedModel {
    /// The name the window lists it under (and PNG settings keep).
    pub id: ModelId,
    pub unet: Checkpoint,
    /// The UNet's config, from its header.
    pub config: UNetConfig,
    /// For a latent model, the autoencoder whose latents it works in (any model, when one was given).
    pub autoencoder: Option<Checkpoint>,
    /// Autoguidance's weaker model: a built-in model's own earlier checkpoint, or the one `--guide` gives.
    pub guide: Option<Checkpoint>,
}

impl ResolvedModel {
    /// `--model NAME`: a built-in model's short name (`fashion`, `latent`, `fashion-text`) or a checkpoint
    /// file. `autoencoder` (`--autoencoder`) overrides the autoencoder the model comes with.
    pub fn named(name: &str, autoencoder: Option<&Path>) -> Result<Self, ResolveError> {
        let given = autoencoder.map(|path| CheckpointSource::File(path.to_path_buf()));
        let id = ModelId::of_model_flag(name);
        match embedded::model_by_short_name(name) {
            Some(builtin) => {
                let resolved = Self::from_sources(
                    id,
                    &CheckpointSource::Embedded(builtin.unet),
                    given.or(builtin.autoencoder.map(CheckpointSource::Embedded)).as_ref(),
                )?;
                match builtin.guide {
                    Some(bytes) => resolved.with_guide(&CheckpointSource::Embedded(bytes)),
                    None => Ok(resolved),
                }
            }
            None => {
                if !Path::new(name).exists() && !name.contains(['/', '.']) {
                    let names: Vec<&str> = embedded::MODELS.iter().map(|m| m.short_name).collect();
                    return Err(ResolveError::NoSuchModel { name: name.into(), built_in: names.join(", ") });
                }
                Self::from_sources(id, &CheckpointSource::File(name.into()), given.as_ref())
            }
        }
    }

    /// The model at `unet` (listed as `id`) with the autoencoder at `autoencoder` when given, else, for a
    /// latent model, the one its header records.
    pub fn from_sources(
        id: ModelId,
        unet: &CheckpointSource,
        autoencoder: Option<&CheckpointSource>,
    ) -> Result<Self, ResolveError> {
        let name = unet.name(&id.label());
        let model_error = |cause| ResolveError::Model { name: name.clone(), cause };
        let checkpoint = unet.read().map_err(model_error)?;
        // The kind first: an autoencoder or a classifier given as the model is named as what it is, not as a
        // UNet config that fails to parse.
        if !matches!(checkpoint.header.kind, ModelKind::Unet | ModelKind::LatentUnet) {
            return Err(model_error(CheckpointError::WrongKind {
                expected: ModelKind::Unet,
                found: checkpoint.header.kind,
            }));
        }
        let config: UNetConfig = serde_json::from_value(checkpoint.header.config.clone())
            .map_err(|e| model_error(CheckpointError::Header(format!("UNet config: {e}"))))?;
        let latent = checkpoint.header.kind == ModelKind::LatentUnet;
        let autoencoder = match autoencoder {
            Some(source) => Some(
                source.read().map_err(|cause| ResolveError::Autoencoder { name: source.name("(built in)"), cause })?,
            ),
            None => match recorded_autoencoder(&checkpoint).filter(|_| latent) {
                Some(path) => Some(Checkpoint::read(&path).map_err(|cause| ResolveError::RecordedAutoencoder {
                    name: name.clone(),
                    path,
                    cause,
                })?),
                None => None,
            },
        };
        if latent && autoencoder.is_none() {
            return Err(ResolveError::NoAutoencoder { name });
        }
        Ok(Self { id, unet: checkpoint, config, autoencoder, guide: None })
    }

    /// The model with `guide` as autoguidance's weaker model (`--guide`), checked to be of the same kind:
    /// pixel or latent, the same picture shape, classes and conditioning (Karras et al. guide with a smaller
    /// or shorter-trained version of the same model).
    pub fn with_guide(self, guide: &CheckpointSource) -> Result<Self, ResolveError> {
        let name = guide.name("(built in)");
        let bad = |why: String| ResolveError::Guide { name: name.clone(), why };
        let checkpoint = guide.read().map_err(|cause| bad(cause.to_string()))?;
        let config: UNetConfig =
            serde_json::from_value(checkpoint.header.config.clone()).map_err(|e| bad(format!("not a UNet: {e}")))?;
        let shape = |c: &UNetConfig| (c.image_channels, c.image_size, c.num_classes, c.text.is_some());
        if checkpoint.header.kind != self.unet.header.kind || shape(&config) != shape(&self.config) {
            let describe = |kind: ModelKind, c: &UNetConfig| {
                let text = if c.text.is_some() { ", prompts" } else { "" };
                format!("{kind} of {}x{s}x{s}, {} classes{text}", c.image_channels, c.num_classes, s = c.image_size)
            };
            return Err(bad(format!(
                "it is {}, the model {}: the guide must be a model of the same kind (an earlier checkpoint of it)",
                describe(checkpoint.header.kind, &config),
                describe(self.unet.header.kind, &self.config)
            )));
        }
        Ok(Self { guide: Some(checkpoint), ..self })
    }

    /// The schedule the model was trained around (every subcommand's default).
    pub fn training_schedule(&self) -> BetaSchedule {
        self.unet.header.training_schedule.unwrap_or_default()
    }

    /// (channels, size) of the pictures the model makes: a latent model's are its autoencoder's.
    pub fn picture_shape(&self) -> Result<(usize, usize), ResolveError> {
        let Some(autoencoder) = self.autoencoder.as_ref().filter(|_| self.is_latent()) else {
            return Ok((self.config.image_channels, self.config.image_size));
        };
        let config: AutoencoderConfig =
            serde_json::from_value(autoencoder.header.config.clone()).map_err(|e| ResolveError::Autoencoder {
                name: self.id.to_string(),
                cause: CheckpointError::Header(format!("autoencoder config: {e}")),
            })?;
        Ok((config.image_channels, config.image_size))
    }

    pub fn is_latent(&self) -> bool {
        self.unet.header.kind == ModelKind::LatentUnet
    }

    /// The UNet and its autoencoder on `device`.
    pub fn load(&self, device: &Device) -> Result<LoadedModel, ResolveError> {
        let name = self.id.to_string();
        let mut unet = LoadedUnet::from_checkpoint(&self.unet, device)
            .map_err(|cause| ResolveError::Model { name: name.clone(), cause })?;
        if let Some(guide) = &self.guide {
            let guide = LoadedUnet::from_checkpoint(guide, device).map_err(|cause| ResolveError::Guide {
                name: format!("the guide of {name}"),
                why: cause.to_string(),
            })?;
            unet.guide = Some(Box::new(guide.model));
        }
        let autoencoder = match &self.autoencoder {
            Some(checkpoint) => Some(
                LoadedAutoencoder::from_checkpoint(checkpoint, device)
                    .map_err(|cause| ResolveError::Autoencoder { name, cause })?,
            ),
            None => None,
        };
        Ok(LoadedModel { unet, autoencoder })
    }
}

/// The autoencoder file a latent checkpoint was trained with, as its header records it.
fn recorded_autoencoder(checkpoint: &Checkpoint) -> Option<PathBuf> {
    checkpoint.header.extra.get("autoencoder").and_then(|a| a.as_str()).map(PathBuf::from)
}

/// An autoencoder alone (`eval --reconstructions`): a built-in model's short name (its autoencoder) or a file.
pub fn autoencoder_checkpoint(name: &str) -> Result<Checkpoint, ResolveError> {
    match embedded::model_by_short_name(name).and_then(|m| m.autoencoder) {
        Some(bytes) => Checkpoint::from_bytes(bytes),
        None => Checkpoint::read(Path::new(name)),
    }
    .map_err(|cause| ResolveError::Autoencoder { name: name.into(), cause })
}

/// A classifier (the judge of `eval` and `decided`, the perceptual loss of `train-autoencoder`): `fashion`
/// (built in) or a checkpoint file written by `train-classifier`.
pub fn classifier_checkpoint(name: &str) -> Result<Checkpoint, ResolveError> {
    match name {
        "fashion" => Checkpoint::from_bytes(embedded::FASHION_CLASSIFIER),
        path => Checkpoint::read(Path::new(path)),
    }
    .map_err(|cause| ResolveError::Classifier { name: name.into(), cause })
}

/// A UNet with the autoencoder that decodes its latents (a latent model's), on a device.
pub struct LoadedModel {
    pub unet: LoadedUnet,
    pub autoencoder: Option<LoadedAutoencoder>,
}

impl LoadedModel {
    pub fn move_to(&mut self, device: &Device) {
        self.unet.model = self.unet.model.clone().to_device(device);
        if let Some(guide) = &mut self.unet.guide {
            **guide = guide.as_ref().clone().to_device(device);
        }
        if let Some(ae) = &mut self.autoencoder {
            ae.model = ae.model.clone().to_device(device);
        }
    }

    /// Runs a short guided run (and a decode, for a latent model) so that the first Generate on a GPU does
    /// not pay for shader compilation and autotuning. A failure here is not reported: the real run will
    /// report it.
    pub fn warm_up(&self, device: &Device) {
        let request = GenerateRequest {
            model: ModelId::default(),
            schedule: self.unet.header.training_schedule.unwrap_or_default(),
            sampler: crate::diffusion::Sampler::ddim(2, 0.0),
            seed: 0,
            batch: WARM_UP_BATCH,
            class: Some(0),
            prompt: None,
            guidance: crate::model::denoise::DEFAULT_GUIDANCE,
            guidance_interval: None,
            guidance_method: Default::default(),
            init: None,
            interpolate: None,
            branch: None,
        };
        let keep_going = || true;
        let mut emit = |_frame: Frame| {};
        let hooks = RunHooks { keep_going: &keep_going, stream: true, emit: &mut emit };
        let _ = run_generate(&self.unet, self.autoencoder.as_ref(), &request, device, hooks);
    }
}

/// The batch a Generate click usually runs (the window's default), guided: burn's GPU backend compiles and
/// autotunes its kernels per shape at their first use, which would otherwise stall the first run.
const WARM_UP_BATCH: usize = 16;
