//! `eval`: Fréchet distance and class accuracy of samples (or reconstructions) against the test set.

use super::*;

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

pub(super) fn eval(args: &EvalArgs) -> anyhow::Result<()> {
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
