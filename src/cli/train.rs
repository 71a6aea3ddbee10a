//! `train`: the noise-prediction UNet on Fashion-MNIST or a folder of images, resumable.

use super::*;

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

pub(super) fn train(args: &TrainArgs) -> anyhow::Result<()> {
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
