//! `lab2d --guidance-bench`: the guidance methods against the exact p(x|y) (`lab2d::guidance_bench`).
//! Trains the point network on the preset (and, for autoguidance, its weaker guide), runs every method at
//! its handful of scales towards `--class` from the same x_T, with the network and with the exact scores,
//! prints one line per method × scale (distance to p(x|y), spread ratio), and writes the picture (`--out`)
//! and the table (`--csv`).

use std::time::Instant;

use super::lab2d::Lab2dArgs;
use super::*;
use diffusion_lab::diffusion::guidance::{
    ApgParams, DEFAULT_RESCALE_PHI, Guidance, GuidanceMethod, GuidanceParams, cfgpp_supports,
};
use diffusion_lab::lab2d::LAB2D_CHUNK;
use diffusion_lab::lab2d::data::PointData;
use diffusion_lab::lab2d::guidance_bench::{
    BenchNetworks, GuidanceBench, GuidanceBenchSettings, MethodScales, guidance_bench, train_guide,
};
use diffusion_lab::lab2d::guidance_figure::guidance_figure;
use diffusion_lab::lab2d::recipes::recipe_lab;
use diffusion_lab::train::recipe::Recipe;

/// Pixels per side of each cell of the picture.
const CELL: usize = 200;

#[derive(Args, Debug)]
pub struct GuidanceBenchArgs {
    /// Compare the guidance methods against the exact class-conditional density p(x|y) of the preset: each
    /// at a handful of scales towards --class (default 0) from the same x_T, with the trained network and
    /// with the exact scores; prints one line per method × scale (sliced W₂ and energy distance to p(x|y),
    /// spread ratio); --out writes the picture, --csv the table
    #[arg(long, conflicts_with_all = ["recipes", "likelihood", "solver_bench", "gif", "figure", "compare_steps", "error_map"])]
    pub guidance_bench: bool,
    /// The methods of --guidance-bench, comma-separated: cfg, rescale, apg, cfgpp, auto [default: all]
    #[arg(long, value_name = "METHODS", value_delimiter = ',', requires = "guidance_bench")]
    pub guidance_methods: Vec<String>,
    /// Rescale's φ in [0, 1] (Lin et al. 2024): how much of the rescaled ε̂ is mixed in
    #[arg(long, default_value_t = DEFAULT_RESCALE_PHI, requires = "guidance_bench")]
    pub rescale_phi: f64,
    /// APG's η in [0, 1] (Sadat et al. 2024): the weight of the update's part along x̂_y
    #[arg(long, default_value_t = ApgParams::default().eta, requires = "guidance_bench")]
    pub apg_eta: f64,
    /// APG's momentum β in (-1, 1)
    #[arg(long, default_value_t = ApgParams::default().momentum, allow_negative_numbers = true, requires = "guidance_bench")]
    pub apg_momentum: f64,
    /// APG's norm threshold r (0: no limit)
    #[arg(long, default_value_t = ApgParams::default().threshold, requires = "guidance_bench")]
    pub apg_threshold: f64,
    /// Training steps of autoguidance's weaker guide (the same network from the same seed) [default:
    /// --steps / 8, at least 100]
    #[arg(long, requires = "guidance_bench")]
    pub guide_steps: Option<u64>,
    /// Leave out the runs with the exact scores in place of the network
    #[arg(long, requires = "guidance_bench")]
    pub no_exact: bool,
}

/// The methods asked for with their parameters, each checked at its default scale (and CFG++ against the
/// sampler), before anything trains.
fn methods_of(args: &GuidanceBenchArgs, sampler: &Sampler) -> anyhow::Result<Vec<MethodScales>> {
    let methods: Vec<GuidanceMethod> = if args.guidance_methods.is_empty() {
        GuidanceMethod::ALL.to_vec()
    } else {
        let parsed = args.guidance_methods.iter().map(|m| m.parse::<GuidanceMethod>());
        parsed.collect::<Result<_, _>>().context("--guidance-methods")?
    };
    let apg = ApgParams { eta: args.apg_eta, momentum: args.apg_momentum, threshold: args.apg_threshold };
    methods
        .into_iter()
        .map(|method| {
            let params = GuidanceParams { method, rescale_phi: args.rescale_phi, apg };
            Guidance { scale: method.default_scale(), interval: None, params }.validate()?;
            if method == GuidanceMethod::CfgPlusPlus {
                cfgpp_supports(sampler.method)?;
            }
            Ok(MethodScales::of(params))
        })
        .collect()
}

/// `lab2d --guidance-bench`: trains, compares, prints, writes.
pub(super) fn guidance_bench_command(
    args: &Lab2dArgs,
    data: PointData,
    recipe: Recipe,
    (schedule, sampler): (BetaSchedule, Sampler),
    device: &Device,
) -> anyhow::Result<()> {
    let bench_args = &args.guidance_bench;
    let methods = methods_of(bench_args, &sampler)?;
    let class = args.class.unwrap_or(0);
    if class >= data.class_count {
        bail!(
            "--class {class}: the preset {} has {} class(es), 0..{}",
            args.preset,
            data.class_count,
            data.class_count
        );
    }
    let auto = methods.iter().any(|m| m.params.method == GuidanceMethod::Auto);
    let guide_steps =
        bench_args.guide_steps.unwrap_or_else(|| diffusion_lab::lab2d::guidance_bench::guide_steps(args.steps));
    if auto && guide_steps == 0 {
        bail!("--guide-steps 0: autoguidance needs a guide trained for at least one step");
    }
    println!(
        "lab2d: guidance methods on {} class {class} ({} points), network {} steps, recipe {}",
        args.preset,
        args.points,
        args.steps,
        recipe.label()
    );
    let started = Instant::now();
    let mut lab = recipe_lab(data.clone(), recipe, args.steps, args.seed, device);
    while !lab.trainer.is_done() {
        lab.train_step();
    }
    let guide = auto.then(|| train_guide(&data, recipe, guide_steps, args.seed, device));
    println!("trained in {:.1} s", started.elapsed().as_secs_f64());
    let settings = GuidanceBenchSettings {
        schedule,
        sampler,
        class,
        particles: args.particles,
        seed: args.particle_seed,
        methods,
        exact: !bench_args.no_exact,
    };
    let (model, guide_model) = (lab.model(), guide.as_ref().map(|g| (g.model(), g.trainer.step)));
    let networks = BenchNetworks { model: &model, guide: guide_model.as_ref().map(|(m, s)| (m, *s)) };
    let bench = guidance_bench(networks, &data.mixture, &settings, device)?;
    for line in bench.table_lines() {
        println!("{line}");
    }
    write_bench(args, &bench)
}

/// `--out` (the picture, its numbers in the PNG's text) and `--csv`.
fn write_bench(args: &Lab2dArgs, bench: &GuidanceBench) -> anyhow::Result<()> {
    if let Some(path) = &args.out {
        let settings = serde_json::json!({
            "preset": args.preset.name(),
            "points": args.points,
            "train_steps": args.steps,
            "seed": args.seed,
            "guidance_bench": bench.settings,
            "guide_steps": bench.guide_steps,
            "floor": {"sliced_wasserstein": bench.floor.sliced_wasserstein, "energy": bench.floor.energy},
            "true_spread": bench.true_spread,
            "table": bench.csv(),
        });
        images::save_png(path, &guidance_figure(bench, CELL), &[(LAB2D_CHUNK.to_string(), settings.to_string())])?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.csv {
        output::write_file(path, bench.csv().as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
