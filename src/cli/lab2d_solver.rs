//! `lab2d --solver-bench`: every deterministic sampler against the exact probability-flow ODE solution of
//! the preset (`lab2d::solver_bench`), with the exact ε* and with the network trained by `lab2d`'s flags
//! (`--steps 0`: the exact ε* only). Prints `<name>: order <p>` per method, the reference, the table and the
//! stochastic samplers' distances; writes the log-log plot with `--out` and the table with `--csv`.

use super::lab2d::Lab2dArgs;
use super::*;
use diffusion_lab::lab2d::LAB2D_CHUNK;
use diffusion_lab::lab2d::data::PointData;
use diffusion_lab::lab2d::recipes::recipe_lab;
use diffusion_lab::lab2d::solver_bench::{BenchSettings, parse_step_range, solver_bench};
use diffusion_lab::lab2d::solver_figure::solver_figure;
use diffusion_lab::train::recipe::Recipe;

/// Pixels per side of the plot written with `--out`.
const PLOT_SIZE: usize = 640;

/// The bench's settings from the flags, checked before anything trains.
fn bench_settings(args: &Lab2dArgs, schedule: BetaSchedule) -> anyhow::Result<BenchSettings> {
    let steps = parse_step_range(&args.bench_steps).map_err(anyhow::Error::msg)?;
    let settings = BenchSettings { schedule, steps, particles: args.particles, seed: args.particle_seed };
    settings.validate()?;
    Ok(settings)
}

pub(super) fn solver_bench_command(
    args: &Lab2dArgs,
    data: PointData,
    recipe: Recipe,
    schedule: BetaSchedule,
    device: &Device,
) -> anyhow::Result<()> {
    let settings = bench_settings(args, schedule)?;
    println!(
        "lab2d --solver-bench: {} ({}), {} particles from seed {}, steps {:?}",
        args.preset, data.description, settings.particles, settings.seed, settings.steps
    );
    let lab = (args.steps > 0).then(|| {
        let mut lab = recipe_lab(data.clone(), recipe, args.steps, args.seed, device);
        while !lab.trainer.is_done() {
            lab.train_step();
        }
        println!(
            "trained the network ({}) for {} steps in {:.1} s",
            lab.trainer.recipe().label(),
            args.steps,
            lab.trainer.wall_seconds
        );
        lab
    });
    let model = lab.as_ref().map(|lab| (lab.model(), lab.trainer.step));
    let bench = solver_bench(&data.mixture, model.as_ref().map(|(m, s)| (m, *s)), &settings, device)?;
    for line in bench.order_lines() {
        println!("{line}");
    }
    if let Some(network) = &bench.network {
        for curve in &network.table.curves {
            let slope = curve.fit.map_or("n/a".into(), |f| format!("{:.2}", f.order));
            println!("{} with the network: slope {slope} (not an order: the network's error)", curve.method.name());
        }
    }
    for line in bench.table_lines() {
        println!("{line}");
    }
    if let Some(path) = &args.out {
        let text = serde_json::json!({ "preset": args.preset.name(), "train_steps": args.steps, "bench": bench });
        images::save_png(path, &solver_figure(&bench, PLOT_SIZE), &[(LAB2D_CHUNK.to_string(), text.to_string())])?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.csv {
        super::output::write_file(path, bench.csv().as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
