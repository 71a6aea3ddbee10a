//! When is an image decided? Ho et al. 2020 answer with their Figure 7: samples continued from the same
//! x_t share their large-scale features, and share more the later x_t is taken. Here it is measured: runs
//! of a stochastic sampler are continued from their own x_t at several steps, each several times with
//! fresh noise; the judge says how often a continuation ends as the same class as its run's own end, and
//! the pixels say how far apart the continuations of one x_t end.

use burn::prelude::*;

use crate::diffusion::{NoiseLevel, NoiseSource, Sampler, SamplingPlan};
use crate::images::{GridLabels, Picture, pictures_from_batch};
use crate::model::denoise::{Condition, DenoiseState, Guidance, denoise_from};
use crate::model::{LoadedAutoencoder, LoadedUnet, ReadbackError, read_f32};

use super::Judge;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecidedOptions {
    /// Independent runs (each its own x_T).
    pub runs: usize,
    /// Continuations of each run from each step.
    pub continuations: usize,
    /// A stochastic sampler: continuations of one x_t differ only by its fresh noise.
    pub sampler: Sampler,
    /// The class asked for (`None`: unconditional, where "which garment" is the model's own choice).
    pub class: Option<usize>,
    /// The class the continuations ask for, as a "Continue from here" branch that changes the class: the run
    /// up to each step is the run's own (`class`), only the rest from there asks for this one. `None`: the
    /// run's own class.
    pub branch_class: Option<usize>,
    pub guidance: f64,
    pub seed: u64,
    /// How many steps to continue from, spread evenly over the run from x_T to its last step.
    pub points: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DecidedError {
    #[error(
        "{0} is deterministic: continuations from one x_t would all be the same; use a stochastic sampler (ddpm, \
         ddim with η > 0, euler-a, dpmpp-2m-sde)"
    )]
    Deterministic(String),
    #[error("need at least 1 run, 2 continuations and 1 step to continue from")]
    TooFew,
    #[error("cancelled")]
    Cancelled,
    #[error("this latent model has no autoencoder to turn its latents into pixels")]
    NoAutoencoder,
    #[error("the class must be below the model's {classes} classes, got {class}")]
    ClassOutOfRange { class: usize, classes: usize },
    #[error(transparent)]
    Sampler(#[from] crate::diffusion::sampler::SamplerError),
    #[error(transparent)]
    Readback(#[from] ReadbackError),
}

/// What the continuations from one step share.
#[derive(Clone, Debug, PartialEq)]
pub struct DecidedRow {
    /// The step continued from: 0 = x_T, k = after k steps.
    pub step: usize,
    pub t: usize,
    /// λ = ln(ᾱ / (1 - ᾱ)) of x_t there.
    pub log_snr: f64,
    /// Share of continuations the judge puts in the class it puts their run's own end in.
    pub same_class: f64,
    /// Mean absolute difference per pixel (on a 0..1 scale) between two continuations of one x_t.
    pub spread: f64,
    /// Mean absolute difference per pixel between a continuation and its run's own end.
    pub from_original: f64,
    /// No step from here on draws fresh noise (e.g. the last step into the clean image), so every
    /// continuation is the run's own end: 100 % and spread 0 by construction, not a measurement (with a
    /// branch class, the remaining steps' predictions ask for it and may still move the ends a little).
    pub deterministic: bool,
}

/// One run's picture at a step and where its continuations from there ended, for the window's rows.
#[derive(Clone, Debug, PartialEq)]
pub struct ContinuedRow {
    pub step: usize,
    pub t: usize,
    pub log_snr: f64,
    /// [channels, h, w] of the pictures.
    pub shape: [usize; 3],
    /// x_t decoded to pixels for a latent model, [channels, h, w] in [-1, 1].
    pub x_t: Vec<f32>,
    /// The continuations' ends, each [channels, h, w] in [-1, 1].
    pub ends: Vec<Vec<f32>>,
    /// The judge's class of each end (as `ends`); empty when the judge cannot read this model's pictures.
    pub classes: Vec<usize>,
    /// As [`DecidedRow::deterministic`]: the continuations cannot differ.
    pub deterministic: bool,
}

impl ContinuedRow {
    /// How many of its ends the judge puts in `class` (0 when nothing was judged).
    pub fn judged_as(&self, class: usize) -> usize {
        self.classes.iter().filter(|c| **c == class).count()
    }
}

/// One run continued from several of its steps: the rows, what the run and its continuations asked for,
/// and the judge's class of the run's own end.
#[derive(Clone, Debug, PartialEq)]
pub struct DecidedRows {
    pub rows: Vec<ContinuedRow>,
    /// The class the run asked for (`None`: unconditional).
    pub class: Option<usize>,
    /// The class its continuations asked for (`None`: unconditional); the run's own class unless a branch
    /// class was asked.
    pub branch_class: Option<usize>,
    /// The judge's class of the run's own end; `None` when the judge cannot read this model's pictures.
    pub end_class: Option<usize>,
}

/// Whether the judge reads this model's pictures: its classes are the judge's (Fashion-MNIST's 10) and its
/// pictures (a latent model's decoded) are the judge's size.
pub fn judge_reads(judge: &Judge, num_classes: usize, [c, h, w]: [usize; 3]) -> bool {
    let config = &judge.config;
    num_classes == config.num_classes && c == config.image_channels && h == config.image_size && w == h
}

/// From which row on the run is decided for `class`: the index of the first row from which every row
/// (itself included) has more than half of its ends judged `class`,
/// min { k : ∀ j ≥ k, #{i : class_j,i = class} > n_j / 2 }; `None` if the last row does not (a row
/// without judged classes never does).
pub fn decided_from(rows: &[ContinuedRow], class: usize) -> Option<usize> {
    let mostly = |row: &ContinuedRow| 2 * row.judged_as(class) > row.classes.len();
    let after = rows.iter().rev().take_while(|row| mostly(row)).count();
    (after > 0).then(|| rows.len() - after)
}

/// The class names the captions use: Fashion-MNIST's, lower case, for its 10 classes; else "class k".
pub fn class_word(class: usize, num_classes: usize) -> String {
    match crate::data::FASHION_MNIST_CLASSES.get(class) {
        Some(name) if num_classes == crate::data::FASHION_MNIST_CLASSES.len() => name.to_lowercase(),
        _ => format!("class {class}"),
    }
}

/// "6/8 pullover": how many of a row's ends the judge puts in `class`; empty when nothing was judged.
pub fn share_caption(row: &ContinuedRow, class: Option<usize>) -> String {
    match class {
        Some(class) if !row.classes.is_empty() => format!(
            "{}/{} {}",
            row.judged_as(class),
            row.classes.len(),
            class_word(class, crate::data::FASHION_MNIST_CLASSES.len())
        ),
        _ => String::new(),
    }
}

/// Figure 7 as a labelled grid, for the window and `decided --rows`: a row per step continued from, x_t
/// and then where each continuation ended, captioned by its level, how many ends the judge puts in the
/// class of the run's own end, and, with `spread`, how far apart its continuations ended; a row after the
/// last noisy step says it is deterministic instead.
pub fn rows_figure(decided: &DecidedRows, spread: bool) -> (Vec<Option<Picture>>, GridLabels) {
    let rows = decided.rows.as_slice();
    let [c, h, w] = rows.first().map_or([1, 1, 1], |r| r.shape);
    let picture = |values: &[f32]| pictures_from_batch(values, 1, c, h, w).into_iter().next();
    let n = rows.first().map_or(0, |r| r.ends.len());
    let cells = rows
        .iter()
        .flat_map(|row| std::iter::once(picture(&row.x_t)).chain(row.ends.iter().map(|e| picture(e))))
        .collect();
    let caption = |r: &ContinuedRow| {
        let level = format!("t={} lambda={:.1}", r.t, r.log_snr);
        let share = share_caption(r, decided.end_class);
        let level = if share.is_empty() { level } else { format!("{level} {share}") };
        match (r.deterministic, spread) {
            (true, true) => format!("{level} deterministic: no noise left"),
            (true, false) => format!("{level} deterministic"),
            (false, true) => {
                let ends: Vec<&[f32]> = r.ends.iter().map(Vec::as_slice).collect();
                format!("{level} spread {:.2}", mean_pairwise_distance(&ends))
            }
            (false, false) => level,
        }
    };
    let labels = GridLabels {
        x_title: "x_t, then where each continuation ended".into(),
        columns: std::iter::once("x_t".to_string()).chain((1..=n).map(|i| i.to_string())).collect(),
        y_title: "continued from".into(),
        rows: rows.iter().map(caption).collect(),
    };
    (cells, labels)
}

/// Whether a run continued after `step` steps of `plan` still draws fresh noise (if not, every
/// continuation from there is the same picture).
pub fn draws_noise_after(plan: &SamplingPlan, step: usize) -> bool {
    (step..plan.len()).any(|i| plan.needs_noise(i))
}

/// A stochastic sampler close to `sampler`: itself if it adds fresh noise; else its stochastic sibling
/// (DDIM η = 0 -> η = 1, Euler and Heun -> Euler a, DPM++ 2M -> DPM++ 2M SDE), same steps and spacing.
pub fn stochastic_sibling(sampler: Sampler) -> Sampler {
    use crate::diffusion::Method;
    match sampler.method {
        Method::Ddim if sampler.eta == 0.0 => Sampler { eta: 1.0, ..sampler },
        Method::Euler | Method::Heun => Sampler { method: Method::EulerAncestral, ..sampler },
        Method::DpmSolver2M => Sampler { method: Method::DpmSolver2MSde, ..sampler },
        _ => sampler,
    }
}

/// The steps continued from: `points` of them spread from 0 (x_T) to the plan's last step.
pub fn continued_steps(plan_len: usize, points: usize) -> Vec<usize> {
    let last = plan_len.saturating_sub(1);
    let points = points.clamp(1, plan_len.max(1));
    let mut steps: Vec<usize> = (0..points).map(|i| if points == 1 { 0 } else { i * last / (points - 1) }).collect();
    steps.dedup();
    steps
}

/// The images of one batch of runs and their continuations, in pixels: [runs] ends and, per step,
/// [runs * continuations] ends (a run's continuations together), with x_t of every run at every step.
struct BatchResult {
    shape: [usize; 3],
    ends: Vec<f32>,
    continued: Vec<(Vec<f32>, Vec<f32>)>,
}

/// Checks `options` before any network runs.
pub fn check(options: &DecidedOptions, schedule: &crate::diffusion::NoiseSchedule) -> Result<(), DecidedError> {
    if options.runs == 0 || options.continuations < 2 || options.points == 0 {
        return Err(DecidedError::TooFew);
    }
    let plan_probe = options.sampler.plan(schedule)?;
    if !(0..plan_probe.len()).any(|i| plan_probe.needs_noise(i)) {
        return Err(DecidedError::Deterministic(options.sampler.label()));
    }
    Ok(())
}

/// Runs `runs` images of `options` from `seed` and continues each from every step of `steps`.
#[allow(clippy::too_many_arguments)]
fn run_batch(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    plan: &SamplingPlan,
    options: &DecidedOptions,
    runs: usize,
    seed: u64,
    steps: &[usize],
    device: &Device,
    keep_going: &dyn Fn() -> bool,
) -> Result<BatchResult, DecidedError> {
    let flow = || if keep_going() { std::ops::ControlFlow::Continue(()) } else { std::ops::ControlFlow::Break(()) };
    let (c, size) = (model.config.image_channels, model.config.image_size);
    // The run asks for its class; its continuations for the branch class (or the run's).
    let asked = |class: Option<usize>| {
        let label = class.unwrap_or(model.config.num_classes) as i64;
        let condition = move |n: usize| Condition::classes(Tensor::<1, Int>::full([n], label, device));
        (condition, Guidance::from(if class.is_some() { options.guidance } else { 0.0 }))
    };
    let (condition, guidance) = asked(options.class);
    let (branch_condition, branch_guidance) = asked(options.branch_class.or(options.class));
    let pixels = |x: Tensor<4>| -> Result<Vec<f32>, DecidedError> {
        let x = match decoder {
            Some(ae) => ae.decode_scaled(x),
            None => x,
        };
        Ok(read_f32(x.clamp(-1.0, 1.0))?)
    };
    let mut noise = NoiseSource::new(seed);
    let x_start = noise.tensor([runs, c, size, size], device);
    // The run itself, keeping x_t (and a multistep solver's x̂_0) at every step continued from.
    let mut kept: Vec<(usize, DenoiseState)> = Vec::new();
    if steps.contains(&0) {
        kept.push((0, DenoiseState::at(x_start.clone())));
    }
    let start = DenoiseState::at(x_start);
    let end = denoise_from(&model.model, plan, start, &condition(runs), guidance, &mut noise, None, |step| {
        if steps.contains(&(step.index + 1)) {
            let previous_x0 = plan.uses_previous_x0().then(|| step.x0_pred.clone());
            kept.push((step.index + 1, DenoiseState { x: step.x_prev.clone(), previous_x0, apg: None }));
        }
        flow()
    });
    if !keep_going() {
        return Err(DecidedError::Cancelled);
    }
    let ends = pixels(end.x)?;
    let n = options.continuations;
    let repeat = |x: Tensor<4>| x.unsqueeze_dim::<5>(1).repeat_dim(1, n).reshape([runs * n, c, size, size]);
    let mut continued = Vec::with_capacity(kept.len());
    for (step, state) in kept {
        let rest = SamplingPlan { steps: plan.steps[step..].to_vec(), ..plan.clone() };
        let x_t = pixels(state.x.clone())?;
        let start = DenoiseState { x: repeat(state.x), previous_x0: state.previous_x0.map(repeat), apg: None };
        // Fresh noise for every step's continuations, apart from the run's own stream.
        let mut fresh = NoiseSource::new(seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let branch = branch_condition(runs * n);
        let end = denoise_from(&model.model, &rest, start, &branch, branch_guidance, &mut fresh, None, |_| {
            std::ops::ControlFlow::Continue(())
        });
        continued.push((x_t, pixels(end.x)?));
    }
    let shape = match decoder {
        Some(ae) => [ae.config.image_channels, ae.config.image_size, ae.config.image_size],
        None => [c, size, size],
    };
    Ok(BatchResult { shape, ends, continued })
}

/// Mean absolute difference per pixel on a 0..1 scale (values in [-1, 1]).
fn pixel_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(a, b)| f64::from((a - b).abs())).sum::<f64>() / (2.0 * a.len().max(1) as f64)
}

/// [`pixel_distance`] averaged over every pair of `images`: how far apart continuations of one x_t end.
pub fn mean_pairwise_distance(images: &[&[f32]]) -> f64 {
    let mut sum = 0.0;
    let mut pairs = 0;
    for (i, a) in images.iter().enumerate() {
        for b in &images[i + 1..] {
            sum += pixel_distance(a, b);
            pairs += 1;
        }
    }
    sum / pairs.max(1) as f64
}

/// Images through the judge as it sees samples: quantized to 8 bits first.
fn judged(judge: &Judge, images: &[f32], shape: [usize; 3]) -> Result<Vec<usize>, ReadbackError> {
    let quantized: Vec<f32> = images.iter().map(|v| crate::data::unit_from_u8(crate::data::u8_from_unit(*v))).collect();
    judge.predictions(&quantized, shape)
}

/// The checked plan of a measurement and the steps continued from.
fn prepare(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    schedule: &crate::diffusion::NoiseSchedule,
    options: &DecidedOptions,
) -> Result<(SamplingPlan, Vec<usize>), DecidedError> {
    check(options, schedule)?;
    if model.is_latent() && decoder.is_none() {
        return Err(DecidedError::NoAutoencoder);
    }
    let classes = model.config.num_classes;
    if let Some(class) = options.class.into_iter().chain(options.branch_class).find(|c| *c >= classes) {
        return Err(DecidedError::ClassOutOfRange { class, classes });
    }
    let plan = options.sampler.plan(schedule)?.with_x0_bound(model.x0_bound());
    let steps = continued_steps(plan.len(), options.points);
    Ok((plan, steps))
}

/// Measures when `model`'s images are decided: one row per step continued from.
pub fn decided(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    judge: &Judge,
    schedule: &crate::diffusion::NoiseSchedule,
    options: &DecidedOptions,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> Result<Vec<DecidedRow>, DecidedError> {
    let (plan, steps) = prepare(model, decoder, schedule, options)?;
    let n = options.continuations;
    // About 128 images through the network at a time.
    let per_batch = (128 / n).max(1);
    let mut same = vec![0usize; steps.len()];
    let mut spread = vec![0.0; steps.len()];
    let mut from_original = vec![0.0; steps.len()];
    let mut done = 0;
    while done < options.runs {
        let runs = per_batch.min(options.runs - done);
        let seed = options.seed.wrapping_add(done as u64);
        let batch = run_batch(model, decoder, &plan, options, runs, seed, &steps, device, &|| true)?;
        let per_image = batch.shape.iter().product::<usize>();
        let end_classes = judged(judge, &batch.ends, batch.shape)?;
        for (k, (_, ends)) in batch.continued.iter().enumerate() {
            let classes = judged(judge, ends, batch.shape)?;
            for run in 0..runs {
                let image = |i: usize| &ends[(run * n + i) * per_image..(run * n + i + 1) * per_image];
                let original = &batch.ends[run * per_image..(run + 1) * per_image];
                same[k] += classes[run * n..(run + 1) * n].iter().filter(|c| **c == end_classes[run]).count();
                let images: Vec<&[f32]> = (0..n).map(image).collect();
                from_original[k] += images.iter().map(|i| pixel_distance(i, original)).sum::<f64>() / n as f64;
                spread[k] += mean_pairwise_distance(&images);
            }
        }
        done += runs;
        progress(done);
    }
    let runs = options.runs as f64;
    Ok(steps
        .iter()
        .enumerate()
        .map(|(k, &step)| {
            let level = plan.level_after(step).unwrap_or(NoiseLevel::CLEAN);
            DecidedRow {
                step,
                t: level.t,
                log_snr: level.log_snr,
                same_class: same[k] as f64 / (runs * n as f64),
                spread: spread[k] / runs,
                from_original: from_original[k] / runs,
                deterministic: !draws_noise_after(&plan, step),
            }
        })
        .collect())
}

/// One run (the `seed`'s first image) continued from `options.points` of its steps: its x_t at each and
/// where the continuations ended, for the window's rows (Figure 7 of Ho et al. 2020), each end judged by
/// `judge` where it reads the model's pictures ([`judge_reads`]). Stops with [`DecidedError::Cancelled`]
/// when `keep_going` turns false (asked before every step).
#[allow(clippy::too_many_arguments)]
pub fn continued_rows(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    judge: Option<&Judge>,
    schedule: &crate::diffusion::NoiseSchedule,
    options: &DecidedOptions,
    device: &Device,
    keep_going: &dyn Fn() -> bool,
) -> Result<DecidedRows, DecidedError> {
    let (plan, steps) = prepare(model, decoder, schedule, options)?;
    let batch = run_batch(model, decoder, &plan, options, 1, options.seed, &steps, device, keep_going)?;
    let per_image = batch.shape.iter().product::<usize>();
    let judge = judge.filter(|j| judge_reads(j, model.config.num_classes, batch.shape));
    let classes_of = |images: &[f32]| judge.map_or(Ok(Vec::new()), |j| judged(j, images, batch.shape));
    let end_class = classes_of(&batch.ends)?.first().copied();
    let mut rows = Vec::with_capacity(steps.len());
    for (&step, (x_t, ends)) in steps.iter().zip(batch.continued) {
        let level = plan.level_after(step).unwrap_or(NoiseLevel::CLEAN);
        rows.push(ContinuedRow {
            step,
            t: level.t,
            log_snr: level.log_snr,
            shape: batch.shape,
            x_t,
            classes: classes_of(&ends)?,
            ends: ends.chunks(per_image).map(<[f32]>::to_vec).collect(),
            deterministic: !draws_noise_after(&plan, step),
        });
    }
    Ok(DecidedRows { rows, class: options.class, branch_class: options.branch_class.or(options.class), end_class })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continued_steps_spread_from_x_t_to_the_last_step() {
        assert_eq!(continued_steps(20, 5), vec![0, 4, 9, 14, 19]);
        assert_eq!(continued_steps(20, 1), vec![0]);
        assert_eq!(continued_steps(3, 10), vec![0, 1, 2]);
    }

    /// DDIM η = 1's last step lands on the clean image with σ = 0: continued from there, nothing differs.
    #[test]
    fn rows_after_the_last_noisy_step_are_deterministic() {
        let schedule = crate::diffusion::BetaSchedule::cosine(1000).build().unwrap();
        let plan = Sampler::ddim(20, 1.0).plan(&schedule).unwrap();
        assert!(draws_noise_after(&plan, 0) && draws_noise_after(&plan, 18));
        assert!(!draws_noise_after(&plan, 19) && !draws_noise_after(&plan, 20));
        let ddpm = Sampler::ddpm(crate::diffusion::DdpmVariance::BetaTilde).plan(&schedule).unwrap();
        assert!(draws_noise_after(&ddpm, 998) && !draws_noise_after(&ddpm, 999), "Ho et al.: no noise at t = 1");
    }

    fn row(classes: &[usize]) -> ContinuedRow {
        ContinuedRow {
            step: 0,
            t: 0,
            log_snr: 0.0,
            shape: [1, 1, 1],
            x_t: vec![0.0],
            ends: vec![vec![0.0]; classes.len()],
            classes: classes.to_vec(),
            deterministic: false,
        }
    }

    /// Decided from the first row of the run of rows at the end that are each more than half `class`.
    #[test]
    fn decided_from_is_the_first_row_after_which_every_row_is_mostly_the_class() {
        let rows = [row(&[7, 7, 2, 7]), row(&[2, 2, 7, 2]), row(&[2, 7, 7, 2]), row(&[2, 2, 2, 7]), row(&[2; 4])];
        // Row 1 is mostly 2, but row 2 (2 of 4: not more than half) breaks the run: decided from row 3.
        assert_eq!(decided_from(&rows, 2), Some(3));
        assert_eq!(decided_from(&rows[..2], 2), Some(1));
        assert_eq!(decided_from(&rows[1..2], 2), Some(0));
        assert_eq!(decided_from(&rows[..1], 2), None, "the last row is mostly 7");
        assert_eq!(decided_from(&rows, 7), None);
        assert_eq!(decided_from(&[row(&[]), row(&[])], 2), None, "nothing judged: never decided");
        assert_eq!(decided_from(&[], 2), None);
    }

    #[test]
    fn share_captions_count_the_ends_judged_as_the_class() {
        assert_eq!(share_caption(&row(&[2, 2, 7, 2]), Some(2)), "3/4 pullover");
        assert_eq!(share_caption(&row(&[]), Some(2)), "");
        assert_eq!(share_caption(&row(&[2]), None), "");
    }

    #[test]
    fn pixel_distance_is_on_a_zero_to_one_scale() {
        assert_eq!(pixel_distance(&[-1.0, 1.0], &[1.0, 1.0]), 0.5);
        assert_eq!(pixel_distance(&[0.3; 4], &[0.3; 4]), 0.0);
    }
}
