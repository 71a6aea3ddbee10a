//! `train`: the noise-prediction UNet on Fashion-MNIST or a folder of images, resumable.

use super::*;
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
        }
    }
}

pub(super) fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let data = args.data.load_with_captions()?;
    let device = Device::flex();
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
