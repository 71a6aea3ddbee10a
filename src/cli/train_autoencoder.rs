//! `train-autoencoder`: latent diffusion's autoencoder, resumable.

use super::*;
use diffusion_lab::model::autoencoder::AutoencoderConfig;
use diffusion_lab::train::autoencoder::{AutoencoderTrainConfig, AutoencoderTrainer};

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
    #[arg(long, default_value_t = AutoencoderTrainConfig::new().steps)]
    pub steps: u64,
    #[arg(long, default_value_t = AutoencoderTrainConfig::new().batch_size)]
    pub batch_size: usize,
    /// Steps before the PatchGAN discriminator joins.
    #[arg(long, default_value_t = AutoencoderTrainConfig::new().adversarial_start)]
    pub adversarial_start: u64,
    /// Channels of the latent (its side is the image's / 4).
    #[arg(long, default_value_t = AutoencoderConfig::new().latent_channels)]
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

pub(super) fn train_autoencoder(args: &TrainAutoencoderArgs) -> anyhow::Result<()> {
    let (data, description) = args.data.load()?;
    let classifier = classifier_checkpoint(&args.classifier)?;
    let files = TrainingFiles::new(&args.out);
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
        bar.set_message(format!(
            "L1 {:.4}  perceptual {:.4}  {:.1} img/s",
            r.reconstruction, r.perceptual, r.images_per_second
        ));
        writeln!(
            log,
            "{},{},{},{},{},{},{:.2},{:.1}",
            r.step,
            r.reconstruction,
            r.perceptual,
            r.kl,
            r.generator,
            r.discriminator,
            r.images_per_second,
            trainer.wall_seconds
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
    eprintln!(
        "stopped at step {} ({:.0} s of training in all); checkpoint in {}",
        trainer.step,
        trainer.wall_seconds,
        files.checkpoint().display()
    );
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
    let decoded: Vec<f32> = autoencoder
        .decode(autoencoder.encode(x).mean)
        .into_data()
        .try_to_vec()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut pictures = images::pictures_from_batch(&pixels, data.count, data.channels, data.height, data.width);
    pictures.extend(images::pictures_from_batch(&decoded, data.count, data.channels, data.height, data.width));
    Ok(images::grid(&pictures, data.count, 2))
}
