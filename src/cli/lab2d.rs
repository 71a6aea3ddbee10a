//! `lab2d`: the 2-D lab headless. Trains the point network on a preset with any recipe (`--objective`,
//! `--weighting`), runs particles from x_T to the data with any sampler, prints how far they land from the
//! data (and the floor a perfect model would score), how straight the recipe's paths are and its distance
//! at 1 to 20 steps (`lab2d::recipes`), and draws the field and the particles' paths as a PNG (and the run
//! as a GIF). With `--recipe` (up to four times) it trains those recipes side by side on the same data and
//! seed instead, and prints and draws (`--figure`) the comparison. With `--solver-bench` it measures the
//! samplers against the exact ODE solution instead (lab2d_solver.rs), with `--guidance-bench` it compares the
//! guidance methods against the exact p(x|y) (lab2d_guidance.rs).

use std::time::Instant;

use super::*;
use diffusion_lab::diffusion::{NoiseLevel, Objective, Weighting};
use diffusion_lab::lab2d::data::{DEFAULT_POINTS, PointData, Preset};
use diffusion_lab::lab2d::figure::{FieldLayer, Figure};
use diffusion_lab::lab2d::recipes::{
    Comparison, ComparisonSettings, MAX_RECIPES, StepSpacing, compare, comparison_floor, exact_report, recipe_lab,
    report_of,
};
use diffusion_lab::lab2d::recipes_figure::comparison_figure;
use diffusion_lab::lab2d::run::{
    FieldQuantity, FieldRequest, ParticleRequest, ParticleRun, field_error, learned_field, noised_points, true_field,
};
use diffusion_lab::lab2d::{Distances, LAB2D_CHUNK, Lab, spread};
use diffusion_lab::train::recipe::{Recipe, usual_weighting};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FieldChoice {
    /// ∇ log q_t = -ε̂ / σ_t: arrows towards the data.
    Score,
    /// ε̂: the noise the network sees, arrows away from the data.
    Epsilon,
    /// The network's own output: its objective's target (ε, x₀, v or the velocity u = ε - x₀).
    Target,
    None,
}

#[derive(Args, Debug)]
pub struct Lab2dArgs {
    /// The data: two-gaussians, eight-gaussians, moons, swiss-roll, ring or letter.
    #[arg(long, default_value = "moons")]
    pub preset: Preset,
    /// Points drawn from the preset to train on.
    #[arg(long, default_value_t = DEFAULT_POINTS)]
    pub points: usize,
    /// Optimizer steps (batches of 256 points), of each recipe with --recipe.
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    /// What the network predicts: eps (the noise), x0 (the clean point), v (α ε - σ x₀) or flow (the
    /// velocity ε - x₀ of the straight path) [default: eps]
    #[arg(long, value_name = "OBJECTIVE")]
    pub objective: Option<String>,
    /// How much each noise level counts: plain, min-snr[:γ] (γ = 5), edm[:σ_data] (σ_data measured on the
    /// data), uniform-t or logit-normal[:mean,std] [default: uniform-t for flow, plain otherwise]
    #[arg(long, value_name = "WEIGHTING")]
    pub weighting: Option<String>,
    /// Train this recipe, OBJECTIVE[:WEIGHTING] (e.g. eps, v:min-snr:5, flow:logit-normal:0,1), beside the
    /// others given (1 to 4 times): all on the same data from the same seed, then compared — how straight
    /// their particles travel and their distance to the data at 1, 2, 4, 8 and 20 steps — and printed
    /// (and drawn with --figure). Instead of the single network's run: takes none of its picture flags
    #[arg(long = "recipe", value_name = "OBJECTIVE[:WEIGHTING]", conflicts_with_all = ["objective", "weighting", "out", "gif", "csv", "class", "compare_steps", "error_map"])]
    pub recipes: Vec<String>,
    /// The spacing every recipe is also measured with (beside its usual one: trailing for eps, x0 and v,
    /// karras for edm, uniform-t for flow): trailing, leading, linspace, karras or uniform-t (uniform in the
    /// straight path's time t)
    #[arg(long, value_name = "SPACING", default_value = StepSpacing::DEFAULT_COMMON.name())]
    pub common_spacing: String,
    /// Seeds the data, the network's initial weights and the training noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub sampler: SamplerOptions,
    #[command(flatten)]
    pub schedule: ScheduleOptions,
    /// Guide the particles towards this class (0-based; the presets' classes are their colours).
    #[arg(long)]
    pub class: Option<usize>,
    /// Classifier-free guidance w, with --class: 0 unconditional, 1 the class's own distribution, more sharper.
    #[arg(long, default_value_t = 1.0, requires = "class")]
    pub guidance: f64,
    /// Particles run from x_T ~ N(0, I).
    #[arg(long, default_value_t = 1000)]
    pub particles: usize,
    /// Seed of the particles' x_T and noise.
    #[arg(long, default_value_t = 0)]
    pub particle_seed: u64,
    /// The field the picture shows.
    #[arg(long, value_enum, default_value_t = FieldChoice::Score)]
    pub field: FieldChoice,
    /// The timestep t of the schedule at which the picture shows the field and the data's cloud x_t.
    #[arg(long, default_value_t = 150)]
    pub field_t: usize,
    /// Also draw the error of the learned field against the true one (||ε̂ - ε*||, known in closed form
    /// for the presets) as a heat map.
    #[arg(long)]
    pub error_map: bool,
    /// Also run the sampler at 5, 10, 20 and 50 steps and print each one's distance to the data.
    #[arg(long)]
    pub compare_steps: bool,
    /// Measure the distance every this many steps during training (0: only at the end).
    #[arg(long, default_value_t = 500)]
    pub measure_every: u64,
    /// Write the picture here: the data with the field at --field-t, and the particles' paths.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the particles' run here as an animated GIF.
    #[arg(long)]
    pub gif: Option<PathBuf>,
    /// Write (step, loss) and (step, distances) here as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Measure every deterministic sampler (DDIM η = 0 = Euler, Heun, DPM++ 2M) against the exact
    /// probability-flow ODE solution of the preset, with the exact score and with the trained network
    /// (--steps 0: the exact score only): prints `<name>: order <p>` per method; --out writes the log-log
    /// plot, --csv the table
    #[arg(long, conflicts_with_all = ["recipes", "likelihood", "gif", "figure", "class", "compare_steps", "error_map"])]
    pub solver_bench: bool,
    /// The step counts of --solver-bench: FIRST..LAST, doublings from FIRST up to LAST
    #[arg(long, value_name = "FIRST..LAST", default_value = "8..256")]
    pub bench_steps: String,
    #[command(flatten)]
    pub guidance_bench: super::lab2d_guidance::GuidanceBenchArgs,
    /// Write the recipe comparison here as a PNG: each recipe's paths in y = x/(α+σ) beside the exact
    /// denoiser's, and the distance to the data against the number of steps.
    #[arg(long)]
    pub figure: Option<PathBuf>,
    #[command(flatten)]
    pub likelihood: super::lab2d_likelihood::LikelihoodArgs,
}

/// Pixels per side of each panel of the picture.
const PANEL: usize = 480;

pub(super) fn lab2d(args: &Lab2dArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let schedule = args.schedule.beta_schedule_or(BetaSchedule::cosine(1000));
    let noise_schedule = schedule.build()?;
    let (data, sampler) = read_args(args, &noise_schedule)?;
    if args.likelihood.likelihood {
        return super::lab2d_likelihood::likelihood(args, data, schedule);
    }
    let settings = comparison_settings(args, schedule)?;
    if !args.recipes.is_empty() {
        let recipes = args.recipes.iter().map(|r| parse_recipe(r)).collect::<anyhow::Result<Vec<_>>>()?;
        if recipes.len() > MAX_RECIPES {
            bail!("--recipe: at most {MAX_RECIPES} recipes side by side, got {}", recipes.len());
        }
        return compare_recipes(args, &data, &recipes, &settings, &device);
    }
    let (objective, weighting) = (args.objective.as_deref().unwrap_or("eps"), args.weighting.as_deref());
    let recipe = recipe_of(objective, weighting, ["--objective", "--weighting"])?;
    if args.solver_bench {
        return super::lab2d_solver::solver_bench_command(args, data, recipe, schedule, &device);
    }
    if args.guidance_bench.guidance_bench {
        return super::lab2d_guidance::guidance_bench_command(args, data, recipe, (schedule, sampler), &device);
    }
    let mut lab = recipe_lab(data, recipe, args.steps, args.seed, &device);
    let request = ParticleRequest {
        schedule,
        sampler,
        guidance: args.guidance,
        class: args.class,
        count: args.particles,
        seed: args.particle_seed,
    };
    let params = lab.trainer.model_config.parameters();
    println!(
        "lab2d: {} ({} points, {} class(es)), MLP of {params} weights, {} steps of {} points, recipe {}",
        args.preset,
        args.points,
        lab.data.class_count,
        args.steps,
        lab.trainer.config.batch_size,
        lab.trainer.recipe().label()
    );
    let train_seconds = train(args, &mut lab, &request, &device)?;
    let (run, distances) = lab.sample(&request, &device)?;
    lab.distances.push((lab.trainer.step, distances));
    let floor = lab.floor(args.particles, args.seed.wrapping_add(7919), args.class)?;
    let sampled = Sampled { request, run, distances, floor };
    print_results(args, &lab, &sampled, train_seconds);
    if args.compare_steps {
        print_other_step_counts(&mut lab, &sampled.request, &noise_schedule, &device)?;
    }
    let comparison = Comparison {
        settings,
        floor: comparison_floor(&lab.data, &settings)?,
        exact: exact_report(&lab.data, &settings, &device)?,
        recipes: vec![report_of(&lab, &settings, &device)?],
    };
    print_comparison(&comparison, args.class.is_some());
    write_outputs(args, &lab, &sampled, &noise_schedule, &device)?;
    write_figure(args, &lab.data, &comparison)
}

/// `--out`, `--gif` and `--csv` of the single network's run.
fn write_outputs(
    args: &Lab2dArgs,
    lab: &Lab,
    sampled: &Sampled,
    noise_schedule: &NoiseSchedule,
    device: &Device,
) -> anyhow::Result<()> {
    let level = NoiseLevel::at(noise_schedule, args.field_t);
    let field_request = FieldRequest { level, class: args.class, guidance: args.guidance, resolution: 24 };
    if let Some(path) = &args.out {
        let left = field_panel(args, lab, &field_request, device)?;
        let right = particles_panel(args, lab, sampled);
        images::save_png(path, &images::grid(&[left, right], 2, 4), &settings_chunk(args, lab, sampled))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.gif {
        output::write_file(path, &images::gif_bytes(&gif_frames(lab, sampled))?)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.csv {
        output::write_file(path, csv_of(lab).as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// `OBJECTIVE[:WEIGHTING]` of `--recipe` (the weighting may hold ':' and ',' itself).
fn parse_recipe(text: &str) -> anyhow::Result<Recipe> {
    let (objective, weighting) = match text.split_once(':') {
        Some((objective, weighting)) => (objective, Some(weighting)),
        None => (text, None),
    };
    recipe_of(objective, weighting, ["objective", "weighting"]).with_context(|| format!("--recipe {text}"))
}

/// The recipe of an objective's and a weighting's names (the objective's usual weighting without one); an
/// error names the part that is wrong as `names` say.
pub(super) fn recipe_of(objective: &str, weighting: Option<&str>, names: [&str; 2]) -> anyhow::Result<Recipe> {
    let objective: Objective = objective.parse().context(names[0].to_string())?;
    let weighting = match weighting {
        Some(w) => w.parse::<Weighting>().context(names[1].to_string())?,
        None => usual_weighting(objective),
    };
    Ok(Recipe { objective, weighting })
}

/// How the recipes are measured: the schedule, `--common-spacing`, and the particles.
fn comparison_settings(args: &Lab2dArgs, schedule: BetaSchedule) -> anyhow::Result<ComparisonSettings> {
    let common: StepSpacing =
        args.common_spacing.parse().map_err(|e: String| anyhow::anyhow!("--common-spacing: {e}"))?;
    Ok(ComparisonSettings { schedule, common, particles: args.particles, seed: args.particle_seed })
}

/// `--recipe`: every recipe trained on the same data from the same seed, then measured side by side.
fn compare_recipes(
    args: &Lab2dArgs,
    data: &PointData,
    recipes: &[Recipe],
    settings: &ComparisonSettings,
    device: &Device,
) -> anyhow::Result<()> {
    println!(
        "lab2d: {} recipes side by side on {} ({} points), {} steps each from seed {}",
        recipes.len(),
        args.preset,
        args.points,
        args.steps,
        args.seed
    );
    let comparison = compare(data, recipes, (args.steps, args.seed), settings, device, &mut |_, lab| {
        let recent =
            lab.losses.iter().rev().take(100).map(|(_, l)| l).sum::<f64>() / lab.losses.len().clamp(1, 100) as f64;
        println!(
            "  {}: trained in {:.1} s, loss (last 100 steps) {recent:.4}",
            lab.trainer.recipe().label(),
            lab.trainer.wall_seconds
        );
    })?;
    print_comparison(&comparison, false);
    write_figure(args, data, &comparison)
}

/// The straightness and the step table (unconditional, whatever --class the run's particles had).
fn print_comparison(comparison: &Comparison, guided: bool) {
    if guided {
        println!("(the recipe's measures below are unconditional)");
    }
    for line in comparison.table_lines() {
        println!("{line}");
    }
}

/// `--figure`: the comparison as a picture, its numbers in the PNG's text.
fn write_figure(args: &Lab2dArgs, data: &PointData, comparison: &Comparison) -> anyhow::Result<()> {
    let Some(path) = &args.figure else { return Ok(()) };
    let recipes: Vec<serde_json::Value> = comparison
        .recipes
        .iter()
        .map(|r| {
            serde_json::json!({
                "recipe": r.recipe,
                "usual_spacing": r.usual.name(),
                "straightness": r.straightness,
                "sliced_wasserstein": r.distances,
            })
        })
        .collect();
    let settings = serde_json::json!({
        "preset": args.preset.name(),
        "points": args.points,
        "train_steps": args.steps,
        "seed": args.seed,
        "comparison": comparison.settings,
        "floor": comparison.floor,
        "recipes": recipes,
    });
    let picture = comparison_figure(data, comparison, PANEL * 3 / 4);
    images::save_png(path, &picture, &[(LAB2D_CHUNK.to_string(), settings.to_string())])?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The flags checked against the schedule and the preset: the data drawn and the sampler.
fn read_args(args: &Lab2dArgs, noise_schedule: &NoiseSchedule) -> anyhow::Result<(PointData, Sampler)> {
    if args.field_t > noise_schedule.steps() {
        bail!("--field-t {} is past the schedule's T = {}", args.field_t, noise_schedule.steps());
    }
    if args.points == 0 || args.particles == 0 {
        bail!("--points and --particles must be at least 1");
    }
    let sampler = args.sampler.sampler();
    sampler.validate(noise_schedule.steps())?;
    let data = PointData::from_preset(args.preset, args.points, args.seed);
    if let Some(class) = args.class.filter(|c| *c >= data.class_count) {
        bail!(
            "--class {class}: the preset {} has {} class(es), 0..{}",
            args.preset,
            data.class_count,
            data.class_count
        );
    }
    Ok((data, sampler))
}

/// Trains for `--steps`, printing the distances every `--measure-every` steps; the seconds spent training
/// (measuring left out).
fn train(args: &Lab2dArgs, lab: &mut Lab, request: &ParticleRequest, device: &Device) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut measured_seconds = 0.0;
    for _ in 0..args.steps {
        let report = lab.train_step();
        if args.measure_every > 0 && report.step.is_multiple_of(args.measure_every) && report.step < args.steps {
            let t = Instant::now();
            let d = lab.measure(request, device)?;
            measured_seconds += t.elapsed().as_secs_f64();
            println!(
                "  step {:>6}  loss {:.4}  sliced W₂ {:.4}  energy {:.4}",
                report.step, report.loss, d.sliced_wasserstein, d.energy
            );
        }
    }
    Ok(started.elapsed().as_secs_f64() - measured_seconds)
}

/// The particles' run after training and how far they landed: from the data, and the floor a perfect
/// model would score.
struct Sampled {
    request: ParticleRequest,
    run: ParticleRun,
    distances: Distances,
    floor: Distances,
}

fn print_results(args: &Lab2dArgs, lab: &Lab, sampled: &Sampled, train_seconds: f64) {
    let last_loss =
        lab.losses.iter().rev().take(100).map(|(_, l)| l).sum::<f64>() / lab.losses.len().clamp(1, 100) as f64;
    println!(
        "trained in {train_seconds:.1} s ({:.0} steps/s); loss (last 100 steps) {last_loss:.4}",
        args.steps as f64 / train_seconds.max(1e-9)
    );
    let target = match args.class {
        Some(c) => format!("class {c} of the data, w = {}", args.guidance),
        None => "the data".to_string(),
    };
    println!("{} particles, {} to {target}:", args.particles, sampled.request.sampler.label());
    print_distances("  samples", &sampled.distances);
    print_distances("  floor (fresh draws of the data itself, mean of 5)", &sampled.floor);
    println!(
        "  spread (RMS distance to their mean): samples {:.3}, data {:.3}",
        spread(&sampled.run.samples()),
        spread(&lab.reference(args.class))
    );
}

/// `--compare-steps`: the same sampler from the same x_T at 5, 10, 20 and 50 steps (those the schedule allows).
fn print_other_step_counts(
    lab: &mut Lab,
    request: &ParticleRequest,
    noise_schedule: &NoiseSchedule,
    device: &Device,
) -> anyhow::Result<()> {
    println!("the same sampler at other step counts (same x_T):");
    let steps: Vec<usize> = [5, 10, 20, 50]
        .into_iter()
        .filter(|&steps| Sampler { steps, ..request.sampler }.validate(noise_schedule.steps()).is_ok())
        .collect();
    for (steps, other_run, d) in lab.compare_steps(request, &steps, device)? {
        print_distances(&format!("  {:>2} steps ({} evaluations)", steps, other_run.evaluations), &d);
    }
    Ok(())
}

/// The run's settings and distances, as the picture's PNG text (the window's 2-D lab reads them).
fn settings_chunk(args: &Lab2dArgs, lab: &Lab, sampled: &Sampled) -> Vec<(String, String)> {
    let settings = serde_json::json!({
        "preset": args.preset.name(),
        "recipe": lab.trainer.recipe(),
        "points": args.points,
        "train_steps": args.steps,
        "seed": args.seed,
        "particles": sampled.request,
        "field_t": args.field_t,
        "sliced_wasserstein": sampled.distances.sliced_wasserstein,
        "energy_distance": sampled.distances.energy,
    });
    vec![(LAB2D_CHUNK.to_string(), settings.to_string())]
}

/// The picture's left panel: the data, its cloud x_t at --field-t, the field and (--error-map) its error.
fn field_panel(args: &Lab2dArgs, lab: &Lab, field_request: &FieldRequest, device: &Device) -> anyhow::Result<Picture> {
    let level = &field_request.level;
    let objective = lab.trainer.recipe().objective;
    let learned = learned_field(&lab.model(), field_request, device)?;
    let truth = true_field(&lab.data.mixture, field_request, objective)?;
    let cloud = noised_points(&lab.data, level, args.seed);
    let quantity = match args.field {
        FieldChoice::Epsilon => FieldQuantity::Epsilon,
        FieldChoice::Target => FieldQuantity::Target,
        FieldChoice::Score | FieldChoice::None => FieldQuantity::Score,
    };
    let error = field_error(learned.of(quantity), truth.of(quantity));
    let field_caption = match args.field {
        FieldChoice::None => format!("x_t at t = {} (lambda = {:.2})", args.field_t, level.log_snr),
        FieldChoice::Target => {
            format!("network output ({}) at t = {} (lambda {:.2})", objective.name(), args.field_t, level.log_snr)
        }
        _ => format!("{} at t = {} (lambda {:.2})", quantity.ascii_label(), args.field_t, level.log_snr),
    };
    let mut caption = vec![field_caption, format!("{}: faint; x_t: dots", lab.data.description)];
    if args.error_map {
        caption.push(match quantity {
            FieldQuantity::Target => format!("red: |learned - true| of the {} target", objective.name()),
            _ => "red: |eps_learned - eps_true|".into(),
        });
    }
    Ok(Figure {
        data: Some(&lab.data),
        cloud: Some(&cloud),
        heat: args.error_map.then_some((error.as_slice(), 24)),
        field: (args.field != FieldChoice::None).then_some(FieldLayer {
            values: learned.of(quantity),
            resolution: 24,
            quantity,
            sigma: level.sigma(),
        }),
        caption,
        ..Figure::default()
    }
    .render(PANEL))
}

/// The picture's right panel: the particles' paths and where they ended.
fn particles_panel(args: &Lab2dArgs, lab: &Lab, sampled: &Sampled) -> Picture {
    let (run, label) = (&sampled.run, sampled.request.sampler.label());
    Figure {
        data: Some(&lab.data),
        particles: Some((run, run.frames.len() - 1)),
        paths: true,
        caption: vec![
            match args.class {
                Some(c) => format!("{label}, class {c}, w = {}", args.guidance),
                None => format!("{label} from x_T"),
            },
            format!(
                "sliced W2 {:.3} (floor {:.3})",
                sampled.distances.sliced_wasserstein, sampled.floor.sliced_wasserstein
            ),
        ],
        ..Figure::default()
    }
    .render(PANEL)
}

/// `--gif`: one frame per step of the particles' run, the last held longer.
fn gif_frames(lab: &Lab, sampled: &Sampled) -> Vec<(Picture, u32)> {
    let run = &sampled.run;
    let last = run.frames.len() - 1;
    (0..=last)
        .map(|k| {
            let level = run.levels.get(k).map_or(0, |l| l.t);
            let picture = Figure {
                data: Some(&lab.data),
                particles: Some((run, k)),
                paths: true,
                caption: vec![format!("{}  step {k}/{last}  t = {level}", sampled.request.sampler.label())],
                ..Figure::default()
            }
            .render(PANEL / 3 * 2);
            (picture, if k == last { 2000 } else { 150 })
        })
        .collect()
}

/// `--csv`: (step, loss) of every training step, with the distances where they were measured.
fn csv_of(lab: &Lab) -> String {
    let mut csv = String::from("step,loss,sliced_wasserstein,energy_distance\n");
    let mut measured = lab.distances.iter().peekable();
    for (step, loss) in &lab.losses {
        let (sw, e) = match measured.peek() {
            Some((s, d)) if s == step => {
                let row = (d.sliced_wasserstein.to_string(), d.energy.to_string());
                measured.next();
                row
            }
            _ => (String::new(), String::new()),
        };
        csv.push_str(&format!("{step},{loss},{sw},{e}\n"));
    }
    csv
}

fn print_distances(what: &str, d: &Distances) {
    println!("{what}: sliced W₂ {:.4}, energy distance {:.4}", d.sliced_wasserstein, d.energy);
}
