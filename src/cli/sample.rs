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
    pub prompt: PromptOptions,
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
    /// Branch: continue the run this PNG's settings describe (one saved by diffusion-lab) from its step
    /// --at-step, with the settings given here changed (--class, --guidance, --guidance-interval, the
    /// sampler flags, --seed); the rest is the PNG's. Its whole batch continues.
    #[arg(long, requires = "at_step", conflicts_with_all = ["all_classes", "init_image"])]
    pub from: Option<PathBuf>,
    /// The step of --from's run to continue from: 0 = its x_T, k = after its k-th step.
    #[arg(long, requires = "from")]
    pub at_step: Option<usize>,
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
    if let (Some(from), Some(at_step)) = (&args.from, args.at_step) {
        return sample_branch(args, from, at_step);
    }
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let (checkpoint, builtin_autoencoder) = checkpoint_of_model(&args.models.model)?;
    let config: UNetConfig = serde_json::from_value(checkpoint.header.config.clone())
        .map_err(|e| anyhow::anyhow!("the model's config is damaged: {e}"))?;
    let num_classes = config.num_classes;
    let classes = classes_of(args, num_classes)?;
    let prompt = args.prompt.check(&config)?;
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
            let prompt = prompt.as_ref();
            generate(
                &model,
                decoder.as_ref(),
                &classes,
                prompt,
                guidance,
                sampler,
                schedule,
                args.seed,
                &device.device,
            )?
        }
        Some(init) => {
            let request = diffusion_lab::engine::GenerateRequest {
                model: app_model_id(&args.models.model),
                schedule,
                sampler,
                seed: args.seed,
                batch: args.n,
                class: args.class,
                prompt: prompt.clone(),
                guidance: args.guidance.guidance,
                guidance_interval: args.guidance.guidance_interval,
                init: Some(init.clone()),
                interpolate: None,
                branch: None,
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
        prompt: prompt.clone(),
        guidance: args.guidance.guidance,
        guidance_interval: args.guidance.guidance_interval,
        init: init.clone(),
        interpolate: None,
        branch: None,
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

/// `sample --from PNG --at-step K`: the PNG's run continued from its step K with the flags given here.
fn sample_branch(args: &SampleArgs, from: &std::path::Path, at_step: usize) -> anyhow::Result<()> {
    use diffusion_lab::engine::generate::{Branch, GenerateRequest};
    let parent = diffusion_lab::engine::png_settings::settings_from_png(from)?;
    let given = explicit_flags("sample");
    let model_name = match embedded::model_by_name(&parent.model.label()) {
        Some(builtin) if !given("model") => builtin.short_name.to_owned(),
        _ if given("model") => args.models.model.clone(),
        _ => bail!("{} was made with the model `{}`: give it with --model FILE", from.display(), parent.model),
    };
    if app_model_id(&model_name) != parent.model {
        bail!(
            "{} was made with `{}`, not `{model_name}`: a branch continues its parent's model",
            from.display(),
            parent.model
        );
    }
    if given("n") && args.n != parent.batch {
        bail!("--n {}: a branch continues all {} images of its parent's run", args.n, parent.batch);
    }
    if ["kind", "timesteps", "beta_start", "beta_end"].into_iter().any(&given) {
        bail!("a branch keeps its parent's β schedule: drop the schedule flags");
    }
    let sampler = if ["sampler", "sampling_steps", "spacing", "eta"].into_iter().any(&given) {
        let method = args.sampler.sampler.unwrap_or(parent.sampler.method);
        let spacing = match args.sampler.spacing {
            Some(spacing) => spacing,
            None if given("sampler") => args.sampler.sampler().spacing,
            None => parent.sampler.spacing,
        };
        Sampler {
            method,
            steps: if given("sampling_steps") { args.sampler.sampling_steps } else { parent.sampler.steps },
            spacing,
            eta: if given("eta") { args.sampler.eta } else { parent.sampler.eta },
            ..parent.sampler
        }
    } else {
        parent.sampler
    };
    let request = GenerateRequest {
        sampler,
        seed: if given("seed") { args.seed } else { parent.seed },
        class: if given("class") { args.class } else { parent.class },
        guidance: if given("guidance") { args.guidance.guidance } else { parent.guidance },
        guidance_interval: if given("guidance_interval") {
            args.guidance.guidance_interval
        } else {
            parent.guidance_interval
        },
        interpolate: None,
        branch: Some(Branch { parent: Box::new(parent.clone()), at_step }),
        ..parent.clone()
    };
    let (checkpoint, builtin_autoencoder) = checkpoint_of_model(&model_name)?;
    let config: UNetConfig = serde_json::from_value(checkpoint.header.config.clone())
        .map_err(|e| anyhow::anyhow!("the model's config is damaged: {e}"))?;
    // Everything checked (the step, the settings) before the model starts.
    request.validate(config.num_classes).with_context(|| format!("branching {}", from.display()))?;
    let (plan, level) = request.plan(&request.schedule.build()?)?;
    let OpenedModel { device, model, decoder } = args.models.open(&checkpoint, builtin_autoencoder)?;
    eprintln!(
        "continuing {} ({}) from step {at_step} (t = {}, λ = {:.2}): {} more steps with {}, {}, w = {}, seed {}",
        from.display(),
        parent.sampler.label(),
        level.t,
        level.log_snr,
        plan.len(),
        request.sampler.label(),
        diffusion_lab::engine::grid::conditioning_caption(&request),
        request.guidance,
        request.seed,
    );
    let pictures = final_frame(&model, decoder.as_ref(), &request, &device.device)?.pictures();
    let text = settings_text(&request, serde_json::json!({}));
    if let Some(path) = &args.grid {
        let columns = (pictures.len() as f64).sqrt().ceil() as usize;
        images::save_png(path, &images::grid(&pictures, columns, 2), &text)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (i, picture) in pictures.iter().enumerate() {
            let text = settings_text(&request, serde_json::json!({ "index": i }));
            images::save_png(&dir.join(format!("{i:05}-branch.png")), picture, &text)?;
        }
        eprintln!("wrote {} images to {}", pictures.len(), dir.display());
    }
    Ok(())
}
