//! `decided`: when is an image decided? Runs continued from their own x_t at several steps with fresh
//! noise (Ho et al. 2020, Figure 7, measured): how often the judge puts a continuation in the class of its
//! run's own end, and how far apart the continuations end.

use super::*;
use diffusion_lab::eval::decided::{DecidedOptions, DecidedRow, DecidedRows, continued_rows, decided};

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("conditional").multiple(true).args(["class", "branch_class"]))]
pub struct DecidedArgs {
    #[command(flatten)]
    pub models: ModelOptions,
    /// Independent runs, each from its own x_T.
    #[arg(long, default_value_t = 100)]
    pub runs: usize,
    /// Continuations of each run from each step, each with fresh noise.
    #[arg(long, default_value_t = 8)]
    pub continuations: usize,
    /// Steps to continue from, spread evenly from x_T to the run's last step.
    #[arg(long, default_value_t = 11)]
    pub points: usize,
    /// A stochastic sampler: ddpm, ddim (with --eta > 0), euler-a or dpmpp-2m-sde.
    #[arg(long, default_value = "ddim")]
    pub sampler: Method,
    #[arg(long = "sampling-steps", default_value_t = 20)]
    pub sampling_steps: usize,
    /// DDIM's η: 1 is DDPM's ancestral sampling over the chosen steps.
    #[arg(long, default_value_t = 1.0)]
    pub eta: f64,
    /// Ask for this class (with --guidance); without it unconditional, where which garment it becomes is the
    /// model's own choice.
    #[arg(long)]
    pub class: Option<usize>,
    /// Continue from each step asking for this class instead of the run's (as a branch of "Continue from
    /// here" that changes the class); the run itself keeps --class.
    #[arg(long = "branch-class")]
    pub branch_class: Option<usize>,
    #[arg(long, default_value_t = DEFAULT_GUIDANCE, requires = "conditional")]
    pub guidance: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The judge: `fashion` (built in) or a checkpoint written by `train-classifier`.
    #[arg(long, default_value = "fashion")]
    pub classifier: String,
    /// Write the table here as CSV (step, t, λ, same class, spread, distance from the run's end).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write Figure 7 for the first run here: a row per step (x_t, then its continuations' ends).
    #[arg(long)]
    pub rows: Option<PathBuf>,
}

pub(super) fn decided_table(args: &DecidedArgs) -> anyhow::Result<()> {
    let resolved = args.models.resolve()?;
    let schedule = resolved.training_schedule().build()?;
    let options = DecidedOptions {
        runs: args.runs,
        continuations: args.continuations,
        sampler: Sampler { eta: args.eta, ..Sampler::new(args.sampler, args.sampling_steps) },
        class: args.class,
        branch_class: args.branch_class,
        guidance: args.guidance,
        seed: args.seed,
        points: args.points,
    };
    diffusion_lab::eval::decided::check(&options, &schedule)?;
    let judge_weights = classifier_checkpoint(&args.classifier)?;
    let opened = args.models.open(&resolved)?;
    let OpenedModel { device, model, decoder } = &opened;
    if let Some(class) = args.class.filter(|c| *c >= model.config.num_classes) {
        bail!("--class must be below {}, got {class}", model.config.num_classes);
    }
    if let Some(class) = args.branch_class.filter(|c| *c >= model.config.num_classes) {
        bail!("--branch-class must be below {}, got {class}", model.config.num_classes);
    }
    let judge = Judge::from_checkpoint(&judge_weights, &device.device)?;
    let branch = args.branch_class.map_or(String::new(), |c| format!(" asking for class {c}"));
    eprintln!(
        "{} runs of {} ({}), each continued {} times{branch} from {} of its steps, on {}",
        args.runs,
        options.sampler.label(),
        args.class.map_or("unconditional".to_string(), |c| format!("class {c}, w = {}", args.guidance)),
        args.continuations,
        args.points,
        device.description
    );
    if let Some(path) = &args.rows {
        let rows =
            continued_rows(model, decoder.as_ref(), Some(&judge), &schedule, &options, &device.device, &|| true)?;
        save_rows_figure(path, &rows)?;
    }
    let bar = indicatif::ProgressBar::new(args.runs as u64);
    let rows = decided(model, decoder.as_ref(), &judge, &schedule, &options, &device.device, |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    print_table(&rows, args.branch_class.is_some())?;
    if let Some(path) = &args.csv {
        output::write_file(path, csv_of(&rows).as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `--rows`: Figure 7 for the first run, a row per step: x_t, then where each continuation ended.
fn save_rows_figure(path: &std::path::Path, rows: &DecidedRows) -> anyhow::Result<()> {
    let (cells, labels) = diffusion_lab::eval::decided::rows_figure(rows, false);
    let grid = images::scaled(&images::labelled_grid(&cells, &labels, 2), 2);
    images::save_png(path, &grid, &[])?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The table on stdout, a row per step continued from, and what its columns mean (`branch`: the
/// continuations asked for another class).
fn print_table(rows: &[DecidedRow], branch: bool) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    writeln!(out, "step     t        λ  same class  spread  from the end")?;
    for row in rows {
        writeln!(
            out,
            "{:>4} {:>5} {:>8.2} {:>10.1} % {:>7.3} {:>13.3}{}",
            row.step,
            row.t,
            row.log_snr,
            100.0 * row.same_class,
            row.spread,
            row.from_original,
            if row.deterministic { "  deterministic: no noise after this step" } else { "" }
        )?;
    }
    writeln!(
        out,
        "same class: share of continuations the judge puts in the class of their run's own end; spread: mean \
         difference per pixel (0 to 1) between two continuations of one x_t; a deterministic row holds by \
         construction (no step after it draws noise, so every continuation is the run's own end){}",
        if branch { "; asking for the branch class, its last prediction may still move it a little" } else { "" }
    )?;
    out.flush()?;
    Ok(())
}

/// `--csv`: the table's rows.
fn csv_of(rows: &[DecidedRow]) -> String {
    let mut text = String::from("step,t,log_snr,same_class,spread,from_original,deterministic\n");
    for row in rows {
        text.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            row.step, row.t, row.log_snr, row.same_class, row.spread, row.from_original, row.deterministic
        ));
    }
    text
}
