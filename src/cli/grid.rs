//! `grid`: an X/Y plot from the command line, e.g. `grid --x guidance=0,1,2,4 --y steps=10,20,50 --out g.png`.

use super::*;
use diffusion_lab::engine::GenerateRequest;
use diffusion_lab::images::GridLabels;
use diffusion_lab::run::grid::{GridAxis, grid_requests, grid_settings_json};
use diffusion_lab::run::png_settings::settings_text;

#[derive(Args, Debug)]
pub struct GridArgs {
    /// The columns: SETTING=VALUE,VALUE,... with SETTING one of guidance, steps, sampler, spacing, eta,
    /// class, seed, timesteps, schedule, strength (with --init-image), and for a text model prompt (whole
    /// prompts, separated by `|`: "prompt=dark boot|light boot") and prompt_sr (search and replace in
    /// --prompt: "prompt_sr=dark,light" draws the prompt as it is, then with "dark" replaced by "light").
    #[arg(long)]
    pub x: GridAxis,
    /// The rows, written as --x.
    #[arg(long)]
    pub y: GridAxis,
    /// The PNG to write.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub models: ModelOptions,
    /// The class of every cell (unless an axis varies it), or `any`.
    #[arg(long, default_value = "0")]
    pub class: String,
    #[command(flatten)]
    pub guidance: GuidanceOptions,
    #[command(flatten)]
    pub prompt: PromptOptions,
    /// The seed of every cell: all start from the same x_T.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub sampler: SamplerOptions,
    #[command(flatten)]
    pub schedule: ScheduleOptions,
    /// Cells that start from a picture (vary `strength` along an axis).
    #[command(flatten)]
    pub edit: EditOptions,
    /// PNG pixels per image pixel.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub zoom: u64,
}

pub(super) fn grid(args: &GridArgs) -> anyhow::Result<()> {
    let resolved = args.models.resolve()?;
    let schedule = args.schedule.beta_schedule_or(resolved.training_schedule());
    let class = parse_class(&args.class)?;
    let config = &resolved.config;
    let init = init_image(&args.edit, resolved.picture_shape()?)?;
    let base = GenerateRequest {
        model: resolved.id.clone(),
        schedule,
        sampler: args.sampler.sampler(),
        seed: args.seed,
        batch: 1,
        class,
        prompt: args.prompt.check(config)?,
        guidance: args.guidance.scale(),
        guidance_interval: args.guidance.guidance_interval,
        guidance_method: args.guidance.params(),
        init,
        interpolate: None,
        branch: None,
    };
    let cells = grid_requests(&base, &args.x, &args.y)?;
    // Every cell is checked before the first (slow) one runs.
    let text_axis = [&args.x, &args.y].into_iter().find(|a| a.setting.takes_prompts());
    if let Some(axis) = text_axis
        && config.text.is_none()
    {
        bail!(
            "`{}` varies a prompt, but this model is conditioned on classes (the text model is `fashion-text`)",
            axis.title()
        );
    }
    for (i, cell) in cells.iter().enumerate() {
        let (column, row) = (i % args.x.values.len(), i / args.x.values.len());
        if let (Some(prompt), Some(text)) = (&cell.prompt, &config.text)
            && let Some(message) = text.unknown_words(&prompt.text)?
        {
            eprintln!("warning: cell {}: {message}", i + 1);
        }
        cell.validate(config.num_classes).with_context(|| {
            format!("cell {} = {}, {} = {}", args.x.title(), args.x.values[column], args.y.title(), args.y.values[row])
        })?;
    }
    let OpenedModel { device, model, decoder } = args.models.open(&resolved)?;
    eprintln!("{} cells ({} x {}) on {}", cells.len(), args.x.values.len(), args.y.values.len(), device.description);
    let bar = progress_bar(cells.len() as u64, 0);
    let mut pictures = Vec::with_capacity(cells.len());
    for cell in &cells {
        let picture = final_picture(&model, decoder.as_ref(), cell, &device.device)?;
        pictures.push(Some(images::scaled(&picture, args.zoom as usize)));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let labels = GridLabels {
        x_title: args.x.title().to_string(),
        columns: args.x.values.clone(),
        y_title: args.y.title().to_string(),
        rows: args.y.values.clone(),
    };
    let picture = images::labelled_grid(&pictures, &labels, 4);
    images::save_png(&args.out, &picture, &settings_text(&base, grid_settings_json(&args.x, &args.y, &cells)))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
