//! `schedule`: every derived quantity of a noise schedule, as CSV or JSON.

use super::*;

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub schedule: ScheduleOptions,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Csv)]
    pub format: TableFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Json,
}

pub(super) fn schedule(args: &ScheduleArgs) -> anyhow::Result<()> {
    let schedule = args.schedule.beta_schedule_or(BetaSchedule::linear(1000)).build().context("invalid schedule")?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args.format {
        TableFormat::Csv => write_schedule_csv(&mut out, &schedule)?,
        TableFormat::Json => {
            serde_json::to_writer(&mut out, &json_from_schedule(&schedule))?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    // On stderr, so that the table on stdout stays a table.
    for line in terminal_lines(&schedule) {
        eprintln!("{line}");
    }
    Ok(())
}

/// The signal left at t = T and, where x_T is not pure noise, the warning with its measured cost and the
/// flags that fix it (the window's Schedule panel says the same).
pub(super) fn terminal_lines(schedule: &NoiseSchedule) -> Vec<String> {
    use diffusion_lab::diffusion::schedule::{terminal_fixes, terminal_warning};
    let mut lines = vec![format!("signal left at t = T: {}", schedule.terminal_signal().describe())];
    if let Some(warning) = terminal_warning(schedule) {
        lines.push(format!("warning: x_T is not pure noise. {warning}"));
        let (steps, beta_end) = terminal_fixes(&schedule.source);
        let mut fixes: Vec<String> = Vec::new();
        fixes.extend(steps.map(|t| format!("--timesteps {t}")));
        fixes.extend(beta_end.map(|b| format!("--beta-end {b}")));
        fixes.push("the models' own schedule (--kind cosine --timesteps 1000)".into());
        lines.push(format!("fix: {}", fixes.join(", or ")));
    }
    lines
}

/// The derived quantities, in the order the CSV and the JSON list them.
fn schedule_columns(s: &NoiseSchedule) -> [(&'static str, &[f64]); 10] {
    [
        ("beta", &s.beta),
        ("alpha", &s.alpha),
        ("alpha_bar", &s.alpha_bar),
        ("alpha_bar_prev", &s.alpha_bar_prev),
        ("sqrt_alpha_bar", &s.sqrt_alpha_bar),
        ("sqrt_one_minus_alpha_bar", &s.sqrt_one_minus_alpha_bar),
        ("beta_tilde", &s.beta_tilde),
        ("posterior_coef_x0", &s.posterior_coef_x0),
        ("posterior_coef_xt", &s.posterior_coef_xt),
        ("log_snr", &s.log_snr),
    ]
}

fn write_schedule_csv(out: &mut impl Write, s: &NoiseSchedule) -> std::io::Result<()> {
    let columns = schedule_columns(s);
    let header: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    writeln!(out, "t,{}", header.join(","))?;
    for i in 0..s.steps() {
        write!(out, "{}", i + 1)?;
        for (_, values) in &columns {
            write!(out, ",{}", values[i])?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// `{"schedule": {...}, "t": [1..T], "beta": [...], ...}`: one array per quantity, index i = t - 1.
fn json_from_schedule(s: &NoiseSchedule) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert("schedule".into(), serde_json::json!(s.source));
    map.insert("t".into(), serde_json::json!((1..=s.steps()).collect::<Vec<_>>()));
    for (name, values) in schedule_columns(s) {
        map.insert(name.into(), serde_json::json!(values));
    }
    serde_json::Value::Object(map)
}
