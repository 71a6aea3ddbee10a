//! `eval`: Fréchet distance and class accuracy of samples (or reconstructions) against the test set.

use super::*;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Folder of sample PNGs (as `sample --out-dir` writes them; `classN` in a name is the intended class).
    #[arg(required_unless_present_any = ["reconstructions", "edits"])]
    pub samples: Option<PathBuf>,
    /// Instead of samples, score an autoencoder's reconstructions D(E(x)) of test images: `latent` (the
    /// built-in latent model's autoencoder) or an autoencoder checkpoint file.
    #[arg(long, conflicts_with = "samples")]
    pub reconstructions: Option<String>,
    /// Instead of samples, measure image-to-image on test images at these strengths (e.g. 0.6,0.8,1.0):
    /// each image pushed towards the next class ((label + 1) mod 10) with the built-in pixel model
    /// (DPM++ 2M, 20 steps, guidance 2); prints the share judged as that class, as their own class, and
    /// how far the results moved from the inputs.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["samples", "reconstructions"])]
    pub edits: Vec<f64>,
    /// How many test images to reconstruct or edit.
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
    if !args.edits.is_empty() {
        return edits_table(args, &judge, &test, &device);
    }
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
    println!(
        "{what} n = {:5}  FD = {:8.3}  class accuracy = {}",
        score.count,
        score.frechet_distance,
        percent(score.class_accuracy)
    );
    println!(
        "real data: n = {:5}  FD = {:8.3}  class accuracy = {}",
        floor.count,
        floor.frechet_distance,
        percent(floor.class_accuracy)
    );
    println!("FD ratio (samples / real) = {:.2}", score.frechet_distance / floor.frechet_distance);
    Ok(())
}

/// `eval --edits`: image-to-image from real test images towards another class, at each strength.
fn edits_table(args: &EvalArgs, judge: &Judge, test: &Dataset, device: &Device) -> anyhow::Result<()> {
    use diffusion_lab::diffusion::{Method, Sampler};
    use diffusion_lab::engine::GenerateRequest;
    use diffusion_lab::engine::generate::InitImage;
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let builtin = embedded::model_by_short_name("fashion").context("no built-in pixel model")?;
    let checkpoint = Checkpoint::from_bytes(builtin.unet)?;
    let model = LoadedUnet::from_checkpoint(&checkpoint, device)?;
    let schedule = checkpoint.header.training_schedule.unwrap_or_default();
    let classes = test.num_classes();
    let originals = test.pick(&test.shuffled_indices(7)[..args.n.min(test.count)]);
    let plane = originals.image_len();
    println!(
        "| strength | n | judged as the target class | judged as their own class | mean abs. change (of 2) | RMSE |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for &strength in &args.edits {
        let mut images = Vec::with_capacity(originals.count * plane);
        let mut targets = Vec::with_capacity(originals.count);
        let bar = progress_bar(originals.count as u64, 0);
        for i in 0..originals.count {
            let label = originals.label(i).context("the test set is labelled")?;
            let target = (label + 1) % classes;
            let pixels: Vec<u8> = originals.image(i).iter().map(|v| data::u8_from_unit(*v)).collect();
            let init = InitImage {
                label: format!("test image {i}"),
                shape: [originals.channels, originals.height, originals.width],
                pixels,
                strength,
                mask: None,
                resample: 1,
            };
            let request = GenerateRequest {
                model: builtin.name.into(),
                schedule,
                sampler: Sampler::new(Method::DpmSolver2M, 20),
                seed: i as u64,
                batch: 1,
                class: Some(target),
                guidance: DEFAULT_GUIDANCE,
                guidance_interval: None,
                init: Some(init),
                interpolate: None,
            };
            let frame = final_frame(&model, None, &request, device)?;
            // As the PNG would hold it: 8-bit.
            images.extend(frame.x_t.iter().map(|v| data::unit_from_u8(data::u8_from_unit(*v))));
            targets.push(target);
            bar.inc(1);
        }
        bar.finish_and_clear();
        let edited = Dataset { images, labels: Some(targets.clone()), ..originals.clone() };
        let (_, predictions) = judge.features_and_predictions(&edited)?;
        let n = originals.count as f64;
        let as_target = predictions.iter().zip(&targets).filter(|(p, t)| p == t).count() as f64 / n;
        let as_own = (0..originals.count).filter(|i| originals.label(*i) == Some(predictions[*i])).count() as f64 / n;
        let differences: Vec<f64> =
            edited.images.iter().zip(&originals.images).map(|(a, b)| (*a as f64 - *b as f64).abs()).collect();
        let mean = differences.iter().sum::<f64>() / differences.len() as f64;
        let rmse = (differences.iter().map(|d| d * d).sum::<f64>() / differences.len() as f64).sqrt();
        println!(
            "| {strength} | {} | {:.1} % | {:.1} % | {mean:.3} | {rmse:.3} |",
            originals.count,
            100.0 * as_target,
            100.0 * as_own
        );
    }
    Ok(())
}
