//! `sample`: images from a trained model, as a grid and/or one PNG each, with their settings.

use super::*;
use diffusion_lab::engine::GenerateRequest;
use diffusion_lab::run::generate::{Branch, MAX_BATCH};
use diffusion_lab::run::png_settings::settings_text;

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
    let resolved = args.models.resolve()?;
    let num_classes = resolved.config.num_classes;
    let classes = classes_of(args, num_classes)?;
    let prompt = args.prompt.check(&resolved.config)?;
    let sampler = args.sampler.sampler();
    let schedule = args.schedule.beta_schedule_or(resolved.training_schedule());
    // Everything the user typed is checked before the (possibly slow) device and model start.
    let evaluations = sampler.plan(&schedule.build()?)?.evaluations();
    let init = init_image(&args.edit, resolved.picture_shape()?)?;
    if let Some(init) = &init {
        if args.all_classes || args.n > MAX_BATCH {
            bail!("with --init-image: at most {MAX_BATCH} images of one class (--class) or none");
        }
        sampler.plan_from_strength(&schedule.build()?, init.strength)?;
    }
    let request = GenerateRequest {
        model: resolved.id.clone(),
        schedule,
        sampler,
        seed: args.seed,
        batch: args.n,
        class: args.class,
        prompt,
        guidance: args.guidance.scale(),
        guidance_interval: args.guidance.guidance_interval,
        guidance_method: args.guidance.params(),
        init,
        interpolate: None,
        branch: None,
    };
    check_guidance(&request, &resolved)?;
    let opened = args.models.open(&resolved)?;
    eprintln!(
        "sampling {} images with {} ({evaluations} network evaluations each) on {}",
        args.n,
        sampler.label(),
        opened.device.description
    );
    let pictures = sample_pictures(&opened, &request, &classes)?;
    // The window's settings format: a request that the window's "Open settings from PNG…" restores. The
    // window draws x_T for a batch from the seed as `sample` draws its first batch, so an image of the
    // first batch (up to the window's largest batch) comes back as it is here.
    let request_for = |class: usize| GenerateRequest {
        batch: classes.len().min(SAMPLE_BATCH).min(MAX_BATCH),
        class: (class < num_classes).then_some(class),
        ..request.clone()
    };
    if let Some(path) = &args.grid {
        let columns =
            if args.all_classes { args.n.div_ceil(num_classes) } else { (args.n as f64).sqrt().ceil() as usize };
        let text = settings_text(&request_for(classes[0]), serde_json::json!({ "classes": classes }));
        output::save_grid(path, &pictures, columns, &text)?;
    }
    if let Some(dir) = &args.out_dir {
        let pictures = &pictures[..pictures.len().min(classes.len())];
        output::save_each(dir, pictures, |i| {
            let class = classes[i];
            let name = if class < num_classes { format!("{i:05}-class{class}.png") } else { format!("{i:05}-any.png") };
            (name, settings_text(&request_for(class), serde_json::json!({ "index": i })))
        })?;
    }
    Ok(())
}

/// The pictures of `request`'s settings: from x_T, in batches, one per entry of `classes`; from
/// --init-image, its one batch.
fn sample_pictures(opened: &OpenedModel, request: &GenerateRequest, classes: &[usize]) -> anyhow::Result<Vec<Picture>> {
    let OpenedModel { device, model, decoder } = opened;
    Ok(match &request.init {
        None => sample_images(model, decoder.as_ref(), request, classes, &device.device)?,
        Some(_) => final_frame(model, decoder.as_ref(), request, &device.device)?.pictures(),
    })
}

/// The request's guidance (its values, CFG++'s sampler, and for autoguidance a weaker model to guide
/// with), checked before the model starts: one line each.
fn check_guidance(request: &GenerateRequest, resolved: &ResolvedModel) -> anyhow::Result<()> {
    request.guidance_settings().validate()?;
    if request.guidance_method.method == GuidanceMethod::CfgPlusPlus {
        diffusion_lab::diffusion::guidance::cfgpp_supports(request.sampler.method)?;
    }
    if request.guidance_method.method == GuidanceMethod::Auto && resolved.guide.is_none() {
        return Err(diffusion_lab::run::generate::GenerateError::NoGuide.into());
    }
    Ok(())
}

/// `sample --from PNG --at-step K`: the PNG's run continued from its step K with the flags given here.
fn sample_branch(args: &SampleArgs, from: &std::path::Path, at_step: usize) -> anyhow::Result<()> {
    let parent = diffusion_lab::run::png_settings::settings_from_png(from)?;
    let given = explicit_flags("sample");
    let resolved = branch_model(args, from, &parent, &given)?;
    if given("n") && args.n != parent.batch {
        bail!("--n {}: a branch continues all {} images of its parent's run", args.n, parent.batch);
    }
    if ["kind", "timesteps", "beta_start", "beta_end"].into_iter().any(&given) {
        bail!("a branch keeps its parent's β schedule: drop the schedule flags");
    }
    let request = GenerateRequest {
        sampler: branch_sampler(args, &parent, &given),
        seed: if given("seed") { args.seed } else { parent.seed },
        class: if given("class") { args.class } else { parent.class },
        guidance: if given("guidance") || given("guidance_method") { args.guidance.scale() } else { parent.guidance },
        guidance_interval: if given("guidance_interval") {
            args.guidance.guidance_interval
        } else {
            parent.guidance_interval
        },
        guidance_method: if GuidanceOptions::method_given(&given) {
            args.guidance.params()
        } else {
            parent.guidance_method
        },
        interpolate: None,
        branch: Some(Branch { parent: Box::new(parent.clone()), at_step }),
        ..parent.clone()
    };
    // Everything checked (the step, the settings) before the model starts.
    request.validate(resolved.config.num_classes).with_context(|| format!("branching {}", from.display()))?;
    check_guidance(&request, &resolved)?;
    let (plan, level) = request.plan(&request.schedule.build()?)?;
    let OpenedModel { device, model, decoder } = args.models.open(&resolved)?;
    eprintln!(
        "continuing {} ({}) from step {at_step} (t = {}, λ = {:.2}): {} more steps with {}, {}, w = {}, seed {}",
        from.display(),
        parent.sampler.label(),
        level.t,
        level.log_snr,
        plan.len(),
        request.sampler.label(),
        diffusion_lab::run::grid::conditioning_caption(&request),
        request.guidance,
        request.seed,
    );
    let pictures = final_frame(&model, decoder.as_ref(), &request, &device.device)?.pictures();
    if let Some(path) = &args.grid {
        let columns = (pictures.len() as f64).sqrt().ceil() as usize;
        output::save_grid(path, &pictures, columns, &settings_text(&request, serde_json::json!({})))?;
    }
    if let Some(dir) = &args.out_dir {
        output::save_each(dir, &pictures, |i| {
            (format!("{i:05}-branch.png"), settings_text(&request, serde_json::json!({ "index": i })))
        })?;
    }
    Ok(())
}

/// The model a branch continues: its parent's built-in model, or the one --model gives (which must be
/// the parent's).
fn branch_model(
    args: &SampleArgs,
    from: &std::path::Path,
    parent: &GenerateRequest,
    given: &impl Fn(&str) -> bool,
) -> anyhow::Result<ResolvedModel> {
    let model_name = match embedded::model_by_name(&parent.model.label()) {
        Some(builtin) if !given("model") => builtin.short_name.to_owned(),
        _ if given("model") => args.models.model.clone(),
        _ => bail!("{} was made with the model `{}`: give it with --model FILE", from.display(), parent.model),
    };
    if ModelId::of_model_flag(&model_name) != parent.model {
        bail!(
            "{} was made with `{}`, not `{model_name}`: a branch continues its parent's model",
            from.display(),
            parent.model
        );
    }
    Ok(ResolvedModel::named(&model_name, args.models.autoencoder.as_deref())?)
}

/// The branch's sampler: its parent's, with the sampler flags given here changed.
fn branch_sampler(args: &SampleArgs, parent: &GenerateRequest, given: &impl Fn(&str) -> bool) -> Sampler {
    if !["sampler", "sampling_steps", "spacing", "eta"].into_iter().any(given) {
        return parent.sampler;
    }
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
}
