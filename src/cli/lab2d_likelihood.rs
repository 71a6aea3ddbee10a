//! `lab2d --likelihood`: the likelihood of fresh points of a preset's data four ways (`lab2d::likelihood`):
//! the true density, the probability-flow ODE with the exact score, the ODE with the trained network, and
//! the network's variational bound, in bits per dimension; `--csv` writes them point by point.

use std::time::Instant;

use super::*;
use diffusion_lab::lab2d::data::PointData;
use diffusion_lab::lab2d::likelihood::{Column, LikelihoodSettings, lab_likelihood};
use diffusion_lab::lab2d::recipes::recipe_lab;

use super::lab2d::Lab2dArgs;

#[derive(Args, Debug)]
pub struct LikelihoodArgs {
    /// Train the network, then print the likelihood of fresh points of the data in bits/dim: the true
    /// density, the probability-flow ODE with the exact score and with the network (exact divergence),
    /// and the network's variational bound (instead of the particles' run; --csv writes one row per point)
    #[arg(long, conflicts_with_all = ["recipes", "out", "gif", "figure", "class", "compare_steps", "error_map"])]
    pub likelihood: bool,
    /// --likelihood: points drawn afresh from the data's distribution to average over
    #[arg(long, default_value_t = 200, requires = "likelihood")]
    pub likelihood_points: usize,
    /// --likelihood: the bound's widest stratum of t (1: every t of the schedule summed)
    #[arg(long, default_value_t = 1, requires = "likelihood")]
    pub likelihood_stride: usize,
    /// --likelihood: relative and absolute tolerance of the network's ODE (its ε̂ is f32)
    #[arg(long, default_value_t = 1e-5, requires = "likelihood")]
    pub likelihood_tolerance: f64,
}

/// Trains the lab's network as `lab2d` does, then measures and prints the four likelihoods.
pub(super) fn likelihood(args: &Lab2dArgs, data: PointData, schedule: BetaSchedule) -> anyhow::Result<()> {
    let options = &args.likelihood;
    if options.likelihood_points == 0 || options.likelihood_stride == 0 {
        bail!("--likelihood-points and --likelihood-stride must be at least 1");
    }
    let device = Device::flex();
    let recipe = super::lab2d::recipe_of(
        args.objective.as_deref().unwrap_or("eps"),
        args.weighting.as_deref(),
        ["--objective", "--weighting"],
    )?;
    let settings = LikelihoodSettings {
        points: options.likelihood_points,
        bound_stride: options.likelihood_stride,
        network_tolerance: options.likelihood_tolerance,
        seed: args.seed.wrapping_add(101),
        ..LikelihoodSettings::full(schedule)
    };
    settings.check()?;
    let mut lab = recipe_lab(data, recipe, args.steps, args.seed, &device);
    let started = Instant::now();
    for _ in 0..args.steps {
        lab.train_step();
    }
    println!(
        "lab2d --likelihood: {} ({} points), recipe {}, trained {} steps in {:.1} s",
        args.preset,
        args.points,
        recipe.label(),
        args.steps,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let report = lab_likelihood(&lab, &settings, &device)?;
    println!(
        "the ODE from s = σ/α = 0 to the schedule's top s_T = {:.1} (ᾱ_T = {:.2e}); exact score: q_T at the top, \
         tolerance {:.0e}, {} evaluations; network: N(0, I) at the top, tolerance {:.0e}, {} evaluations; \
         bound: {} t per point; {:.1} s",
        report.s_top,
        report.alpha_bar_top,
        settings.exact_tolerance,
        report.exact_stats.evaluations,
        settings.network_tolerance,
        report.network_stats.evaluations,
        diffusion_lab::eval::nll::evaluated_steps(schedule.steps, settings.bound_stride, settings.seed).len(),
        started.elapsed().as_secs_f64()
    );
    for line in report.table_lines() {
        println!("{line}");
    }
    for column in [Column::OdeExact, Column::OdeNetwork] {
        if let Some([prior, jacobian, integral]) = report.flow_parts(column) {
            println!(
                "{}, mean over points: log p_0(x_0) = log p_T(x_T) + 2 ln α_T + ∫ ∇·f ds = {prior:.3} {jacobian:+.3} \
                 {integral:+.3} = {:.3} nats",
                column.label(),
                prior + jacobian + integral
            );
        }
    }
    let [prior, steps, decoder] = report.bound_parts();
    println!(
        "bound, network, mean over points: L_T + Σ L_t-1 + L_0 = {prior:.4} + {steps:.4} + {decoder:.4} = {:.4} bits/dim",
        prior + steps + decoder
    );
    println!("{}", report.gap_line());
    if let Some(path) = &args.csv {
        output::write_file(path, report.csv().as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
