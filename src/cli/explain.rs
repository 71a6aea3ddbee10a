//! `explain`: one step of a run as a figure for slides: the sampler's update with that step's numbers and
//! every term as a labelled picture (the window's "This step", written as a PNG and printed).

use std::cell::Cell;

use super::*;
use diffusion_lab::engine::GenerateRequest;
use diffusion_lab::engine::explain::{StepExplanation, explain_step};
use diffusion_lab::engine::generate::{RunHooks, run_generate};
use diffusion_lab::engine::png_settings::settings_text;
use diffusion_lab::images::GridLabels;

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
    #[arg(long, default_value_t = DEFAULT_GUIDANCE)]
    pub guidance: f64,
    /// Guide only at noise levels λ from LO to HI (w = 1 elsewhere).
    #[arg(long, value_name = "LO,HI", value_parser = guidance_interval_from_arg, allow_hyphen_values = true)]
    pub guidance_interval: Option<[f64; 2]>,
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
}

pub(super) fn explain(args: &ExplainArgs) -> anyhow::Result<()> {
    let (checkpoint, builtin_autoencoder) = checkpoint_of_model(&args.models.model)?;
    let config: UNetConfig = serde_json::from_value(checkpoint.header.config.clone())
        .map_err(|e| anyhow::anyhow!("the model's config is damaged: {e}"))?;
    let request = GenerateRequest {
        model: app_model_id(&args.models.model),
        schedule: args.schedule.beta_schedule_or(checkpoint.header.training_schedule.unwrap_or_default()),
        sampler: args.sampler.sampler(),
        seed: args.seed,
        batch: 1,
        class: args.class,
        guidance: args.guidance,
        guidance_interval: args.guidance_interval,
        init: None,
        interpolate: None,
    };
    request.validate(config.num_classes)?;
    let schedule = request.schedule.build()?;
    let steps = request.plan(&schedule)?.0.len();
    if !(1..=steps).contains(&args.step) {
        bail!("--step must be between 1 and {steps} (the sampler's steps), got {}", args.step);
    }
    let device = open_device(args.models.device)?;
    let model = LoadedUnet::from_checkpoint(&checkpoint, &device.device)?;
    let decoder = decoder_for(
        &args.models.model,
        &model,
        builtin_autoencoder,
        args.models.autoencoder.as_deref(),
        &device.device,
    )?;
    // Run up to the step (every frame recorded), then take that step apart.
    let mut frames = Vec::new();
    let recorded = Cell::new(0);
    let keep_going = || recorded.get() <= args.step;
    let mut emit = |frame: diffusion_lab::engine::Frame| {
        recorded.set(recorded.get() + 1);
        frames.push(frame);
    };
    let hooks = RunHooks { keep_going: &keep_going, stream: true, emit: &mut emit };
    run_generate(&model, decoder.as_ref(), &request, &device.device, hooks)?;
    let (Some(previous), Some(frame)) = (frames.get(args.step - 1), frames.get(args.step)) else {
        bail!("the run stopped before step {}", args.step);
    };
    let explained = explain_step(&request, model.x0_bound(), previous, frame)?;
    let text = text_of(&explained);
    println!("{}", text.join("\n"));
    let figure = figure_of(&explained, &text, args.zoom as usize);
    let extra = serde_json::json!({ "explain_step": args.step });
    images::save_png(&args.out, &figure, &settings_text(&request, extra))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// The step in words and numbers, as the window's "This step" writes it.
fn text_of(e: &StepExplanation) -> Vec<String> {
    let eq = &e.equation;
    let mut lines = vec![format!("Step {} of {}: {}", e.step + 1, e.total_steps, eq.form), eq.meaning.to_string()];
    let numbers: Vec<String> = eq
        .levels
        .iter()
        .chain(&eq.numbers)
        .map(|n| format!("{} = {}", n.name, diffusion_lab_number(n.value)))
        .collect();
    lines.extend(numbers.chunks(4).map(|chunk| chunk.join("   ")));
    let mut sum = String::new();
    for (k, t) in e.terms.iter().enumerate() {
        let sign = match (k, t.coefficient < 0.0) {
            (0, false) => "",
            (0, true) => "-",
            (_, false) => " + ",
            (_, true) => " - ",
        };
        sum += &format!("{sign}{} · {}", diffusion_lab_number(t.coefficient.abs()), t.symbol);
    }
    lines.push(format!("x_{{t'}} = {sum}"));
    lines.push(format!(
        "guidance w = {}; clipping changed {:.1} % of x̂_0",
        diffusion_lab_number(e.guidance),
        100.0 * e.clipped_share()
    ));
    lines
}

fn diffusion_lab_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() >= 1.0 && v.abs() < 1e6 {
        format!("{v:.0}")
    } else if v.is_nan() {
        "-".into()
    } else if v == 0.0 || (1e-3..1e4).contains(&v.abs()) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

/// The labels' font is ASCII: Greek letters and accents spelled out.
fn ascii_from_math(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'ᾱ' => "abar".to_string(),
            'α' => "alpha".into(),
            'β' => "beta".into(),
            'ε' => "eps".into(),
            'σ' => "sigma".into(),
            'λ' => "lambda".into(),
            'η' => "eta".into(),
            'μ' => "mu".into(),
            'θ' => "theta".into(),
            'τ' => "tau".into(),
            'Δ' => "d".into(),
            'Ø' => "0".into(),
            '\u{302}' => "^".into(),
            '\u{303}' => "~".into(),
            '₀' => "0".into(),
            '₁' => "1".into(),
            '²' => "^2".into(),
            '·' => "*".into(),
            '—' | '–' => "-".into(),
            c if c.is_ascii() => c.to_string(),
            _ => "?".into(),
        })
        .collect()
}

/// The text above a row of labelled pictures: x_t, the guidance branches, ε̂, x̂_0 before and after
/// clipping, each weighted term, and their sum.
fn figure_of(e: &StepExplanation, text: &[String], zoom: usize) -> images::Picture {
    let [_, c, h, w] = e.shape;
    let picture = |values: &[f32]| -> images::Picture {
        // A latent's channels side by side.
        let tiles =
            images::pictures_from_batch(values, if c == 1 || c == 3 { 1 } else { c }, if c == 3 { 3 } else { 1 }, h, w);
        images::scaled(&images::grid(&tiles, tiles.len(), 1), zoom)
    };
    let mut cells = vec![(picture(&e.x_t), "x_t".to_string())];
    if let Some(u) = &e.eps_unconditional {
        cells.push((picture(u), "eps_null".into()));
    }
    if let Some(y) = &e.eps_conditional {
        cells.push((picture(y), "eps_y".into()));
    }
    if let Some(added) = &e.guidance_added {
        cells.push((picture(added), "w(eps_y-eps_null)".into()));
    }
    cells.push((picture(&e.eps), "eps^ guided".into()));
    cells.push((picture(&e.x0_unclipped), "x0^ unclipped".into()));
    cells.push((picture(&e.x0_pred), "x0^".into()));
    for term in &e.terms {
        let symbol = term.symbol.replace(" of the previous step", ",prev").replace(" at the Euler point", "");
        let label = format!("{}*{symbol}", diffusion_lab_number(term.coefficient));
        cells.push((picture(&term.weighted), ascii_from_math(&label)));
    }
    cells.push((picture(&e.x_next), "= x_t'".into()));
    let labels = GridLabels {
        x_title: "the terms (values in [-1, 1] as black to white) add up to x_t'".into(),
        columns: cells.iter().map(|(_, l)| l.clone()).collect(),
        y_title: String::new(),
        rows: vec![String::new()],
    };
    let pictures: Vec<Option<images::Picture>> = cells.into_iter().map(|(p, _)| Some(p)).collect();
    let grid = images::labelled_grid(&pictures, &labels, 6);
    let lines: Vec<String> = text.iter().map(|l| ascii_from_math(l)).collect();
    let line_height = 10;
    let width = lines.iter().map(|l| images::font::text_width(l, 1) + 8).max().unwrap_or(0).max(grid.width);
    let top = lines.len() * line_height + 8;
    let channels = grid.channels;
    let mut figure = images::Picture {
        width,
        height: top + grid.height,
        channels,
        pixels: vec![0; width * (top + grid.height) * channels],
    };
    for (k, line) in lines.iter().enumerate() {
        images::font::draw_text(&mut figure, 4, 4 + k * line_height, line, 1, 255);
    }
    for y in 0..grid.height {
        let from = y * grid.width * channels;
        let to = ((top + y) * width) * channels;
        figure.pixels[to..to + grid.width * channels].copy_from_slice(&grid.pixels[from..from + grid.width * channels]);
    }
    figure
}
