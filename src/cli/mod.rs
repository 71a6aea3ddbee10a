//! The headless face of diffusion-lab: one subcommand per task; prints, writes files, exits non-zero on error.

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use burn::prelude::*;
use clap::{Args, Parser, Subcommand, ValueEnum};
use diffusion_lab::data::{self, Dataset, Split};
use diffusion_lab::diffusion::{BetaSchedule, DdpmVariance, NoiseSchedule, NoiseSource, Sampler, ScheduleKind};
use diffusion_lab::engine::{DeviceChoice, open_device};
use diffusion_lab::images::{self, Picture};
use diffusion_lab::eval::Judge;
use diffusion_lab::model::checkpoint::Checkpoint;
use diffusion_lab::model::classifier::ClassifierConfig;
use diffusion_lab::model::embedded;
use diffusion_lab::model::denoise::{DEFAULT_GUIDANCE, denoise};
use diffusion_lab::model::checkpoint::ModelKind;
use diffusion_lab::model::{LoadedAutoencoder, LoadedUnet, UNetConfig};
use diffusion_lab::train::ddpm::{DdpmTrainer, RunFiles, TrainConfig};

mod bench;

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
    Schedule(ScheduleArgs),
    /// Train the noise-prediction UNet on Fashion-MNIST or a folder of images (resumable).
    Train(TrainArgs),
    /// Generate images with a trained model.
    Sample(SampleArgs),
    /// Train latent diffusion's autoencoder (reconstruction + perceptual + KL + PatchGAN; resumable).
    TrainAutoencoder(TrainAutoencoderArgs),
    /// Train the Fashion-MNIST classifier that `eval` uses as its judge.
    TrainClassifier(TrainClassifierArgs),
    /// Score a folder of samples: Fréchet distance of classifier features against the test set, and class accuracy.
    Eval(EvalArgs),
    /// Time sampling through the engine, with and without streaming every step.
    Bench(bench::BenchArgs),
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

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub schedule: ScheduleOptions,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Csv)]
    pub format: TableFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Json,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Schedule(args) => schedule(&args),
        Command::Train(args) => train(&args),
        Command::Sample(args) => sample(&args),
        Command::TrainClassifier(args) => train_classifier(&args),
        Command::TrainAutoencoder(args) => train_autoencoder(&args),
        Command::Eval(args) => eval(&args),
        Command::Bench(args) => bench::bench(&args),
    }
}

fn schedule(args: &ScheduleArgs) -> anyhow::Result<()> {
    let schedule = args.schedule.beta_schedule_or(BetaSchedule::linear(1000)).build().context("invalid schedule")?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args.format {
        TableFormat::Csv => write_schedule_csv(&mut out, &schedule)?,
        TableFormat::Json => {
            serde_json::to_writer(&mut out, &json_from_schedule(&schedule))?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The derived quantities, in the order the CSV and the JSON list them.
fn schedule_columns(s: &NoiseSchedule) -> [(&'static str, &[f64]); 10] {
    [
        ("beta", &s.beta),
        ("alpha", &s.alpha),
        ("alpha_bar", &s.alpha_bar),
        ("alpha_bar_prev", &s.alpha_bar_prev),
        ("sqrt_alpha_bar", &s.sqrt_alpha_bar),
        ("sqrt_one_minus_alpha_bar", &s.sqrt_one_minus_alpha_bar),
        ("beta_tilde", &s.beta_tilde),
        ("posterior_coef_x0", &s.posterior_coef_x0),
        ("posterior_coef_xt", &s.posterior_coef_xt),
        ("log_snr", &s.log_snr),
    ]
}

fn write_schedule_csv(out: &mut impl Write, s: &NoiseSchedule) -> std::io::Result<()> {
    let columns = schedule_columns(s);
    let header: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    writeln!(out, "t,{}", header.join(","))?;
    for i in 0..s.steps() {
        write!(out, "{}", i + 1)?;
        for (_, values) in &columns {
            write!(out, ",{}", values[i])?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// `{"schedule": {...}, "t": [1..T], "beta": [...], ...}`: one array per quantity, index i = t - 1.
fn json_from_schedule(s: &NoiseSchedule) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert("schedule".into(), serde_json::json!(s.source));
    map.insert("t".into(), serde_json::json!((1..=s.steps()).collect::<Vec<_>>()));
    for (name, values) in schedule_columns(s) {
        map.insert(name.into(), serde_json::json!(values));
    }
    serde_json::Value::Object(map)
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Folder for the checkpoint, the loss log and the preview grids.
    #[arg(long, default_value = "runs/unet")]
    pub out: PathBuf,
    /// Continue from the checkpoint in --out (weights, optimizer, EMA and step).
    #[arg(long)]
    pub resume: bool,
    /// Total optimizer steps of the run.
    #[arg(long, default_value_t = 30000)]
    pub steps: u64,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 5e-4)]
    pub learning_rate: f64,
    /// Feature channels per resolution level [default: 32,64,128 on pixels, 64,128 on latents]
    #[arg(long, value_delimiter = ',')]
    pub channels: Option<Vec<usize>>,
    /// Train latent diffusion: the UNet works on the latents of --autoencoder.
    #[arg(long, requires = "autoencoder")]
    pub latent: bool,
    /// The autoencoder (a checkpoint from `train-autoencoder`) whose latents a --latent model learns.
    #[arg(long)]
    pub autoencoder: Option<PathBuf>,
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every: u64,
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub preview_every: u64,
    /// Stop after this many steps of this invocation (the run itself stays resumable).
    #[arg(long)]
    pub max_steps_now: Option<u64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the shippable model (EMA weights in f16) to this path at every checkpoint.
    #[arg(long)]
    pub export: Option<PathBuf>,
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
        if self.data == "fashion-mnist" {
            let data = Dataset::fashion_mnist(&self.fashion_mnist_dir, Split::Train)?;
            Ok((data, format!("Fashion-MNIST train split ({})", self.fashion_mnist_dir.display())))
        } else {
            let dir = PathBuf::from(&self.data);
            let folder = data::folder::load_folder(&dir, self.image_size, self.image_size, self.image_channels)?;
            if !folder.skipped.is_empty() {
                eprintln!("skipped {} files that are not usable images:", folder.skipped.len());
                for (_, reason) in folder.skipped.iter().take(20) {
                    eprintln!("  {reason}");
                }
                if folder.skipped.len() > 20 {
                    eprintln!("  … and {} more", folder.skipped.len() - 20);
                }
            }
            let data = folder.data;
            Ok((data, format!("folder {}", dir.display())))
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

/// Opens a run's CSV log (first column: the step) for appending, writing `header` if the file is new. Rows
/// after `step`, the step of the checkpoint the run continues from (0 for a new run), are dropped first: a
/// killed run logged steps that its last checkpoint does not hold, and the resumed run logs them again.
fn csv_log_from_step(path: &std::path::Path, header: &str, step: u64) -> anyhow::Result<std::fs::File> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let mut lines = text.lines();
        let kept: Vec<&str> = lines
            .next()
            .into_iter()
            .chain(lines.filter(|row| row.split(',').next().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s <= step)))
            .collect();
        if kept.len() < text.lines().count() {
            let mut trimmed = kept.join("\n");
            trimmed.push('\n');
            diffusion_lab::files::write_atomic(path, trimmed.as_bytes()).with_context(|| format!("cannot rewrite {}", path.display()))?;
        }
    }
    csv_log(path, header)
}

/// Opens a CSV log for appending, writing `header` if the file is new.
fn csv_log(path: &std::path::Path, header: &str) -> anyhow::Result<std::fs::File> {
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if log.metadata()?.len() == 0 {
        writeln!(log, "{header}")?;
    }
    Ok(log)
}

fn load_autoencoder(path: &std::path::Path, device: &Device) -> anyhow::Result<LoadedAutoencoder> {
    let checkpoint = Checkpoint::read(path).with_context(|| format!("cannot load the autoencoder {}", path.display()))?;
    Ok(LoadedAutoencoder::from_checkpoint(&checkpoint, device)?)
}

fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let (pixels, description) = args.data.load()?;
    let files = RunFiles::new(&args.out);
    std::fs::create_dir_all(&files.dir).with_context(|| format!("cannot create {}", files.dir.display()))?;
    let device = Device::flex();
    let autoencoder = match (&args.autoencoder, args.latent) {
        (Some(path), true) => Some(load_autoencoder(path, &device)?),
        _ => None,
    };
    let (data, description) = match &autoencoder {
        Some(ae) => {
            eprintln!("encoding {} images with the autoencoder…", pixels.count);
            let latents = diffusion_lab::train::autoencoder::latent_dataset(&ae.model, &ae.config, &pixels, &device)?;
            (latents, format!("latents of {description}"))
        }
        None => (pixels, description),
    };
    let mut trainer = if args.resume {
        let checkpoint = Checkpoint::read(&files.checkpoint())
            .with_context(|| format!("cannot resume from {}", files.checkpoint().display()))?;
        DdpmTrainer::resume(&checkpoint, &device, Some(args.steps))?
    } else {
        if files.checkpoint().exists() {
            bail!("{} already holds a run: pass --resume to continue it, or choose another --out", files.dir.display());
        }
        let num_classes = data.num_classes().max(1);
        let default_channels = if args.latent { vec![64, 128] } else { vec![32, 64, 128] };
        let channels = args.channels.clone().unwrap_or(default_channels);
        if channels.is_empty() {
            bail!("--channels needs at least one level");
        }
        let levels = channels.len();
        let unet = UNetConfig::new()
            .with_self_attention_levels(vec![levels - 1])
            .with_cross_attention_levels((1..levels).collect())
            .with_channels(channels)
            .with_image_channels(data.channels)
            .with_image_size(data.height)
            .with_num_classes(num_classes);
        unet.validate().map_err(|e| anyhow::anyhow!("cannot train this UNet: {e}"))?;
        let config = TrainConfig::new()
            .with_steps(args.steps)
            .with_batch_size(args.batch_size)
            .with_learning_rate(args.learning_rate)
            .with_seed(args.seed);
        let trainer = DdpmTrainer::new(config, unet, &device, description);
        match &args.autoencoder {
            Some(path) if args.latent => trainer.latent(path.display().to_string()),
            _ => trainer,
        }
    };
    if trainer.kind == ModelKind::LatentUnet && autoencoder.is_none() {
        bail!("this run trains a latent model: pass --latent --autoencoder {}", trainer.autoencoder.clone().unwrap_or_default());
    }
    if data.channels != trainer.unet_config.image_channels {
        bail!("the data has {} channels but the model expects {}", data.channels, trainer.unet_config.image_channels);
    }
    let parameters = trainer.ema.parameter_count();
    eprintln!("training a {parameters}-parameter UNet on {} images, step {} of {}", data.count, trainer.step, trainer.config.steps);

    let mut log = csv_log_from_step(&files.loss_log(), "step,loss,learning_rate,images_per_second,wall_seconds", trainer.step)?;
    let total = trainer.config.steps;
    let bar = progress_bar(total, trainer.step);
    let stop_at = args.max_steps_now.map_or(total, |n| (trainer.step + n).min(total));
    let mut smoothed: Option<f64> = None;
    while trainer.step < stop_at {
        let report = trainer.train_step(&data);
        let loss = smoothed.map_or(report.loss, |s| 0.98 * s + 0.02 * report.loss);
        smoothed = Some(loss);
        bar.set_position(report.step);
        bar.set_message(format!("loss {loss:.4}  {:.1} img/s", report.images_per_second));
        writeln!(log, "{},{},{},{:.2},{:.1}", report.step, report.loss, report.learning_rate, report.images_per_second, trainer.wall_seconds)?;
        let last = trainer.step == stop_at;
        if trainer.step % args.checkpoint_every == 0 || last {
            trainer.checkpoint()?.write(&files.checkpoint())?;
            if let Some(path) = &args.export {
                trainer.export()?.write(path)?;
            }
            log.flush()?;
        }
        if trainer.step % args.preview_every == 0 || last {
            // Through the export, so that the preview shows the weights as shipped (EMA in f16).
            let model = LoadedUnet::from_checkpoint(&trainer.export()?, &device)?;
            let grid = class_grid(&model, autoencoder.as_ref(), 4, DEFAULT_GUIDANCE, Sampler::ddim(50, 0.0), BetaSchedule::cosine(1000), 0, &device)?;
            images::save_png(&files.preview(trainer.step), &grid, &[])?;
        }
    }
    bar.finish();
    eprintln!("stopped at step {} ({:.0} s of training in all); checkpoint in {}", trainer.step, trainer.wall_seconds, files.checkpoint().display());
    Ok(())
}

/// `per_class` samples of every class, one row per class.
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
    let pictures = generate(model, decoder, &classes, guidance, sampler, schedule, seed, device)?;
    Ok(images::grid(&pictures, per_class, 2))
}

/// Runs the whole reverse process for one image per entry of `classes`; a latent model's result is decoded
/// to pixels by `decoder`.
#[allow(clippy::too_many_arguments)]
fn generate(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    classes: &[usize],
    guidance: f64,
    sampler: Sampler,
    schedule: BetaSchedule,
    seed: u64,
    device: &Device,
) -> anyhow::Result<Vec<Picture>> {
    let schedule = schedule.build()?;
    let plan = sampler.plan(&schedule)?.with_x0_bound(model.x0_bound());
    if model.is_latent() && decoder.is_none() {
        bail!("a latent model needs its autoencoder to make pixels: pass --autoencoder");
    }
    let (c, size) = (model.config.image_channels, model.config.image_size);
    let mut noise = NoiseSource::new(seed);
    let mut pictures = Vec::with_capacity(classes.len());
    // Network evaluations can take minutes on a CPU: a bar over every step of every batch (hidden when
    // stderr is not a terminal).
    let bar = progress_bar((classes.len().div_ceil(SAMPLE_BATCH) * plan.len()) as u64, 0);
    bar.set_message(format!("{} images", classes.len()));
    // Bounded batches keep memory flat for thousands of samples; one noise stream keeps them reproducible.
    for chunk in classes.chunks(SAMPLE_BATCH) {
        let n = chunk.len();
        let x_start = noise.tensor([n, c, size, size], device);
        let labels: Vec<i64> = chunk.iter().map(|c| *c as i64).collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);
        let x0 = denoise(&model.model, &plan, x_start, &labels, guidance, &mut noise, |_| {
            bar.inc(1);
            ControlFlow::Continue(())
        });
        let (x0, c, size) = match decoder.filter(|_| model.is_latent()) {
            Some(ae) => (ae.decode_scaled(x0), ae.config.image_channels, ae.config.image_size),
            None => (x0, c, size),
        };
        let values: Vec<f32> = x0.into_data().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if values.iter().any(|v| !v.is_finite()) {
            bail!("sampling diverged (non-finite values); try another schedule or sampler");
        }
        pictures.extend(images::pictures_from_batch(&values, n, c, size, size));
    }
    bar.finish_and_clear();
    Ok(pictures)
}

/// Images sampled together (twice that through the network with classifier-free guidance).
const SAMPLE_BATCH: usize = 100;

/// The checkpoint behind a `--model` value (a built-in model's short name or a file) and, for a built-in
/// latent model, its autoencoder.
pub(crate) fn checkpoint_of_model(model: &str) -> anyhow::Result<(Checkpoint, Option<&'static [u8]>)> {
    match embedded::model_by_short_name(model) {
        Some(builtin) => Ok((Checkpoint::from_bytes(builtin.unet)?, builtin.autoencoder)),
        None => {
            let path = std::path::Path::new(model);
            if !path.exists() && !model.contains(['/', '.']) {
                let names: Vec<&str> = embedded::MODELS.iter().map(|m| m.short_name).collect();
                bail!("no built-in model `{model}` (built in: {}) and no such file", names.join(", "));
            }
            let checkpoint = Checkpoint::read(path).with_context(|| format!("cannot load the model {model}"))?;
            Ok((checkpoint, None))
        }
    }
}

/// The decoder a latent model's samples go through: `--autoencoder` when given, else the built-in
/// model's own; `None` for a pixel model.
pub(crate) fn decoder_for(
    model: &str,
    unet: &LoadedUnet,
    builtin: Option<&'static [u8]>,
    given: Option<&std::path::Path>,
    device: &Device,
) -> anyhow::Result<Option<LoadedAutoencoder>> {
    match (given, builtin, unet.is_latent()) {
        (Some(path), _, _) => Ok(Some(load_autoencoder(path, device)?)),
        (None, Some(bytes), true) => Ok(Some(LoadedAutoencoder::from_checkpoint(&Checkpoint::from_bytes(bytes)?, device)?)),
        (None, None, true) => bail!("{model} is a latent model: pass --autoencoder with the autoencoder it was trained on"),
        (None, _, false) => Ok(None),
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerName {
    Ddpm,
    Ddim,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// A built-in model (`fashion`: pixel space, `latent`: the autoencoder's latent space) or a
    /// checkpoint file written by `train`.
    #[arg(long, default_value = "fashion")]
    pub model: String,
    /// Number of images.
    #[arg(long, default_value_t = 16)]
    pub n: usize,
    /// Generate this class (0..9 for Fashion-MNIST); without it and --all-classes, unconditional.
    #[arg(long, conflicts_with = "all_classes")]
    pub class: Option<usize>,
    /// Cycle through every class, n / classes images each (one grid row per class).
    #[arg(long)]
    pub all_classes: bool,
    /// Classifier-free guidance scale w: 0 = unconditional, 1 = conditional, more = stronger.
    #[arg(long, default_value_t = DEFAULT_GUIDANCE)]
    pub guidance: f64,
    /// ddim (50 steps by default: fast on a CPU) or ddpm (all T steps of the schedule).
    #[arg(long, value_enum, default_value_t = SamplerName::Ddim)]
    pub sampler: SamplerName,
    /// DDIM steps.
    #[arg(long = "sampling-steps", default_value_t = 50)]
    pub sampling_steps: usize,
    /// DDIM eta in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    pub eta: f64,
    #[command(flatten)]
    pub schedule: ScheduleOptions,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto, cpu or wgpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// For a latent model: the autoencoder that turns its latents into pixels.
    #[arg(long)]
    pub autoencoder: Option<PathBuf>,
    /// Write all images as one grid PNG.
    #[arg(long)]
    pub grid: Option<PathBuf>,
    /// Write one PNG per image (the class is in the file name).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

fn sample(args: &SampleArgs) -> anyhow::Result<()> {
    if args.grid.is_none() && args.out_dir.is_none() {
        bail!("nothing to write: give --grid FILE.png and/or --out-dir DIR");
    }
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let (checkpoint, builtin_autoencoder) = checkpoint_of_model(&args.model)?;
    let config: UNetConfig = serde_json::from_value(checkpoint.header.config.clone())
        .map_err(|e| anyhow::anyhow!("the model's config is damaged: {e}"))?;
    let num_classes = config.num_classes;
    let classes: Vec<usize> = if args.all_classes {
        let per_class = args.n.div_ceil(num_classes);
        (0..num_classes).flat_map(|c| std::iter::repeat_n(c, per_class)).take(args.n).collect()
    } else {
        match args.class {
            Some(c) if c >= num_classes => bail!("--class must be below {num_classes}, got {c}"),
            Some(c) => vec![c; args.n],
            None => vec![num_classes; args.n],
        }
    };
    let sampler = match args.sampler {
        SamplerName::Ddpm => Sampler::ddpm(DdpmVariance::BetaTilde),
        SamplerName::Ddim => Sampler::ddim(args.sampling_steps, args.eta),
    };
    let schedule = args.schedule.beta_schedule_or(checkpoint.header.training_schedule.unwrap_or_default());
    // Everything the user typed is checked before the (possibly slow) device and model start.
    sampler.plan(&schedule.build()?)?;
    let device = open_device(args.device)?;
    let model = LoadedUnet::from_checkpoint(&checkpoint, &device.device)?;
    eprintln!("sampling {} images with {} on {}", args.n, sampler.label(), device.description);
    let decoder = decoder_for(&args.model, &model, builtin_autoencoder, args.autoencoder.as_deref(), &device.device)?;
    let pictures = generate(&model, decoder.as_ref(), &classes, args.guidance, sampler, schedule, args.seed, &device.device)?;
    // The window's settings format: a request that the window's "Open settings from PNG…" restores. The
    // window draws x_T for a batch from the seed as `sample` draws its first batch, so an image of the
    // first batch (up to the window's largest batch) comes back as it is here.
    let app_model = embedded::model_by_short_name(&args.model).map_or_else(
        || format!("file: {}", std::path::Path::new(&args.model).file_name().map_or(args.model.clone(), |n| n.to_string_lossy().into_owned())),
        |builtin| builtin.name.to_string(),
    );
    let request_for = |class: usize| {
        serde_json::to_value(diffusion_lab::engine::GenerateRequest {
            model: app_model.clone(),
            schedule,
            sampler,
            seed: args.seed,
            batch: classes.len().min(SAMPLE_BATCH).min(diffusion_lab::engine::generate::MAX_BATCH),
            class: (class < num_classes).then_some(class),
            guidance: args.guidance,
        })
        .unwrap_or_default()
    };
    if let Some(path) = &args.grid {
        let columns = if args.all_classes { args.n.div_ceil(num_classes) } else { (args.n as f64).sqrt().ceil() as usize };
        let text = images::settings_text(request_for(classes[0]), serde_json::json!({ "classes": classes }));
        images::save_png(path, &images::grid(&pictures, columns, 2), &text)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (i, (picture, class)) in pictures.iter().zip(&classes).enumerate() {
            let name = if *class < num_classes { format!("{i:05}-class{class}.png") } else { format!("{i:05}-any.png") };
            let text = images::settings_text(request_for(*class), serde_json::json!({ "index": i }));
            images::save_png(&dir.join(name), picture, &text)?;
        }
        eprintln!("wrote {} images to {}", pictures.len(), dir.display());
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct TrainClassifierArgs {
    #[arg(long, default_value = data::FASHION_MNIST_DIR)]
    pub fashion_mnist_dir: PathBuf,
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
    /// Where to write the classifier checkpoint.
    #[arg(long, default_value = "runs/classifier.dlab")]
    pub out: PathBuf,
}

fn train_classifier(args: &TrainClassifierArgs) -> anyhow::Result<()> {
    let train = Dataset::fashion_mnist(&args.fashion_mnist_dir, Split::Train)?;
    let test = Dataset::fashion_mnist(&args.fashion_mnist_dir, Split::Test)?;
    let device = Device::flex();
    let config = ClassifierConfig::new();
    let mut last_accuracy = 0.0;
    let started = std::time::Instant::now();
    let model = diffusion_lab::train::classifier::train_classifier(&config, &train, &test, args.epochs, &device, |report| {
        last_accuracy = report.test_accuracy;
        eprintln!(
            "epoch {}: mean loss {:.4}, test accuracy {:.2} % ({:.0} s)",
            report.epoch, report.mean_loss, 100.0 * report.test_accuracy, started.elapsed().as_secs_f64()
        );
    })?;
    diffusion_lab::train::classifier::classifier_checkpoint(&model, &config, last_accuracy)?.write(&args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Folder of sample PNGs (as `sample --out-dir` writes them; `classN` in a name is the intended class).
    #[arg(required_unless_present = "reconstructions")]
    pub samples: Option<PathBuf>,
    /// Instead of samples, score an autoencoder's reconstructions D(E(x)) of test images: `latent` (the
    /// built-in latent model's autoencoder) or an autoencoder checkpoint file.
    #[arg(long, conflicts_with = "samples")]
    pub reconstructions: Option<String>,
    /// How many test images to reconstruct.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// The judge: `fashion` (the classifier built into diffusion-lab) or a checkpoint written by `train-classifier`.
    #[arg(long, default_value = "fashion")]
    pub classifier: String,
    #[arg(long, default_value = data::FASHION_MNIST_DIR)]
    pub fashion_mnist_dir: PathBuf,
}

fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let checkpoint = match args.classifier.as_str() {
        "fashion" => Checkpoint::from_bytes(embedded::FASHION_CLASSIFIER)?,
        path => Checkpoint::read(path.as_ref()).with_context(|| format!("cannot load {path}"))?,
    };
    let judge = Judge::from_checkpoint(&checkpoint, &device)?;
    let test = Dataset::fashion_mnist(&args.fashion_mnist_dir, Split::Test)?;
    let train = Dataset::fashion_mnist(&args.fashion_mnist_dir, Split::Train)?;
    let reference = judge.gaussian(&test)?;
    let samples = match (&args.samples, &args.reconstructions) {
        (Some(dir), _) => diffusion_lab::eval::load_samples(dir, judge.config.image_channels, judge.config.image_size)?,
        (None, Some(autoencoder)) => {
            if args.n == 0 {
                bail!("--n must be at least 1");
            }
            let checkpoint = match embedded::model_by_short_name(autoencoder).and_then(|m| m.autoencoder) {
                Some(bytes) => Checkpoint::from_bytes(bytes)?,
                None => Checkpoint::read(autoencoder.as_ref()).with_context(|| format!("cannot load {autoencoder}"))?,
            };
            let autoencoder = LoadedAutoencoder::from_checkpoint(&checkpoint, &device)?;
            let originals = test.pick(&test.shuffled_indices(7)[..args.n.min(test.count)]);
            let original_score = judge.score(&originals, &reference)?;
            println!(
                "originals: n = {:5}  FD = {:8.3}  class accuracy = {:.1} % (the same test images, unchanged)",
                original_score.count,
                original_score.frechet_distance,
                100.0 * original_score.class_accuracy.unwrap_or(0.0)
            );
            eprintln!("reconstructing {} test images", originals.count);
            autoencoder.reconstruct(&originals, &device)?
        }
        (None, None) => bail!("give a folder of samples or --reconstructions AUTOENCODER"),
    };
    let score = judge.score(&samples, &reference)?;
    // The floor: as many real training images, scored the same way.
    let real = train.pick(&train.shuffled_indices(99)[..samples.count.min(train.count)]);
    let floor = judge.score(&real, &reference)?;
    let percent = |a: Option<f64>| a.map_or("n/a".to_string(), |a| format!("{:.1} %", 100.0 * a));
    let what = if args.samples.is_some() { "samples:  " } else { "D(E(x)):  " };
    println!("{what} n = {:5}  FD = {:8.3}  class accuracy = {}", score.count, score.frechet_distance, percent(score.class_accuracy));
    println!("real data: n = {:5}  FD = {:8.3}  class accuracy = {}", floor.count, floor.frechet_distance, percent(floor.class_accuracy));
    println!("FD ratio (samples / real) = {:.2}", score.frechet_distance / floor.frechet_distance);
    Ok(())
}

#[derive(Args, Debug)]
pub struct TrainAutoencoderArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Folder for the checkpoint, the loss log and the reconstruction previews.
    #[arg(long, default_value = "runs/autoencoder")]
    pub out: PathBuf,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    #[arg(long, default_value_t = 3000)]
    pub steps: u64,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Steps before the PatchGAN discriminator joins.
    #[arg(long, default_value_t = 1000)]
    pub adversarial_start: u64,
    /// Channels of the latent (its side is the image's / 4).
    #[arg(long, default_value_t = 4)]
    pub latent_channels: usize,
    /// The perceptual loss's classifier: `fashion` (built in) or a checkpoint from `train-classifier`.
    #[arg(long, default_value = "fashion")]
    pub classifier: String,
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every: u64,
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub preview_every: u64,
    /// Stop after this many steps of this invocation (the run itself stays resumable).
    #[arg(long)]
    pub max_steps_now: Option<u64>,
    /// Also write the shippable autoencoder (f16, with its latent scale) here at every checkpoint.
    #[arg(long)]
    pub export: Option<PathBuf>,
}

fn classifier_checkpoint(name: &str) -> anyhow::Result<Checkpoint> {
    match name {
        "fashion" => Ok(Checkpoint::from_bytes(embedded::FASHION_CLASSIFIER)?),
        path => Checkpoint::read(path.as_ref()).with_context(|| format!("cannot load the classifier {path}")),
    }
}

fn train_autoencoder(args: &TrainAutoencoderArgs) -> anyhow::Result<()> {
    use diffusion_lab::model::autoencoder::AutoencoderConfig;
    use diffusion_lab::train::autoencoder::{AutoencoderTrainConfig, AutoencoderTrainer};
    let (data, description) = args.data.load()?;
    let classifier = classifier_checkpoint(&args.classifier)?;
    let files = RunFiles::new(&args.out);
    std::fs::create_dir_all(&files.dir).with_context(|| format!("cannot create {}", files.dir.display()))?;
    let device = Device::flex();
    let mut trainer = if args.resume {
        let checkpoint = Checkpoint::read(&files.checkpoint())
            .with_context(|| format!("cannot resume from {}", files.checkpoint().display()))?;
        AutoencoderTrainer::resume(&checkpoint, &classifier, &device, Some(args.steps))?
    } else {
        if files.checkpoint().exists() {
            bail!("{} already holds a run: pass --resume to continue it, or choose another --out", files.dir.display());
        }
        let config = AutoencoderTrainConfig::new()
            .with_steps(args.steps)
            .with_batch_size(args.batch_size)
            .with_adversarial_start(args.adversarial_start);
        let ae = AutoencoderConfig::new()
            .with_image_channels(data.channels)
            .with_image_size(data.height)
            .with_latent_channels(args.latent_channels);
        ae.validate().map_err(|e| anyhow::anyhow!("cannot train this autoencoder: {e}"))?;
        AutoencoderTrainer::new(config, ae, &classifier, &device, description)?
    };
    eprintln!("training an autoencoder on {} images, step {} of {}", data.count, trainer.step, trainer.config.steps);
    let mut log = csv_log_from_step(
        &files.loss_log(),
        "step,reconstruction,perceptual,kl,generator,discriminator,images_per_second,wall_seconds",
        trainer.step,
    )?;
    let total = trainer.config.steps;
    let bar = progress_bar(total, trainer.step);
    let stop_at = args.max_steps_now.map_or(total, |n| (trainer.step + n).min(total));
    // Eight fixed images to watch the reconstructions improve.
    let preview_data = data.pick(&data.shuffled_indices(5)[..8.min(data.count)]);
    while trainer.step < stop_at {
        let r = trainer.train_step(&data);
        bar.set_position(r.step);
        bar.set_message(format!("L1 {:.4}  perceptual {:.4}  {:.1} img/s", r.reconstruction, r.perceptual, r.images_per_second));
        writeln!(
            log,
            "{},{},{},{},{},{},{:.2},{:.1}",
            r.step, r.reconstruction, r.perceptual, r.kl, r.generator, r.discriminator, r.images_per_second, trainer.wall_seconds
        )?;
        let last = trainer.step == stop_at;
        if trainer.step % args.checkpoint_every == 0 || last {
            trainer.checkpoint()?.write(&files.checkpoint())?;
            if let Some(path) = &args.export {
                trainer.export(&data)?.write(path)?;
            }
            log.flush()?;
        }
        if trainer.step % args.preview_every == 0 || last {
            let grid = reconstruction_grid(&trainer.autoencoder(), &preview_data, &device)?;
            images::save_png(&files.preview(trainer.step), &grid, &[])?;
        }
    }
    bar.finish();
    eprintln!("stopped at step {} ({:.0} s of training in all); checkpoint in {}", trainer.step, trainer.wall_seconds, files.checkpoint().display());
    Ok(())
}

/// Originals in the first row, D(E(x)) in the second.
fn reconstruction_grid(
    autoencoder: &diffusion_lab::model::autoencoder::Autoencoder,
    data: &Dataset,
    device: &Device,
) -> anyhow::Result<Picture> {
    let (pixels, _) = data.gather(&(0..data.count).collect::<Vec<_>>());
    let shape = [data.count, data.channels, data.height, data.width];
    let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), shape), device);
    let decoded: Vec<f32> = autoencoder.decode(autoencoder.encode(x).mean).into_data().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut pictures = images::pictures_from_batch(&pixels, data.count, data.channels, data.height, data.width);
    pictures.extend(images::pictures_from_batch(&decoded, data.count, data.channels, data.height, data.width));
    Ok(images::grid(&pictures, data.count, 2))
}
