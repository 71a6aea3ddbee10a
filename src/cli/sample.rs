//! `sample`: images from a trained model, as a grid and/or one PNG each, with their settings.

use super::*;
use diffusion_lab::engine::png_settings::settings_text;

#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub models: ModelOptions,
    /// Number of images.
    #[arg(long, default_value_t = 16)]
    pub n: usize,
    /// Generate this class (0..9 for Fashion-MNIST); without it and --all-classes, unconditional.
    #[arg(long, conflicts_with = "all_classes")]
    pub class: Option<usize>,
    /// Cycle through every class, n / classes images each (one grid row per class).
    #[arg(long)]
    pub all_classes: bool,
    #[command(flatten)]
    pub guidance: GuidanceOptions,
    #[command(flatten)]
    pub sampler: SamplerOptions,
    #[command(flatten)]
    pub schedule: ScheduleOptions,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write all images as one grid PNG.
    #[arg(long)]
    pub grid: Option<PathBuf>,
    /// Write one PNG per image (the class is in the file name).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    #[command(flatten)]
    pub edit: EditOptions,
}

/// The class of each image: `--all-classes` in turn, one `--class`, or none (the unconditional label,
/// `num_classes`).
fn classes_of(args: &SampleArgs, num_classes: usize) -> anyhow::Result<Vec<usize>> {
    Ok(if args.all_classes {
        let per_class = args.n.div_ceil(num_classes);
        (0..num_classes).flat_map(|c| std::iter::repeat_n(c, per_class)).take(args.n).collect()
    } else {
        match args.class {
            Some(c) if c >= num_classes => bail!("--class must be below {num_classes}, got {c}"),
            Some(c) => vec![c; args.n],
            None => vec![num_classes; args.n],
        }
    })
}

pub(super) fn sample(args: &SampleArgs) -> anyhow::Result<()> {
    if args.grid.is_none() && args.out_dir.is_none() {
        bail!("nothing to write: give --grid FILE.png and/or --out-dir DIR");
    }
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let (checkpoint, builtin_autoencoder) = checkpoint_of_model(&args.models.model)?;
    let config: UNetConfig = serde_json::from_value(checkpoint.header.config.clone())
        .map_err(|e| anyhow::anyhow!("the model's config is damaged: {e}"))?;
    let num_classes = config.num_classes;
    let classes = classes_of(args, num_classes)?;
    let sampler = args.sampler.sampler();
    let schedule = args.schedule.beta_schedule_or(checkpoint.header.training_schedule.unwrap_or_default());
    // Everything the user typed is checked before the (possibly slow) device and model start.
    let evaluations = sampler.plan(&schedule.build()?)?.evaluations();
    let init = init_image(&args.edit, picture_shape(&config, builtin_autoencoder)?)?;
    if let Some(init) = &init {
        if args.all_classes || args.n > diffusion_lab::engine::generate::MAX_BATCH {
            bail!(
                "with --init-image: at most {} images of one class (--class) or none",
                diffusion_lab::engine::generate::MAX_BATCH
            );
        }
        sampler.plan_from_strength(&schedule.build()?, init.strength)?;
    }
    let OpenedModel { device, model, decoder } = args.models.open(&checkpoint, builtin_autoencoder)?;
    eprintln!(
        "sampling {} images with {} ({evaluations} network evaluations each) on {}",
        args.n,
        sampler.label(),
        device.description
    );
    let pictures = match &init {
        None => {
            let guidance = args.guidance.guidance();
            generate(&model, decoder.as_ref(), &classes, guidance, sampler, schedule, args.seed, &device.device)?
        }
        Some(init) => {
            let request = diffusion_lab::engine::GenerateRequest {
                model: app_model_id(&args.models.model),
                schedule,
                sampler,
                seed: args.seed,
                batch: args.n,
                class: args.class,
                guidance: args.guidance.guidance,
                guidance_interval: args.guidance.guidance_interval,
                init: Some(init.clone()),
                interpolate: None,
            };
            final_frame(&model, decoder.as_ref(), &request, &device.device)?.pictures()
        }
    };
    // The window's settings format: a request that the window's "Open settings from PNG…" restores. The
    // window draws x_T for a batch from the seed as `sample` draws its first batch, so an image of the
    // first batch (up to the window's largest batch) comes back as it is here.
    let app_model = app_model_id(&args.models.model);
    let request_for = |class: usize| diffusion_lab::engine::GenerateRequest {
        model: app_model.clone(),
        schedule,
        sampler,
        seed: args.seed,
        batch: classes.len().min(SAMPLE_BATCH).min(diffusion_lab::engine::generate::MAX_BATCH),
        class: (class < num_classes).then_some(class),
        guidance: args.guidance.guidance,
        guidance_interval: args.guidance.guidance_interval,
        init: init.clone(),
        interpolate: None,
    };
    if let Some(path) = &args.grid {
        let columns =
            if args.all_classes { args.n.div_ceil(num_classes) } else { (args.n as f64).sqrt().ceil() as usize };
        let text = settings_text(&request_for(classes[0]), serde_json::json!({ "classes": classes }));
        images::save_png(path, &images::grid(&pictures, columns, 2), &text)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (i, (picture, class)) in pictures.iter().zip(&classes).enumerate() {
            let name =
                if *class < num_classes { format!("{i:05}-class{class}.png") } else { format!("{i:05}-any.png") };
            let text = settings_text(&request_for(*class), serde_json::json!({ "index": i }));
            images::save_png(&dir.join(name), picture, &text)?;
        }
        eprintln!("wrote {} images to {}", pictures.len(), dir.display());
    }
    Ok(())
}
