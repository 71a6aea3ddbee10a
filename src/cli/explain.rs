//! `explain`: one step of a run as a figure for slides: the sampler's update with that step's numbers and
//! every term as a labelled picture (the window's "This step", written as a PNG and printed).

use std::cell::Cell;

use super::*;
use diffusion_lab::engine::{Frame, GenerateRequest};
use diffusion_lab::run::explain::{explain_step, step_figure, step_text};
use diffusion_lab::run::generate::{RunHooks, run_generate};
use diffusion_lab::run::png_settings::settings_text;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub models: ModelOptions,
    /// The class to draw (0..9 for Fashion-MNIST); without it, unconditional.
    #[arg(long)]
    pub class: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Which step to take apart: 1 = the first (from x_T), up to the sampler's number of steps.
    #[arg(long, default_value_t = 1)]
    pub step: usize,
    #[command(flatten)]
    pub guidance: GuidanceOptions,
    #[command(flatten)]
    pub sampler: SamplerOptions,
    #[command(flatten)]
    pub schedule: ScheduleOptions,
    /// Output pixels per image pixel.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub zoom: u64,
    /// The figure to write (PNG).
    #[arg(long)]
    pub out: PathBuf,
    /// Instead of one step: where guidance acts in this model. Runs `--runs-per-class` images of every
    /// class and prints (and plots into `--out`) the mean |ε̂_y - ε̂_Ø| at each step against its noise level.
    #[arg(long, conflicts_with_all = ["class", "step"])]
    pub guidance_curve: bool,
    #[arg(long, default_value_t = 100, requires = "guidance_curve")]
    pub runs_per_class: usize,
}

pub(super) fn explain(args: &ExplainArgs) -> anyhow::Result<()> {
    if args.guidance_curve {
        return guidance_curve(args);
    }
    let resolved = args.models.resolve()?;
    let config = &resolved.config;
    let request = request_of(args, &resolved, args.class);
    request.validate(config.num_classes)?;
    let schedule = request.schedule.build()?;
    let steps = request.plan(&schedule)?.0.len();
    if !(1..=steps).contains(&args.step) {
        bail!("--step must be between 1 and {steps} (the sampler's steps), got {}", args.step);
    }
    let OpenedModel { device, model, decoder } = args.models.open(&resolved)?;
    // Run up to the step (every frame recorded), then take that step apart.
    let frames = run_frames(&model, decoder.as_ref(), &request, &device.device, Some(args.step))?;
    let (Some(previous), Some(frame)) = (frames.get(args.step - 1), frames.get(args.step)) else {
        bail!("the run stopped before step {}", args.step);
    };
    let explained = explain_step(&request, model.x0_bound(), previous, frame)?;
    let text = step_text(&explained);
    println!("{}", text.join("\n"));
    let figure = step_figure(&explained, &text, args.zoom as usize);
    let extra = serde_json::json!({ "explain_step": args.step });
    images::save_png(&args.out, &figure, &settings_text(&request, extra))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// One image of class `class` as the flags describe it.
fn request_of(args: &ExplainArgs, resolved: &ResolvedModel, class: Option<usize>) -> GenerateRequest {
    GenerateRequest {
        model: resolved.id.clone(),
        schedule: args.schedule.beta_schedule_or(resolved.training_schedule()),
        sampler: args.sampler.sampler(),
        seed: args.seed,
        batch: 1,
        class,
        prompt: None,
        guidance: args.guidance.scale(),
        guidance_interval: args.guidance.guidance_interval,
        guidance_method: args.guidance.params(),
        init: None,
        interpolate: None,
        branch: None,
    }
}

/// Every frame of `request`'s run, streamed (each with its parts), up to frame `last` or to the end.
pub(super) fn run_frames(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    request: &GenerateRequest,
    device: &Device,
    last: Option<usize>,
) -> anyhow::Result<Vec<Frame>> {
    let mut frames = Vec::new();
    let recorded = Cell::new(0);
    let keep_going = || last.is_none_or(|last| recorded.get() <= last);
    let mut emit = |frame: Frame| {
        recorded.set(recorded.get() + 1);
        frames.push(frame);
    };
    run_generate(model, decoder, request, device, RunHooks { keep_going: &keep_going, stream: true, emit: &mut emit })?;
    Ok(frames)
}

/// Mean |ε̂_y - ε̂_Ø| at every step of `--runs-per-class` runs of each class: at which noise levels the
/// class changes the network's answer. Printed as a table (step, t, λ, mean, per class) and plotted.
fn guidance_curve(args: &ExplainArgs) -> anyhow::Result<()> {
    if args.runs_per_class == 0 {
        bail!("--runs-per-class must be at least 1");
    }
    let resolved = args.models.resolve()?;
    let config = &resolved.config;
    let base = request_of(args, &resolved, Some(0));
    base.validate(config.num_classes)?;
    let opened = args.models.open(&resolved)?;
    let classes = config.num_classes;
    let chunk = diffusion_lab::run::generate::MAX_BATCH.min(args.runs_per_class);
    let mut sizes =
        GuidanceSizes { levels: Vec::new(), sums: vec![Vec::new(); classes], counts: vec![Vec::new(); classes] };
    let bar = progress_bar((classes * args.runs_per_class.div_ceil(chunk)) as u64, 0);
    for class in 0..classes {
        let mut done = 0;
        while done < args.runs_per_class {
            let batch = chunk.min(args.runs_per_class - done);
            let request = GenerateRequest {
                class: Some(class),
                batch,
                seed: args.seed.wrapping_add((class * 1_000_003 + done) as u64),
                ..base.clone()
            };
            let frames = run_frames(&opened.model, opened.decoder.as_ref(), &request, &opened.device.device, None)?;
            sizes.add(class, &frames, batch);
            done += batch;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let curve = sizes.print_table();
    let title = format!(
        "mean |eps_y - eps_null| per step, {} runs of each of {classes} classes, w = {}",
        args.runs_per_class,
        args.guidance.scale()
    );
    images::save_png(&args.out, &curve_plot(&curve, &title), &[])?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// |ε̂_y - ε̂_Ø| summed per class and step over the runs so far.
struct GuidanceSizes {
    /// `levels[step]` = (t, λ) of the step's input.
    levels: Vec<(usize, f64)>,
    /// `sums[class][step]`: the summed sizes; `counts` alike, the images summed.
    sums: Vec<Vec<f64>>,
    counts: Vec<Vec<usize>>,
}

impl GuidanceSizes {
    /// Adds every step of one run of `batch` images of `class`.
    fn add(&mut self, class: usize, frames: &[Frame], batch: usize) {
        use diffusion_lab::run::explain::guidance_size;
        for (step, pair) in frames.windows(2).enumerate() {
            if self.levels.len() <= step {
                self.levels.push((pair[0].t, pair[0].log_snr));
            }
            let parts = pair[1].parts.as_ref();
            let size = parts.and_then(|p| guidance_size(p.unconditional.as_deref()?, p.conditional.as_deref()?, batch));
            if self.sums[class].len() <= step {
                self.sums[class].resize(step + 1, 0.0);
                self.counts[class].resize(step + 1, 0);
            }
            if let Some(size) = size {
                self.sums[class][step] += size.iter().map(|v| *v as f64).sum::<f64>();
                self.counts[class][step] += size.len();
            }
        }
    }

    fn mean(&self, class: usize, step: usize) -> Option<f64> {
        let n = self.counts[class].get(step).copied().unwrap_or(0);
        (n > 0).then(|| self.sums[class][step] / n as f64)
    }

    /// Prints the table (step, t, λ, mean over classes, each class) and returns the curve (λ, mean).
    fn print_table(&self) -> Vec<(f64, f64)> {
        let classes = self.sums.len();
        let header: Vec<String> = (0..classes).map(|c| format!("class {c}")).collect();
        println!("| step | t | λ | mean over classes | {} |", header.join(" | "));
        println!("| --- | --- | --- | --- |{}", " --- |".repeat(classes));
        let mut curve = Vec::new();
        for (step, (t, lambda)) in self.levels.iter().enumerate() {
            let per_class: Vec<Option<f64>> = (0..classes).map(|c| self.mean(c, step)).collect();
            let known: Vec<f64> = per_class.iter().flatten().copied().collect();
            let overall = (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64);
            let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
            println!(
                "| {} | {t} | {lambda:.2} | {} | {} |",
                step + 1,
                cell(overall),
                per_class.iter().map(|v| cell(*v)).collect::<Vec<_>>().join(" | ")
            );
            if let Some(overall) = overall {
                curve.push((*lambda, overall));
            }
        }
        curve
    }
}

/// A line plot of (λ, value) points: λ along x (noisy on the left), the value up, with its range labelled.
fn curve_plot(points: &[(f64, f64)], title: &str) -> images::Picture {
    let (width, height, margin) = (560usize, 260usize, 40usize);
    let mut picture = images::Picture { width, height, channels: 1, pixels: vec![255; width * height] };
    let dot = |picture: &mut images::Picture, x: usize, y: usize, v: u8| {
        if x < width && y < height {
            picture.pixels[y * width + x] = v;
        }
    };
    let (plot_w, plot_h) = (width - 2 * margin, height - 2 * margin);
    for x in 0..=plot_w {
        dot(&mut picture, margin + x, margin + plot_h, 0);
    }
    for y in 0..=plot_h {
        dot(&mut picture, margin, margin + y, 0);
    }
    let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (l, _)| (lo.min(*l), hi.max(*l)));
    let top = points.iter().fold(1e-9f64, |m, (_, v)| m.max(*v));
    let at = |l: f64, v: f64| {
        let x = margin as f64 + (l - lo) / (hi - lo).max(1e-9) * plot_w as f64;
        let y = (margin + plot_h) as f64 - v / top * plot_h as f64;
        (x, y)
    };
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (at(pair[0].0, pair[0].1), at(pair[1].0, pair[1].1));
        let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for k in 0..=n {
            let f = k as f64 / n as f64;
            let (x, y) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
            for d in 0..2 {
                dot(&mut picture, x as usize + d, y as usize, 0);
            }
        }
    }
    let ink = |p: &mut images::Picture, x, y, text: &str| images::font::draw_text(p, x, y, text, 1, 0);
    ink(&mut picture, margin, 12, title);
    ink(&mut picture, 4, margin - 4, &format!("{top:.3}"));
    ink(&mut picture, 4, margin + plot_h - 4, "0");
    ink(&mut picture, margin, margin + plot_h + 6, &format!("lambda {lo:.1} (noisy)"));
    let right = format!("lambda {hi:.1} (clean)");
    ink(&mut picture, margin + plot_w - images::font::text_width(&right, 1), margin + plot_h + 6, &right);
    picture
}
