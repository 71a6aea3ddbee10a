//! The headless face of diffusion-lab: one subcommand per task; prints, writes files, exits non-zero on error.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use burn::prelude::*;
use clap::{Args, Parser, Subcommand, ValueEnum};
use diffusion_lab::data::{self, Dataset, Split};
use diffusion_lab::diffusion::guidance::{ApgParams, DEFAULT_RESCALE_PHI, GuidanceMethod, GuidanceParams};
use diffusion_lab::diffusion::{BetaSchedule, Method, NoiseSchedule, Sampler, ScheduleKind, Spacing};
use diffusion_lab::engine::{DeviceChoice, open_device};
use diffusion_lab::eval::Judge;
use diffusion_lab::images::{self, Picture};
use diffusion_lab::model::checkpoint::Checkpoint;
use diffusion_lab::model::classifier::ClassifierConfig;
use diffusion_lab::model::denoise::DEFAULT_GUIDANCE;
use diffusion_lab::model::embedded;
use diffusion_lab::model::{LoadedAutoencoder, LoadedUnet, ModelId, UNetConfig};
use diffusion_lab::run::batches::{SAMPLE_BATCH, run_images};
use diffusion_lab::run::generate::{GenerateRequest, PromptRequest};
use diffusion_lab::run::models::{CheckpointSource, LoadedModel, ResolvedModel, classifier_checkpoint};
use diffusion_lab::train::ddpm::TrainingFiles;
use diffusion_lab::train::training::{
    DataSource, Training, TrainingData, TrainingError, TrainingOptions, csv_log_from_step, load_training_data,
};

mod bench;
mod decided;
mod eval;
mod eval_ode;
mod explain;
mod grid;
mod interpolate;
mod lab2d;
mod lab2d_guidance;
mod lab2d_likelihood;
mod lab2d_solver;
mod output;
mod package;
mod sample;
mod schedule;
mod tour;
mod tour_pictures;
mod tour_plots;
mod train;
mod train_autoencoder;
mod train_classifier;

#[derive(Parser, Debug)]
#[command(name = "diffusion-lab", version, about, long_about = None)]
#[command(after_help = "Without a subcommand, diffusion-lab opens its window.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print every derived quantity of a noise schedule for every timestep t = 1..T.
    Schedule(schedule::ScheduleArgs),
    /// Train the noise-prediction UNet on Fashion-MNIST or a folder of images (resumable).
    Train(train::TrainArgs),
    /// Generate images with a trained model.
    Sample(sample::SampleArgs),
    /// Train latent diffusion's autoencoder (reconstruction + perceptual + KL + PatchGAN; resumable).
    TrainAutoencoder(train_autoencoder::TrainAutoencoderArgs),
    /// Train the Fashion-MNIST classifier that `eval` uses as its judge.
    TrainClassifier(train_classifier::TrainClassifierArgs),
    /// Score a folder of samples: Fréchet distance of classifier features against the test set, and class accuracy.
    Eval(eval::EvalArgs),
    /// Time sampling through the engine, with and without streaming every step.
    Bench(bench::BenchArgs),
    /// An X/Y plot: one image per pair of values of two settings (e.g. guidance x steps), labelled, in one PNG.
    Grid(grid::GridArgs),
    /// A strip of images between two seeds (x_T interpolated spherically) or two classes (τ_θ(y)), as PNG and GIF.
    Interpolate(interpolate::InterpolateArgs),
    /// One step of a run as a figure: the update with its numbers and every term as a picture.
    Explain(explain::ExplainArgs),
    /// When is an image decided? Runs continued from their own x_t with fresh noise (DDPM's Figure 7, measured).
    Decided(decided::DecidedArgs),
    /// The 2-D lab: train a small network on points of the plane (a preset), run particles from x_T to the
    /// data with any sampler, and measure and draw them.
    Lab2d(lab2d::Lab2dArgs),
    /// The guided tour of the diffusion story: `--list` prints its steps, `--export DIR` writes it as a
    /// printable page (Markdown or HTML) with a picture per step made by the app's own code.
    Tour(tour::TourArgs),
    /// Write the files a desktop package installs beside the binary (man pages, shell completions, icons).
    #[command(hide = true)]
    PackageFiles(package::PackageFilesArgs),
}

/// The flags that describe a β schedule; shared by every subcommand that takes one. What is not given
/// comes from the subcommand's default schedule (for `sample`, the one the model was trained around).
#[derive(Args, Debug, Clone)]
pub struct ScheduleOptions {
    /// How β_t grows: linear, cosine, quadratic (linear in sqrt β) or sigmoid.
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<ScheduleKind>,
    /// T, the number of diffusion timesteps of the schedule (1..=10000) [default: 1000]. Not the number of
    /// sampling steps, which is `sample --sampling-steps`.
    #[arg(long = "timesteps")]
    pub timesteps: Option<usize>,
    /// β_1 [default: the kind's usual value; 1e-4 for linear and sigmoid, 0.00085 for quadratic]
    #[arg(long)]
    pub beta_start: Option<f64>,
    /// β_T [default: the kind's usual value; 0.02 for linear and sigmoid, 0.012 for quadratic]
    #[arg(long)]
    pub beta_end: Option<f64>,
}

impl ScheduleOptions {
    pub fn beta_schedule_or(&self, default: BetaSchedule) -> BetaSchedule {
        let steps = self.timesteps.unwrap_or(default.steps);
        let base = match self.kind {
            Some(kind) if kind != default.kind => BetaSchedule::default_for(kind, steps),
            _ => BetaSchedule { steps, ..default },
        };
        BetaSchedule {
            beta_start: self.beta_start.unwrap_or(base.beta_start),
            beta_end: self.beta_end.unwrap_or(base.beta_end),
            ..base
        }
    }
}

fn parse_kind(s: &str) -> Result<ScheduleKind, String> {
    s.parse().map_err(|e: diffusion_lab::diffusion::ScheduleError| e.to_string())
}

/// The flags that choose a sampler; shared by `sample`, `grid` and `bench`.
#[derive(Args, Debug, Clone)]
pub struct SamplerOptions {
    /// ddpm (every timestep), ddim, euler, euler-a, heun, dpmpp-2m or dpmpp-2m-sde [default: dpmpp-2m, with
    /// karras spacing: the measured best at 20 steps, see assets/models/README.md].
    #[arg(long)]
    pub sampler: Option<Method>,
    /// Sampling steps (network evaluations: as many, Heun's about twice; DDPM takes every timestep).
    #[arg(long = "sampling-steps", default_value_t = diffusion_lab::model::denoise::DEFAULT_SAMPLER.steps)]
    pub sampling_steps: usize,
    /// Where the steps sit: trailing (from pure noise), leading, linspace, or karras (σ spacing) [default:
    /// karras for the default sampler, trailing for one given with --sampler].
    #[arg(long)]
    pub spacing: Option<Spacing>,
    /// DDIM's η in [0, 1]: 0 deterministic, 1 as noisy as DDPM.
    #[arg(long, default_value_t = diffusion_lab::model::denoise::DEFAULT_SAMPLER.eta)]
    pub eta: f64,
}

impl SamplerOptions {
    pub fn sampler(&self) -> Sampler {
        let default = diffusion_lab::model::denoise::DEFAULT_SAMPLER;
        let (method, spacing) = match self.sampler {
            None => (default.method, self.spacing.unwrap_or(default.spacing)),
            Some(method) => (method, self.spacing.unwrap_or(Spacing::Trailing)),
        };
        Sampler { eta: self.eta, ..Sampler::new(method, self.sampling_steps).with_spacing(spacing) }
    }
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Schedule(args) => schedule::schedule(&args),
        Command::Train(args) => train::train(&args),
        Command::Sample(args) => sample::sample(&args),
        Command::TrainClassifier(args) => train_classifier::train_classifier(&args),
        Command::TrainAutoencoder(args) => train_autoencoder::train_autoencoder(&args),
        Command::Eval(args) => eval::eval(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::Grid(args) => grid::grid(&args),
        Command::Interpolate(args) => interpolate::interpolate(&args),
        Command::Explain(args) => explain::explain(&args),
        Command::Decided(args) => decided::decided_table(&args),
        Command::Lab2d(args) => lab2d::lab2d(&args),
        Command::Tour(args) => tour::tour(&args),
        Command::PackageFiles(args) => package::package_files(&args),
    }
}

/// Where training images come from; shared by the trainers.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// Training images: `fashion-mnist` (the Debian package's IDX files) or a folder of PNG/JPEG images
    /// (sub-folder names become class labels).
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// Where the Fashion-MNIST IDX files are.
    #[arg(long, default_value = data::FASHION_MNIST_DIR)]
    pub fashion_mnist_dir: PathBuf,
    /// Image size for a folder of images (Fashion-MNIST is 28).
    #[arg(long, default_value_t = 28)]
    pub image_size: usize,
    /// Image channels for a folder of images: 1 (gray) or 3 (RGB).
    #[arg(long, default_value_t = 1)]
    pub image_channels: usize,
}

impl DataArgs {
    fn load(&self) -> anyhow::Result<(Dataset, String)> {
        let loaded = self.load_with_captions()?;
        Ok((loaded.data, loaded.description))
    }

    /// The images, what they are, and a folder's captions (the `.txt` beside each image).
    fn load_with_captions(&self) -> anyhow::Result<TrainingData> {
        let loaded = load_training_data(&self.source(), self.image_size, self.image_channels)?;
        if !loaded.skipped.is_empty() {
            eprintln!("skipped {} files that are not usable images:", loaded.skipped.len());
            for (_, reason) in loaded.skipped.iter().take(20) {
                eprintln!("  {reason}");
            }
            if loaded.skipped.len() > 20 {
                eprintln!("  … and {} more", loaded.skipped.len() - 20);
            }
        }
        Ok(loaded)
    }

    fn source(&self) -> DataSource {
        if self.data == "fashion-mnist" {
            DataSource::FashionMnist { dir: self.fashion_mnist_dir.clone() }
        } else {
            DataSource::Folder { dir: PathBuf::from(&self.data) }
        }
    }
}

/// A progress bar over `total` steps that starts at `position`.
fn progress_bar(total: u64, position: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total).with_position(position);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// `per_class` samples of every class, one row per class (`train`'s previews).
// The arguments are `train`'s preview settings.
#[allow(clippy::too_many_arguments)]
fn class_grid(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    per_class: usize,
    guidance: f64,
    sampler: Sampler,
    schedule: BetaSchedule,
    seed: u64,
    device: &Device,
) -> anyhow::Result<Picture> {
    let classes: Vec<usize> = (0..model.config.num_classes).flat_map(|c| std::iter::repeat_n(c, per_class)).collect();
    let request = GenerateRequest {
        model: ModelId::default(),
        schedule,
        sampler,
        seed,
        batch: 1,
        class: None,
        prompt: None,
        guidance,
        guidance_interval: None,
        guidance_method: Default::default(),
        init: None,
        interpolate: None,
        branch: None,
    };
    let pictures = sample_images(model, decoder, &request, &classes, device)?;
    Ok(images::grid(&pictures, per_class, 2))
}

/// One picture per entry of `classes` (`num_classes`: none) with `request`'s other settings, in batches
/// through the run library's loop ([`run_images`]), under a progress bar over every step of every batch
/// (network evaluations can take minutes on a CPU; the bar is hidden when stderr is not a terminal).
fn sample_images(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    request: &GenerateRequest,
    classes: &[usize],
    device: &Device,
) -> anyhow::Result<Vec<Picture>> {
    let steps = request.plan(&request.schedule.build()?)?.0.len();
    let bar = progress_bar((classes.len().div_ceil(SAMPLE_BATCH) * steps) as u64, 0);
    bar.set_message(format!("{} images", classes.len()));
    let pictures = run_images(model, decoder, request, classes, device, &|| bar.inc(1))?;
    bar.finish_and_clear();
    Ok(pictures)
}

/// A text model's prompt flags; shared by `sample`, `grid` and `eval`.
#[derive(Args, Debug, Clone, Default)]
pub struct PromptOptions {
    /// What a text model (`--model fashion-text`) draws, e.g. "dark ankle boot". Words it does not know are
    /// named, with the words it knows, and read as <unk>.
    #[arg(long)]
    pub prompt: Option<String>,
    /// What guidance steers away from, in place of the empty prompt: ε̂ = ε̂_neg + w (ε̂_prompt - ε̂_neg).
    #[arg(long)]
    pub negative_prompt: Option<String>,
}

impl PromptOptions {
    /// The prompt asked for, if any (a negative prompt alone steers an empty prompt).
    pub fn request(&self) -> Option<PromptRequest> {
        if self.prompt.is_none() && self.negative_prompt.is_none() {
            return None;
        }
        Some(PromptRequest {
            text: self.prompt.clone().unwrap_or_default(),
            negative: self.negative_prompt.clone().unwrap_or_default(),
        })
    }

    /// Checks the prompts against `config`'s vocabulary: an error for a class model or a prompt too long,
    /// a warning on stderr naming unknown words.
    pub fn check(&self, config: &UNetConfig) -> anyhow::Result<Option<PromptRequest>> {
        let Some(request) = self.request() else { return Ok(None) };
        let Some(text) = &config.text else {
            bail!("this model is conditioned on classes, not prompts: use --class (the text model is `fashion-text`)")
        };
        for prompt in [&request.text, &request.negative] {
            if let Some(message) = text.unknown_words(prompt)? {
                eprintln!("warning: {message}");
            }
        }
        Ok(Some(request))
    }
}

/// The flags of guidance; shared by `sample`, `explain`, `grid` and `eval --prompts`.
#[derive(Args, Debug, Clone)]
pub struct GuidanceOptions {
    /// Guidance scale: w (0 = unconditional, 1 = conditional, more = stronger), or CFG++'s λ in [0, 1]
    /// [default: the method's: cfg 1.5, rescale 7.5, apg 7.5, cfgpp 0.6, auto 2.25].
    #[arg(long)]
    pub guidance: Option<f64>,
    /// Guide only at noise levels λ = ln(ᾱ / (1 - ᾱ)) from LO to HI, e.g. -3.4,2.5 (w = 1 elsewhere:
    /// Kynkäänniemi et al. 2024, guidance in a limited interval).
    #[arg(long, value_name = "LO,HI", value_parser = guidance_interval_from_arg, allow_hyphen_values = true)]
    pub guidance_interval: Option<[f64; 2]>,
    /// How guidance combines the predictions: cfg (Ho & Salimans 2022), rescale (CFG rescaled to the
    /// conditional prediction's std per image, Lin et al. 2024), apg (adaptive projected guidance on x̂_0,
    /// Sadat et al. 2024), cfgpp (CFG++: renoise with ε̂_Ø, λ in [0, 1]; ddim, euler-a, dpmpp-2m; Chung et
    /// al. 2024), auto (autoguidance: a weaker model of the same kind guides, Karras et al. 2024).
    #[arg(long, default_value = "cfg")]
    pub guidance_method: GuidanceMethod,
    /// rescale: φ in [0, 1], the share of the rescaled prediction.
    #[arg(long, value_name = "PHI", default_value_t = DEFAULT_RESCALE_PHI)]
    pub guidance_rescale: f64,
    /// apg: η in [0, 1], the weight of the update's part parallel to x̂_y (0: only the orthogonal part).
    #[arg(long, default_value_t = ApgParams::default().eta)]
    pub apg_eta: f64,
    /// apg: the momentum β in (-1, 1) of the update's running average (negative: away from the last steps').
    #[arg(long, default_value_t = ApgParams::default().momentum, allow_hyphen_values = true)]
    pub apg_momentum: f64,
    /// apg: the largest norm r of the update per image (0: no limit).
    #[arg(long, default_value_t = ApgParams::default().threshold)]
    pub apg_threshold: f64,
}

impl GuidanceOptions {
    /// The scale: `--guidance`, else the method's default.
    pub fn scale(&self) -> f64 {
        self.guidance.unwrap_or(self.guidance_method.default_scale())
    }

    /// The method and its parameters.
    pub fn params(&self) -> GuidanceParams {
        GuidanceParams {
            method: self.guidance_method,
            rescale_phi: self.guidance_rescale,
            apg: ApgParams { eta: self.apg_eta, momentum: self.apg_momentum, threshold: self.apg_threshold },
        }
    }

    /// Whether any flag of the method or its parameters was given (a branch keeps its parent's otherwise).
    pub fn method_given(given: &impl Fn(&str) -> bool) -> bool {
        ["guidance_method", "guidance_rescale", "apg_eta", "apg_momentum", "apg_threshold"].into_iter().any(given)
    }
}

/// `--guidance-interval LO,HI`: the range of noise levels λ where guidance applies.
pub(crate) fn guidance_interval_from_arg(text: &str) -> Result<[f64; 2], String> {
    let values: Vec<&str> = text.split(',').map(str::trim).collect();
    let [low, high] = values[..] else {
        return Err(format!("expected two noise levels LO,HI (λ, e.g. -3.4,2.5), got `{text}`"));
    };
    let parse = |v: &str| v.parse::<f64>().map_err(|_| format!("`{v}` is not a number"));
    let (low, high) = (parse(low)?, parse(high)?);
    if low.is_nan() || high.is_nan() || low > high {
        return Err(format!("the interval must go from low to high λ, got {low} to {high}"));
    }
    Ok([low, high])
}

/// The flags that choose a model and where it runs; shared by `sample`, `grid` and `interpolate`.
#[derive(Args, Debug, Clone)]
pub struct ModelOptions {
    /// A built-in model (`fashion`: pixel space, `latent`: the autoencoder's latent space, `fashion-text`:
    /// latent, conditioned on prompts) or a checkpoint file written by `train`.
    #[arg(long, default_value = "fashion")]
    pub model: String,
    /// The autoencoder that turns a latent model's latents into pixels [default: a built-in model's own; for
    /// a checkpoint file, the one it was trained with, as its header records].
    #[arg(long)]
    pub autoencoder: Option<PathBuf>,
    /// auto, cpu or wgpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Autoguidance's weaker model: an earlier checkpoint of the same kind as --model [default: a built-in
    /// model's own earlier checkpoint; none for a checkpoint file].
    #[arg(long)]
    pub guide: Option<PathBuf>,
}

/// The flags that start runs from a picture (image-to-image, inpainting); shared by `sample` and `grid`.
#[derive(Args, Debug, Clone)]
pub struct EditOptions {
    /// Image-to-image (SDEdit): start from this picture (any size and format; resized to the model's),
    /// noised to --strength, instead of from pure noise.
    #[arg(long)]
    pub init_image: Option<PathBuf>,
    /// How far into the forward process the picture goes: 0 keeps it, 1 is a plain Generate.
    #[arg(long, default_value_t = 0.8, requires = "init_image")]
    pub strength: f64,
    /// Inpainting: an image (any size; resized), white (> 50 %) where the model repaints; the rest of
    /// --init-image stays. Usually with --strength 1.
    #[arg(long, requires = "init_image")]
    pub mask: Option<PathBuf>,
    /// RePaint's resampling for inpainting: each step taken this many times (1 = once).
    #[arg(long, default_value_t = 1, requires = "mask")]
    pub resample: usize,
}

/// `--class`: a class number, or `any` (none) for unconditional images.
fn parse_class(text: &str) -> anyhow::Result<Option<usize>> {
    match text.trim() {
        "any" | "none" => Ok(None),
        c => Ok(Some(
            c.parse::<usize>().map_err(|_| anyhow::anyhow!("--class must be a class number or `any`, got `{c}`"))?,
        )),
    }
}

/// The last frame of `request`, run to the end as the window runs it (not streamed).
fn final_frame(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    request: &diffusion_lab::engine::GenerateRequest,
    device: &Device,
) -> anyhow::Result<diffusion_lab::engine::Frame> {
    let mut last = None;
    let hooks = diffusion_lab::run::generate::RunHooks {
        keep_going: &|| true,
        stream: false,
        emit: &mut |frame| last = Some(frame),
    };
    diffusion_lab::run::generate::run_generate(model, decoder, request, device, hooks)?;
    last.context("a run ended without an image")
}

/// The first image `request` ends with (decoded for a latent model).
fn final_picture(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    request: &diffusion_lab::engine::GenerateRequest,
    device: &Device,
) -> anyhow::Result<Picture> {
    final_frame(model, decoder, request, device)?.pictures().into_iter().next().context("a run ended without an image")
}

/// `--init-image` (and `--mask`) as a request's starting picture, resized to `(channels, size)`.
fn init_image(
    edit: &EditOptions,
    (channels, size): (usize, usize),
) -> anyhow::Result<Option<diffusion_lab::run::generate::InitImage>> {
    let Some(path) = edit.init_image.as_deref() else { return Ok(None) };
    let (mask, strength, resample) = (edit.mask.as_deref(), edit.strength, edit.resample);
    let to_u8 = |values: Vec<f32>| values.into_iter().map(data::u8_from_unit).collect::<Vec<u8>>();
    let pixels = to_u8(
        data::folder::load_image(path, size, size, channels)
            .with_context(|| format!("cannot use {} as the starting picture", path.display()))?,
    );
    let mask = match mask {
        Some(mask) => {
            let values = data::folder::load_image(mask, size, size, 1)
                .with_context(|| format!("cannot use {} as the mask", mask.display()))?;
            Some(values.into_iter().map(|v| if v > 0.0 { 255 } else { 0 }).collect())
        }
        None => None,
    };
    let label = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(Some(diffusion_lab::run::generate::InitImage {
        label,
        shape: [channels, size, size],
        pixels,
        strength,
        mask,
        resample,
    }))
}

/// Which flags of `subcommand` the user typed (rather than left at their defaults), by their argument id
/// (the field's name). Read again from the process's arguments, which clap has already accepted.
pub(crate) fn explicit_flags(subcommand: &str) -> impl Fn(&str) -> bool {
    use clap::CommandFactory;
    let matches = Cli::command().try_get_matches_from(std::env::args_os()).ok();
    let matches = matches.and_then(|m| m.subcommand_matches(subcommand).cloned());
    move |id: &str| {
        matches.as_ref().is_some_and(|m| {
            matches!(m.try_contains_id(id), Ok(true))
                && m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
        })
    }
}

/// A model ready to sample: the device it runs on, its UNet and, for a latent model, its decoder.
pub(crate) struct OpenedModel {
    pub device: diffusion_lab::engine::ComputeDevice,
    pub model: LoadedUnet,
    pub decoder: Option<LoadedAutoencoder>,
}

impl ModelOptions {
    /// `model` (and `autoencoder`) on the CPU, no guide beyond a built-in model's own.
    pub(crate) fn cpu(model: &str, autoencoder: Option<PathBuf>) -> Self {
        Self { model: model.to_owned(), autoencoder, device: DeviceChoice::Cpu, guide: None }
    }

    /// The model `--model` and `--autoencoder` name, read and checked (config, training schedule, picture
    /// shape), before the (possibly slow) device starts.
    pub(crate) fn resolve(&self) -> anyhow::Result<ResolvedModel> {
        let resolved = ResolvedModel::named(&self.model, self.autoencoder.as_deref())?;
        Ok(match &self.guide {
            Some(path) => resolved.with_guide(&CheckpointSource::File(path.clone()))?,
            None => resolved,
        })
    }

    /// Opens `--device` and loads `resolved` onto it.
    pub(crate) fn open(&self, resolved: &ResolvedModel) -> anyhow::Result<OpenedModel> {
        let device = open_device(self.device)?;
        let LoadedModel { unet, autoencoder } = resolved.load(&device.device)?;
        Ok(OpenedModel { device, model: unet, decoder: autoencoder })
    }
}
