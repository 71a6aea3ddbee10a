//! `lab2d`: the 2-D lab headless. Trains the point network on a preset, runs particles from x_T to the
//! data with any sampler, prints how far they land from the data (and the floor a perfect model would
//! score), and draws the field and the particles' paths as a PNG (and the run as a GIF).

use std::time::Instant;

use super::*;
use diffusion_lab::diffusion::NoiseLevel;
use diffusion_lab::lab2d::data::{DEFAULT_POINTS, PointData, Preset};
use diffusion_lab::lab2d::figure::{FieldLayer, Figure};
use diffusion_lab::lab2d::run::{
    FieldQuantity, FieldRequest, ParticleRequest, ParticleRun, field_error, learned_field, noised_points, true_field,
};
use diffusion_lab::lab2d::{Distances, LAB2D_CHUNK, Lab, spread};
use diffusion_lab::model::point_mlp::PointDenoiserConfig;
use diffusion_lab::train::points::default_point_train_config;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FieldChoice {
    /// ∇ log q_t = -ε̂ / σ_t: arrows towards the data.
    Score,
    /// ε̂: the noise the network sees, arrows away from the data.
    Epsilon,
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
    /// Optimizer steps (batches of 256 points).
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
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
}

/// Pixels per side of each panel of the picture.
const PANEL: usize = 480;

pub(super) fn lab2d(args: &Lab2dArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let schedule = args.schedule.beta_schedule_or(BetaSchedule::cosine(1000));
    let noise_schedule = schedule.build()?;
    let (data, sampler) = read_args(args, &noise_schedule)?;
    let config = default_point_train_config().with_steps(args.steps).with_seed(args.seed);
    let mut lab = Lab::new(data, config, PointDenoiserConfig::new(), &device);
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
        "lab2d: {} ({} points, {} class(es)), MLP of {params} weights, {} steps of {} points",
        args.preset, args.points, lab.data.class_count, args.steps, lab.trainer.config.batch_size
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
    let level = NoiseLevel::at(&noise_schedule, args.field_t);
    let field_request = FieldRequest { level, class: args.class, guidance: args.guidance, resolution: 24 };
    let learned = learned_field(&lab.model(), &field_request, &device)?;
    if let Some(path) = &args.out {
        let left = field_panel(args, &lab, &field_request, &learned)?;
        let right = particles_panel(args, &lab, &sampled);
        images::save_png(path, &images::grid(&[left, right], 2, 4), &settings_chunk(args, &sampled))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.gif {
        output::write_file(path, &images::gif_bytes(&gif_frames(&lab, &sampled))?)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.csv {
        output::write_file(path, csv_of(&lab).as_bytes())?;
        println!("wrote {}", path.display());
    }
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
fn settings_chunk(args: &Lab2dArgs, sampled: &Sampled) -> Vec<(String, String)> {
    let settings = serde_json::json!({
        "preset": args.preset.name(),
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
fn field_panel(
    args: &Lab2dArgs,
    lab: &Lab,
    field_request: &FieldRequest,
    learned: &[[f32; 2]],
) -> anyhow::Result<Picture> {
    let level = &field_request.level;
    let truth = true_field(&lab.data.mixture, field_request)?;
    let cloud = noised_points(&lab.data, level, args.seed);
    let quantity = match args.field {
        FieldChoice::Epsilon => FieldQuantity::Epsilon,
        _ => FieldQuantity::Score,
    };
    let error = field_error(learned, &truth);
    let field_caption = match args.field {
        FieldChoice::None => format!("x_t at t = {} (lambda = {:.2})", args.field_t, level.log_snr),
        _ => format!("{} at t = {} (lambda {:.2})", quantity.ascii_label(), args.field_t, level.log_snr),
    };
    let mut caption = vec![field_caption, format!("{}: faint; x_t: dots", lab.data.description)];
    if args.error_map {
        caption.push("red: |eps_learned - eps_true|".into());
    }
    Ok(Figure {
        data: Some(&lab.data),
        cloud: Some(&cloud),
        heat: args.error_map.then_some((error.as_slice(), 24)),
        field: (args.field != FieldChoice::None).then_some(FieldLayer {
            eps: learned,
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
