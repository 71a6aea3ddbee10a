//! `eval`: Fréchet distance and class accuracy of samples (or reconstructions) against the test set.

use super::*;
use diffusion_lab::diffusion::DdpmVariance;
use diffusion_lab::eval::nll::NllOptions;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Folder of sample PNGs (as `sample --out-dir` writes them; `classN` in a name is the intended class).
    #[arg(required_unless_present_any = ["reconstructions", "edits", "nll", "loss_by_level", "prompts", "ode"])]
    pub samples: Option<PathBuf>,
    /// Instead of samples, score an autoencoder's reconstructions D(E(x)) of test images: `latent` (the
    /// built-in latent model's autoencoder) or an autoencoder checkpoint file.
    #[arg(long, conflicts_with = "samples")]
    pub reconstructions: Option<String>,
    /// Instead of samples, measure image-to-image on test images at these strengths (e.g. 0.6,0.8,1.0):
    /// each image pushed towards the next class ((label + 1) mod 10) with the built-in pixel model
    /// (DPM++ 2M, 20 steps, the default guidance); prints the share judged as that class, as their own class, and
    /// how far the results moved from the inputs.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["samples", "reconstructions"])]
    pub edits: Vec<f64>,
    /// Instead of samples, how well a text model (`--model fashion-text` or a checkpoint) follows prompts:
    /// --n samples of each class word ("sneaker", "trainer", …): the share the judge puts in that class; of "dark X" and
    /// "light X" (and small / large, plain / patterned) for every class: the measured attribute of each, and
    /// the share on the asked side of the training data's threshold for that class; held-out pairs marked.
    #[arg(long, conflicts_with_all = ["samples", "reconstructions", "nll", "loss_by_level"])]
    pub prompts: bool,
    /// --prompts, --nll, --loss-by-level: the autoencoder of a latent model [default: a built-in model's own;
    /// for a checkpoint file, the one it was trained with, as its header records].
    #[arg(long)]
    pub autoencoder: Option<PathBuf>,
    /// --prompts: classifier-free guidance w.
    #[arg(long, default_value_t = DEFAULT_GUIDANCE)]
    pub guidance: f64,
    /// Instead of samples, the variational bound on the negative log-likelihood of test images under
    /// `--model` (Ho et al. 2020, eq. 5: L_T + Σ L_{t-1} + L_0), in bits per dimension, with its split over t
    /// and the error of x̂_0 at each t (the schedule: the model's training schedule, T = 1000).
    #[arg(long, conflicts_with_all = ["samples", "reconstructions"])]
    pub nll: bool,
    /// Instead of samples, the training loss ||ε - ε_θ(x_t, λ)||² of `--model` on test images at the centre of
    /// each noise-level bin (λ from -20 to 10, as the Train view splits it): what it learned at each level.
    #[arg(long, conflicts_with_all = ["samples", "reconstructions", "nll"])]
    pub loss_by_level: bool,
    /// --nll, --loss-by-level: the model, `fashion` or `latent` (built in) or a checkpoint file; a latent model's bound is on
    /// the autoencoder's latents of the test images, not on their pixels.
    #[arg(long, default_value = "fashion")]
    pub model: String,
    /// --nll: one t is evaluated per stratum of timesteps, strata one step wide within 20 steps of t = 1 and of
    /// t = T and at most this wide between (1: every t; the default evaluates 155 of the 1000).
    #[arg(long, default_value_t = 10)]
    pub stride: usize,
    /// --nll: σ_t² of the reverse process p_θ(x_{t-1} | x_t) = N(μ_θ, σ_t² I).
    #[arg(long, value_enum, default_value_t = VarianceArg::BetaTilde)]
    pub variance: VarianceArg,
    /// --nll: μ_θ from ε̂ as the network gave it, instead of from x̂_0 clipped to the data range (the default,
    /// as Ho et al.'s reference bound and every sampler here clip it).
    #[arg(long)]
    pub no_clip: bool,
    /// --nll, --loss-by-level: ε̂ given each test image's label (a bound on -log p(x_0 | y)); without it, unconditional.
    #[arg(long)]
    pub conditional: bool,
    /// --nll: write the bound's terms at every evaluated t here (CSV: t, λ, bits, RMSE of x̂_0); with --ode,
    /// each image's bound and ODE likelihood (CSV: image, label, bound_bits, ode_bits).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    #[command(flatten)]
    pub ode: super::eval_ode::OdeArgs,
    /// How many test images to reconstruct, edit or take the bound of.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// The judge: `fashion` (the classifier built into diffusion-lab) or a checkpoint written by `train-classifier`.
    #[arg(long, default_value = "fashion")]
    pub classifier: String,
    #[arg(long, default_value = data::FASHION_MNIST_DIR)]
    pub fashion_mnist_dir: PathBuf,
}

/// σ_t² of the reverse process, as `--variance` names it.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarianceArg {
    /// β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t, the posterior's own variance
    BetaTilde,
    /// β_t
    Beta,
}

pub(super) fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    args.ode.check(args.nll)?;
    if args.nll && args.ode.ode {
        return super::eval_ode::nll_ode_table(args, &device);
    }
    if args.nll || args.loss_by_level {
        return nll_table(args, &device);
    }
    let judge = Judge::from_checkpoint(&classifier_checkpoint(&args.classifier)?, &device)?;
    let test = Dataset::fashion_mnist(&args.fashion_mnist_dir, Split::Test)?;
    if !args.edits.is_empty() {
        return edits_table(args, &judge, &test, &device);
    }
    let train = Dataset::fashion_mnist(&args.fashion_mnist_dir, Split::Train)?;
    if args.prompts {
        return prompts_table(args, &judge, &train, &device);
    }
    let reference = judge.gaussian(&test)?;
    let samples = match (&args.samples, &args.reconstructions) {
        (Some(dir), _) => diffusion_lab::eval::load_samples(dir, judge.config.image_channels, judge.config.image_size)?,
        (None, Some(autoencoder)) => {
            if args.n == 0 {
                bail!("--n must be at least 1");
            }
            let checkpoint = diffusion_lab::run::models::autoencoder_checkpoint(autoencoder)?;
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
    use diffusion_lab::run::generate::InitImage;
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let resolved = ResolvedModel::named("fashion", None)?;
    let model = resolved.load(device)?.unet;
    let schedule = resolved.training_schedule();
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
                model: resolved.id.clone(),
                schedule,
                sampler: Sampler::new(Method::DpmSolver2M, 20),
                seed: i as u64,
                batch: 1,
                class: Some(target),
                prompt: None,
                guidance: DEFAULT_GUIDANCE,
                guidance_interval: None,
                init: Some(init),
                interpolate: None,
                branch: None,
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

/// `eval --nll`: the bound in bits per dimension, its terms, and a table of where the bits go over t.
fn nll_table(args: &EvalArgs, device: &Device) -> anyhow::Result<()> {
    use diffusion_lab::eval::nll;
    let (model, schedule, test) = model_and_test_values(args, device)?;
    if args.loss_by_level {
        return loss_by_level_table(args, &model, &test.values, &test.labels, test.dims, device);
    }
    let options = nll_options(args, &model, test.kind);
    let bar = progress_bar(0, 0);
    let sums =
        nll::bound(&model, &schedule, &test.values, &test.labels, test.dims, &options, device, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
    bar.finish_and_clear();
    print_bound(args, &model, &options, &sums, &schedule, test.labels.len())?;
    let csv = print_bound_over_t(&sums, &schedule, test.kind);
    if let Some(path) = &args.csv {
        output::write_file(path, csv.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The bound's options as the flags ask.
pub(super) fn nll_options(args: &EvalArgs, model: &LoadedUnet, kind: diffusion_lab::eval::nll::DataKind) -> NllOptions {
    let variance = match args.variance {
        VarianceArg::BetaTilde => DdpmVariance::BetaTilde,
        VarianceArg::Beta => DdpmVariance::Beta,
    };
    let (conditional, x0_bound, clip_mean) = (args.conditional, model.x0_bound(), !args.no_clip);
    NllOptions { stride: args.stride, seed: 11, variance, conditional, kind, batch: 50, x0_bound, clip_mean }
}

/// `--model`, its training schedule and `--n` test images as it takes them (`--nll`, `--loss-by-level`).
pub(super) fn model_and_test_values(
    args: &EvalArgs,
    device: &Device,
) -> anyhow::Result<(LoadedUnet, NoiseSchedule, TestValues)> {
    if args.n == 0 || args.stride == 0 {
        bail!("--n and --stride must be at least 1");
    }
    let resolved = ResolvedModel::named(&args.model, args.autoencoder.as_deref())?;
    let LoadedModel { unet: model, autoencoder } = resolved.load(device)?;
    let schedule = resolved.training_schedule().build()?;
    let test = test_values(args, autoencoder.as_ref(), device)?;
    if test.values.len() != test.labels.len() * test.dims.iter().product::<usize>() {
        bail!("the model takes {:?} inputs, which these test images are not", test.dims);
    }
    Ok((model, schedule, test))
}

/// `--n` test images as the model takes them: their pixels, or a latent model's latents of them.
pub(super) struct TestValues {
    pub values: Vec<f32>,
    pub dims: [usize; 3],
    pub kind: diffusion_lab::eval::nll::DataKind,
    pub labels: Vec<Option<usize>>,
}

fn test_values(
    args: &EvalArgs,
    autoencoder: Option<&LoadedAutoencoder>,
    device: &Device,
) -> anyhow::Result<TestValues> {
    use diffusion_lab::eval::nll::DataKind;
    let test = Dataset::fashion_mnist(&args.fashion_mnist_dir, Split::Test)?;
    let images = test.pick(&test.shuffled_indices(7)[..args.n.min(test.count)]);
    let (values, dims, kind) = match autoencoder {
        None => (images.images.clone(), [images.channels, images.height, images.width], DataKind::Pixels8Bit),
        Some(autoencoder) => {
            let latents = diffusion_lab::train::autoencoder::latent_dataset(
                &autoencoder.model,
                &autoencoder.config,
                &images,
                device,
            )?;
            let dims = [latents.channels, latents.height, latents.width];
            (latents.images, dims, DataKind::Continuous)
        }
    };
    let labels: Vec<Option<usize>> = (0..images.count).map(|i| images.label(i)).collect();
    Ok(TestValues { values, dims, kind, labels })
}

/// The bound's total and its three parts, with what was bounded and how.
pub(super) fn print_bound(
    args: &EvalArgs,
    model: &LoadedUnet,
    options: &diffusion_lab::eval::nll::NllOptions,
    sums: &diffusion_lab::diffusion::likelihood::BoundSums,
    schedule: &NoiseSchedule,
    count: usize,
) -> anyhow::Result<()> {
    use diffusion_lab::eval::nll::DataKind;
    let total = sums.total_bits().context("the bound needs L_T, L_0 and one t ≥ 2")?;
    let steps = schedule.steps();
    let evaluated = (2..=steps).filter(|t| sums.counts[t - 1] > 0).count() + 1;
    let what = match options.kind {
        DataKind::Pixels8Bit => "bits per pixel of the 8-bit test images",
        DataKind::Continuous => {
            "bits per latent dimension of the test images' scaled latents (a density's bound: not per pixel, \
             and below 0 where the density exceeds 1)"
        }
    };
    println!(
        "{}: n = {}, T = {steps}, σ_t² = {}, μ_θ from x̂_0 {}, {}, {} of the t evaluated (strata up to {} wide): \
         {total:.3} {what}",
        args.model,
        count,
        match options.variance {
            DdpmVariance::BetaTilde => "β̃_t (decoder: β̃_2)",
            DdpmVariance::Beta => "β_t (decoder: β_1)",
        },
        if args.no_clip { "unclipped".to_string() } else { format!("clipped to ±{}", model.x0_bound()) },
        if args.conditional { "given the label" } else { "unconditional" },
        evaluated,
        args.stride
    );
    println!(
        "  L_T (prior) {:.4} + Σ L_(t-1) {:.4} + L_0 (decoder) {:.4}",
        sums.mean_prior().unwrap_or(f64::NAN),
        sums.sum_of_steps_after(1),
        sums.mean_term(1).unwrap_or(f64::NAN)
    );
    Ok(())
}

/// Prints where the bits go over t (about 12 rows of the evaluated t) and returns every evaluated t as CSV.
fn print_bound_over_t(
    sums: &diffusion_lab::diffusion::likelihood::BoundSums,
    schedule: &NoiseSchedule,
    kind: diffusion_lab::eval::nll::DataKind,
) -> String {
    use diffusion_lab::eval::nll::DataKind;
    let scale = if kind == DataKind::Pixels8Bit { 127.5 } else { 1.0 };
    let unit = if kind == DataKind::Pixels8Bit { "levels of 255" } else { "latent units" };
    println!("| t | λ_t | bits/dim at t | bits sent after t (rate) | RMSE of x̂_0 ({unit}) |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let evaluated: Vec<usize> =
        std::iter::once(1).chain((2..=schedule.steps()).filter(|t| sums.counts[t - 1] > 0)).collect();
    let shown = evaluated.len().div_ceil(12).max(1);
    let mut csv = String::from("t,log_snr,bits,rate_bits,rmse\n");
    for (k, &t) in evaluated.iter().enumerate() {
        let bits = sums.mean_term(t).unwrap_or(f64::NAN);
        // The bits a receiver has after x_t is known (Ho et al., Figure 5): L_T and the terms of the steps
        // above t, each evaluated one standing for its stratum.
        let rate = sums.mean_prior().unwrap_or(f64::NAN) + sums.sum_of_steps_after(t);
        let rmse = sums.rmse(t).unwrap_or(f64::NAN) * scale;
        csv.push_str(&format!("{t},{},{bits},{rate},{rmse}\n", schedule.log_snr[t - 1]));
        if k % shown == 0 || t == *evaluated.last().unwrap_or(&1) {
            println!("| {t} | {:.2} | {bits:.4} | {rate:.3} | {rmse:.2} |", schedule.log_snr[t - 1]);
        }
    }
    csv
}

/// `eval --loss-by-level`: the loss at each noise level's bin centre, as a table.
fn loss_by_level_table(
    args: &EvalArgs,
    model: &LoadedUnet,
    values: &[f32],
    labels: &[Option<usize>],
    dims: [usize; 3],
    device: &Device,
) -> anyhow::Result<()> {
    let bar = progress_bar(0, 0);
    let losses = diffusion_lab::eval::nll::loss_by_level(
        model,
        values,
        labels,
        dims,
        args.conditional,
        11,
        device,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    println!(
        "{}: ||ε - ε_θ(x_t, λ)||² per value on n = {} test images, {}",
        args.model,
        labels.len(),
        if args.conditional { "given the label" } else { "unconditional" }
    );
    println!("| λ | ᾱ | loss |");
    println!("| ---: | ---: | ---: |");
    for (log_snr, loss) in losses {
        let alpha_bar = diffusion_lab::diffusion::schedule::alpha_bar_from_log_snr(log_snr);
        println!("| {log_snr:.0} | {alpha_bar:.2e} | {loss:.4} |");
    }
    Ok(())
}

/// `eval --prompts`: a text model's samples of class words and attribute pairs, judged and measured.
fn prompts_table(args: &EvalArgs, judge: &Judge, train: &Dataset, device: &Device) -> anyhow::Result<()> {
    use diffusion_lab::text::captions::CaptionSet;
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let options =
        ModelOptions { model: args.model.clone(), autoencoder: args.autoencoder.clone(), device: DeviceChoice::Cpu };
    let resolved = options.resolve()?;
    let OpenedModel { model, decoder, .. } = options.open(&resolved)?;
    if model.config.text.is_none() {
        bail!("--prompts needs a text model (`fashion-text` or a checkpoint trained with --captions)");
    }
    // The thresholds the training captions were judged by: the train split's terciles per class.
    let labels = train.labels.clone().context("the train split is labelled")?;
    let captioned = CaptionSet::new(&train.images, train.image_len(), &labels, 10);
    let schedule = resolved.training_schedule();
    let mut prompts =
        PromptJudging { args, judge, train, labels, captioned, model, decoder, schedule, seed: 0, device };
    println!(
        "Text model `{}`, {} with w = {}, n = {} per prompt. Class words (every name the captions use): the share \
         the judge puts in the class.",
        args.model,
        diffusion_lab::model::denoise::DEFAULT_SAMPLER.label(),
        args.guidance,
        args.n
    );
    println!();
    prompts.print_class_words()?;
    println!();
    println!(
        "Attribute pairs: the mean measure of each prompt's samples (brightness: mean garment intensity; size: share of \
         the frame; texture: mean |Laplacian|) beside that of the training images of the class that have the \
         attribute (data), the training data's threshold for the class (the middle of its terciles), the share \
         of samples on the asked side of it, and the share judged as the class. * = a pair held out of training."
    );
    println!();
    prompts.print_attribute_pairs()
}

/// What `eval --prompts` draws with and judges by: the text model, the judge, and the training images with
/// their measured attributes.
struct PromptJudging<'a> {
    args: &'a EvalArgs,
    judge: &'a Judge,
    train: &'a Dataset,
    labels: Vec<usize>,
    captioned: diffusion_lab::text::captions::CaptionSet,
    model: LoadedUnet,
    decoder: Option<LoadedAutoencoder>,
    schedule: BetaSchedule,
    /// The last prompt's seed: each prompt draws from the next.
    seed: u64,
    device: &'a Device,
}

impl PromptJudging<'_> {
    /// `--n` samples of `prompt`, as images in [-1, 1].
    fn draw(&mut self, prompt: &str) -> anyhow::Result<Vec<Vec<f32>>> {
        self.seed += 1;
        let request = GenerateRequest {
            model: ModelId::default(),
            schedule: self.schedule,
            sampler: diffusion_lab::model::denoise::DEFAULT_SAMPLER,
            seed: self.seed,
            batch: 1,
            class: None,
            prompt: Some(PromptRequest::new(prompt)),
            guidance: self.args.guidance,
            guidance_interval: None,
            init: None,
            interpolate: None,
            branch: None,
        };
        let null = vec![self.model.config.num_classes; self.args.n];
        let pictures = sample_images(&self.model, self.decoder.as_ref(), &request, &null, self.device)?;
        let images: Vec<Vec<f32>> =
            pictures.iter().map(|p| p.pixels.iter().map(|v| data::unit_from_u8(*v)).collect()).collect();
        Ok(images)
    }

    /// The share of `images` the judge puts in `class`.
    fn judged(&self, images: &[Vec<f32>], class: usize) -> anyhow::Result<f64> {
        let set = Dataset {
            images: images.concat(),
            count: images.len(),
            channels: 1,
            height: 28,
            width: 28,
            labels: Some(vec![class; images.len()]),
            class_names: self.train.class_names.clone(),
        };
        let (_, predictions) = self.judge.features_and_predictions(&set)?;
        Ok(predictions.iter().filter(|p| **p == class).count() as f64 / images.len() as f64)
    }

    /// The real images' own value: the mean measure of the training images of a class that clearly have an
    /// attribute (held-out pairs included: the images exist, their captions leave the word out).
    fn data_mean(&self, class: usize, attribute: diffusion_lab::text::captions::Attribute) -> f64 {
        let thresholds = &self.captioned.thresholds;
        let values: Vec<f64> = self
            .captioned
            .measures
            .iter()
            .zip(&self.labels)
            .filter(|(m, c)| **c == class && thresholds.attributes(class, m).contains(&attribute))
            .map(|(m, _)| m.on(attribute.axis()))
            .collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    }

    /// The class words' table: each word's samples judged, beside the class's real images.
    fn print_class_words(&mut self) -> anyhow::Result<()> {
        use diffusion_lab::text::captions::CLASS_WORDS;
        println!("| prompt | judged as the class | real images of the class, judged so |");
        println!("| --- | ---: | ---: |");
        for (class, names) in CLASS_WORDS.iter().enumerate() {
            let real: Vec<Vec<f32>> = (0..self.train.count)
                .filter(|i| self.labels[*i] == class)
                .take(self.args.n)
                .map(|i| self.train.image(i).to_vec())
                .collect();
            let real = 100.0 * self.judged(&real, class)?;
            // Every name the captions use for the class, the class's own first.
            for name in names.iter() {
                let images = self.draw(name)?;
                println!("| {name} | {:.0} % | {real:.0} % |", 100.0 * self.judged(&images, class)?);
            }
        }
        Ok(())
    }

    /// The attribute pairs' table: a row per class and axis, both ends of the axis as prompts.
    fn print_attribute_pairs(&mut self) -> anyhow::Result<()> {
        use diffusion_lab::text::captions::{Axis, CLASS_WORDS};
        println!(
            "| class | axis | threshold | prompt A | measure (data) | on A's side | judged | prompt B | measure (data) | on B's side | judged |"
        );
        println!("| --- | --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |");
        for (class, names) in CLASS_WORDS.iter().enumerate() {
            for axis in Axis::ALL {
                let mut cells = Vec::new();
                for attribute in axis.attributes() {
                    cells.push(self.attribute_cells(class, names[0], attribute)?);
                }
                let index = Axis::ALL.iter().position(|a| *a == axis).unwrap_or(0);
                let [low, high] = self.captioned.thresholds.per_class[class][index];
                println!("| {} | {axis:?} | {:.3} | {} |", names[0], 0.5 * (low + high), cells.join(" | "));
            }
        }
        Ok(())
    }

    /// One side of a pair: "`attribute` `name`" drawn, measured, and judged, as four cells of the table.
    fn attribute_cells(
        &mut self,
        class: usize,
        name: &str,
        attribute: diffusion_lab::text::captions::Attribute,
    ) -> anyhow::Result<String> {
        use diffusion_lab::text::captions::{is_held_out, measure};
        let axis = attribute.axis();
        let prompt = format!("{} {name}", attribute.word());
        let images = self.draw(&prompt)?;
        let measures: Vec<_> = images.iter().map(|i| measure(i)).collect();
        let mean = measures.iter().map(|m| m.on(axis)).sum::<f64>() / measures.len() as f64;
        let thresholds = &self.captioned.thresholds;
        let agree = measures.iter().filter(|m| thresholds.agrees(class, m, attribute) == Some(true)).count();
        let held = if is_held_out(attribute, class) { "*" } else { "" };
        Ok(format!(
            "{prompt}{held} | {mean:.3} ({:.3}) | {:.0} % | {:.0} %",
            self.data_mean(class, attribute),
            100.0 * agree as f64 / images.len() as f64,
            100.0 * self.judged(&images, class)?
        ))
    }
}
