//! `train`: the noise-prediction UNet on Fashion-MNIST or a folder of images, resumable.

use super::*;
use diffusion_lab::diffusion::{Objective, Weighting};
use diffusion_lab::eval::quality::{QualityLog, QualityMeter};
use diffusion_lab::train::defaults::TRAIN_DEFAULTS;

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
    #[arg(long, default_value_t = TRAIN_DEFAULTS.steps)]
    pub steps: u64,
    #[arg(long, default_value_t = TRAIN_DEFAULTS.batch_size)]
    pub batch_size: usize,
    #[arg(long, default_value_t = TRAIN_DEFAULTS.learning_rate)]
    pub learning_rate: f64,
    #[arg(long, value_delimiter = ',', help = channels_help())]
    pub channels: Option<Vec<usize>>,
    /// Train latent diffusion: the UNet works on the latents of --autoencoder.
    #[arg(long, requires = "autoencoder")]
    pub latent: bool,
    /// The autoencoder (a checkpoint from `train-autoencoder`) whose latents a --latent model learns.
    #[arg(long)]
    pub autoencoder: Option<PathBuf>,
    #[arg(long, default_value_t = TRAIN_DEFAULTS.checkpoint_every, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every: u64,
    #[arg(long, default_value_t = TRAIN_DEFAULTS.preview_every, value_parser = clap::value_parser!(u64).range(1..))]
    pub preview_every: u64,
    /// Stop after this many steps of this invocation (the run itself stays resumable).
    #[arg(long)]
    pub max_steps_now: Option<u64>,
    #[arg(long, default_value_t = TRAIN_DEFAULTS.seed)]
    pub seed: u64,
    /// Also write the shippable model (EMA weights in f16) to this path at every checkpoint.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Train a text model: τ_θ reads prompts. Captions come from a `.txt` file beside each image of a folder
    /// (cat.png -> cat.txt), or for Fashion-MNIST are made from each image's class and the brightness, size
    /// and texture measured from its pixels.
    #[arg(long)]
    pub captions: bool,
    /// What the network predicts: eps (the noise), x0 (the clean image), v (α ε - σ x₀) or flow (the
    /// velocity ε - x₀ of the straight path). A resumed run keeps its own [default: eps]
    #[arg(long)]
    pub objective: Option<Objective>,
    /// How much each noise level counts: plain (the target's own squared error), min-snr[:γ] (γ = 5),
    /// edm[:σ_data] (σ_data measured on the data), uniform-t or logit-normal[:mean,std] (flow matching's t).
    /// A resumed run keeps its own [default: uniform-t for flow, plain otherwise]
    #[arg(long)]
    pub weighting: Option<Weighting>,
    /// Score the model every K steps: samples from the same x_T each time, scored by the project's
    /// classifier (Fréchet distance, class accuracy, real data's at the same n, the nearest training
    /// image), written to quality.csv in --out. Fashion-MNIST only. 0: off
    #[arg(long, default_value_t = 0)]
    pub quality_every: u64,
    /// Samples per quality reading
    #[arg(long, default_value_t = diffusion_lab::train::training::DEFAULT_QUALITY_SAMPLES as u64, value_parser = clap::value_parser!(u64).range(10..=10000))]
    pub quality_samples: u64,
}

/// `--channels`' help, with the default size's channels.
fn channels_help() -> String {
    let list = |latent| TRAIN_DEFAULTS.size.channels(latent).iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    format!("Feature channels per resolution level [default: {} on pixels, {} on latents]", list(false), list(true))
}

impl TrainArgs {
    /// The run these flags describe.
    pub fn run_options(&self) -> TrainingOptions {
        TrainingOptions {
            out: self.out.clone(),
            steps: self.steps,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            channels: self.channels.clone(),
            autoencoder: self.autoencoder.clone().filter(|_| self.latent),
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
            preview_every: self.preview_every,
            export: self.export.clone(),
            captions: self.captions,
            objective: self.objective,
            weighting: self.weighting,
            quality_every: self.quality_every,
            quality_samples: self.quality_samples as usize,
        }
    }
}

pub(super) fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    // Made before the run opens: a meter that cannot work is refused with nothing written.
    let meter = (args.quality_every > 0)
        .then(|| QualityMeter::new(&args.data.source(), args.quality_samples as usize, &device, Default::default()))
        .transpose()?;
    let data = args.data.load_with_captions()?;
    if args.latent {
        eprintln!("encoding {} images with the autoencoder…", data.data.count);
    }
    let mut run = Training::open(args.run_options(), data, args.resume, &device).map_err(|e| match e {
        TrainingError::AlreadyHoldsRun { dir, .. } => {
            anyhow::anyhow!(
                "{} already holds a run: pass --resume to continue it, or choose another --out",
                dir.display()
            )
        }
        other => other.into(),
    })?;
    let parameters = run.trainer.ema.parameter_count();
    eprintln!(
        "training a {parameters}-parameter UNet on {} images, step {} of {}",
        run.data.count,
        run.step_count(),
        run.total_steps()
    );

    if let Some(meter) = &meter {
        eprintln!(
            "quality meter: {} samples every {} steps (real test images at this n: FD {:.2}, {:.1} % of their class)",
            meter.samples(),
            args.quality_every,
            meter.floor().0,
            100.0 * meter.floor().1
        );
    }
    let mut quality_log = meter.as_ref().map(|_| QualityLog::open(&run.files.dir, run.step_count())).transpose()?;

    let total = run.total_steps();
    let bar = progress_bar(total, run.step_count());
    let stop_at = args.max_steps_now.map_or(total, |n| (run.step_count() + n).min(total));
    while run.step_count() < stop_at {
        let outcome = run.step()?;
        bar.set_position(outcome.report.step);
        bar.set_message(format!("loss {:.4}  {:.1} img/s", outcome.smoothed, outcome.report.images_per_second));
        let last = run.step_count() == stop_at;
        if last && !outcome.checkpointed {
            run.checkpoint()?;
        }
        if let (Some(meter), Some(log)) = (&meter, quality_log.as_mut())
            && (run.step_count().is_multiple_of(args.quality_every) || last)
        {
            let line = quality_reading(meter, log, &run, &device)?;
            bar.suspend(|| eprintln!("{line}"));
        }
        if run.preview_due() || last {
            // Through the export, so that the preview shows the weights as shipped (EMA in f16).
            let model = run.model(&device)?;
            let grid = class_grid(
                &model,
                run.autoencoder.as_ref(),
                4,
                DEFAULT_GUIDANCE,
                Sampler::ddim(50, 0.0),
                BetaSchedule::cosine(1000),
                0,
                &device,
            )?;
            images::save_png(&run.files.preview(run.step_count()), &grid, &[])?;
        }
    }
    bar.finish();
    eprintln!(
        "stopped at step {} ({:.0} s of training in all); checkpoint in {}",
        run.step_count(),
        run.trainer.wall_seconds,
        run.files.checkpoint().display()
    );
    Ok(())
}

/// A reading of the quality meter, appended to quality.csv; the line to print.
fn quality_reading(
    meter: &QualityMeter,
    log: &mut QualityLog,
    run: &Training,
    device: &Device,
) -> anyhow::Result<String> {
    let reading = meter.measure_run(run, device)?;
    log.append(&reading)?;
    Ok(format!(
        "step {}: FD {:.2} (real {:.2}), {:.1} % of their class (real {:.1} %), nearest training image {:.3} \
         (real {:.3}); {:.1} s",
        reading.step,
        reading.frechet_distance,
        reading.floor_frechet_distance,
        100.0 * reading.class_accuracy,
        100.0 * reading.floor_class_accuracy,
        reading.nearest_training,
        reading.floor_nearest_training,
        reading.seconds
    ))
}
