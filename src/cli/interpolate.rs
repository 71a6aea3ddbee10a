//! `interpolate`: a strip of images between two seeds (spherical interpolation of x_T), two classes or a
//! text model's two prompts (interpolation of τ_θ(y)), as a labelled PNG and optionally an animated GIF.

use super::*;
use diffusion_lab::engine::GenerateRequest;
use diffusion_lab::images::GridLabels;
use diffusion_lab::run::png_settings::settings_text;

#[derive(Args, Debug)]
pub struct InterpolateArgs {
    /// Between two seeds' noises: A,B (the class stays --class).
    #[arg(long, conflicts_with_all = ["classes", "prompts"], required_unless_present_any = ["classes", "prompts"])]
    pub seeds: Option<String>,
    /// Between two classes: A,B (the noise stays --seed's).
    #[arg(long, conflicts_with = "prompts")]
    pub classes: Option<String>,
    /// Between a text model's two prompts: "A|B", e.g. "dark boot|light sneaker" (τ_θ of each, token by
    /// token; the noise stays --seed's).
    #[arg(long)]
    pub prompts: Option<String>,
    /// Images in the strip, both ends included.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=64))]
    pub frames: u64,
    /// The PNG strip to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the strip as an animated GIF (there and back).
    #[arg(long)]
    pub gif: Option<PathBuf>,
    #[command(flatten)]
    pub models: ModelOptions,
    /// The class when interpolating seeds, or `any`.
    #[arg(long, default_value = "0")]
    pub class: String,
    /// The seed when interpolating classes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = DEFAULT_GUIDANCE)]
    pub guidance: f64,
    #[command(flatten)]
    pub sampler: SamplerOptions,
    #[command(flatten)]
    pub schedule: ScheduleOptions,
    /// Output pixels per image pixel.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub zoom: u64,
}

fn pair<T: std::str::FromStr>(flag: &str, text: &str) -> anyhow::Result<(T, T)> {
    let parse =
        |s: &str| s.trim().parse::<T>().map_err(|_| anyhow::anyhow!("--{flag} takes two numbers A,B, got `{text}`"));
    match text.split_once(',') {
        Some((a, b)) => Ok((parse(a)?, parse(b)?)),
        None => bail!("--{flag} takes two numbers A,B, got `{text}`"),
    }
}

pub(super) fn interpolate(args: &InterpolateArgs) -> anyhow::Result<()> {
    let resolved = args.models.resolve()?;
    let class = parse_class(&args.class)?;
    let ends = read_ends(args, base_request(args, &resolved), class)?;
    let frames = args.frames as usize;
    let requests = diffusion_lab::run::grid::interpolation_requests(
        &ends.base,
        ends.seed_b,
        ends.class_b,
        ends.prompt_b.as_deref(),
        frames,
    );
    let config = &resolved.config;
    if ends.prompt_b.is_some() {
        check_prompts(config, &ends)?;
    }
    for request in &requests {
        request.validate(config.num_classes)?;
    }
    let OpenedModel { device, model, decoder } = args.models.open(&resolved)?;
    eprintln!("{frames} images, {}, on {}", ends.what, device.description);
    let bar = progress_bar(frames as u64, 0);
    let mut pictures = Vec::with_capacity(frames);
    for request in &requests {
        let picture = final_picture(&model, decoder.as_ref(), request, &device.device)?;
        pictures.push(images::scaled(&picture, args.zoom as usize));
        bar.inc(1);
    }
    bar.finish_and_clear();
    save_strip(args, &ends, &requests, &pictures)?;
    if let Some(path) = &args.gif {
        let gif = images::gif_bytes(&images::there_and_back(&pictures))?;
        output::write_file(path, &gif)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The strip's two ends: A as a whole request, and what B changes (a seed, a class or a prompt).
struct Ends {
    base: GenerateRequest,
    seed_b: Option<u64>,
    class_b: Option<usize>,
    prompt_b: Option<String>,
    /// "seed A -> B", the strip's caption.
    what: String,
}

/// `--seeds`, `--classes` or `--prompts` read into the strip's ends, from `base` (the other flags).
fn read_ends(args: &InterpolateArgs, base: GenerateRequest, class: Option<usize>) -> anyhow::Result<Ends> {
    let ends = |base, seed_b, class_b, prompt_b, what| Ends { base, seed_b, class_b, prompt_b, what };
    Ok(match (&args.seeds, &args.classes, &args.prompts) {
        (Some(seeds), ..) => {
            let (a, b): (u64, u64) = pair("seeds", seeds)?;
            ends(GenerateRequest { seed: a, class, ..base }, Some(b), None, None, format!("seed {a} -> {b}"))
        }
        (None, Some(classes), _) => {
            let (a, b): (usize, usize) = pair("classes", classes)?;
            let base = GenerateRequest { seed: args.seed, class: Some(a), ..base };
            ends(base, None, Some(b), None, format!("class {a} -> {b}"))
        }
        (None, None, Some(prompts)) => {
            let Some((a, b)) = prompts.split_once('|') else {
                bail!("--prompts takes two prompts \"A|B\", got `{prompts}`")
            };
            let base = GenerateRequest {
                seed: args.seed,
                prompt: Some(diffusion_lab::run::generate::PromptRequest::new(a.trim())),
                ..base
            };
            ends(base, None, None, Some(b.trim().to_string()), format!("'{}' -> '{}'", a.trim(), b.trim()))
        }
        (None, None, None) => bail!("give --seeds A,B, --classes A,B or --prompts \"A|B\""),
    })
}

/// `--prompts`: the model reads prompts, and both fit it.
fn check_prompts(config: &UNetConfig, ends: &Ends) -> anyhow::Result<()> {
    let Some(text) = &config.text else {
        bail!("--prompts needs a text model (the built-in one is `fashion-text`); this one is conditioned on classes")
    };
    let prompt_a = ends.base.prompt.as_ref().map(|p| p.text.as_str()).unwrap_or_default();
    for prompt in [prompt_a, ends.prompt_b.as_deref().unwrap_or_default()] {
        text.prompt(prompt)?;
    }
    Ok(())
}

/// The strip as a labelled PNG (u under each image), carrying its far end's settings.
fn save_strip(
    args: &InterpolateArgs,
    ends: &Ends,
    requests: &[GenerateRequest],
    pictures: &[Picture],
) -> anyhow::Result<()> {
    let labels = GridLabels {
        x_title: format!("u, {}", ends.what),
        columns: requests.iter().map(|r| format!("{:.2}", r.interpolate.as_ref().map_or(0.0, |i| i.u))).collect(),
        y_title: String::new(),
        rows: vec![String::new()],
    };
    let cells: Vec<Option<images::Picture>> = pictures.iter().cloned().map(Some).collect();
    let extra = serde_json::json!({ "interpolation": requests });
    // Restored in the window, the strip's settings are its far end's: A's seed and class, and where u = 1 goes.
    let far_end =
        GenerateRequest { interpolate: requests.last().and_then(|r| r.interpolate.clone()), ..ends.base.clone() };
    images::save_png(&args.out, &images::labelled_grid(&cells, &labels, 4), &settings_text(&far_end, extra))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// The strip's first end as the flags describe it (before --seeds / --classes / --prompts set its ends).
fn base_request(args: &InterpolateArgs, resolved: &ResolvedModel) -> GenerateRequest {
    GenerateRequest {
        model: resolved.id.clone(),
        schedule: args.schedule.beta_schedule_or(resolved.training_schedule()),
        sampler: args.sampler.sampler(),
        seed: args.seed,
        batch: 1,
        class: None,
        prompt: None,
        guidance: args.guidance,
        guidance_interval: None,
        guidance_method: Default::default(),
        init: None,
        interpolate: None,
        branch: None,
    }
}
