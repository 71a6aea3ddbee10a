//! `eval --nll --ode`: the variational bound and the likelihood under the probability-flow ODE of the same
//! test images, side by side in bits per dimension with their standard errors over images.

use super::eval::{EvalArgs, model_and_test_values, nll_options, print_bound};
use super::*;
use diffusion_lab::diffusion::flow_likelihood::mean_and_standard_error;
use diffusion_lab::diffusion::ode::Tolerance;
use diffusion_lab::eval::nll::{self, DataKind};
use diffusion_lab::eval::ode_nll::{self, FlowSolver, ImageLikelihood, OdeNllOptions};

/// Heun steps of the ODE by default, uniform in λ: chosen by `--ode-check` against the adaptive solver
/// (README: the likelihood by the ODE).
pub const DEFAULT_ODE_STEPS: usize = 64;

#[derive(Args, Debug)]
pub struct OdeArgs {
    /// With --nll: also the log-likelihood of the same images under the model's probability-flow ODE (Song et
    /// al. 2021; dequantised 8-bit data, Hutchinson's trace estimator with one Rademacher probe per image),
    /// printed beside the bound, both in bits per dimension with their standard errors.
    #[arg(long)]
    pub ode: bool,
    /// --ode: Heun steps, uniform in λ from the schedule's first level to its last (two network evaluations
    /// each, each a forward pass and a vector–Jacobian product) [default: 64].
    #[arg(long)]
    pub ode_steps: Option<usize>,
    /// --ode: first solve this many of the images by the adaptive Dormand–Prince solver too and print how far
    /// the Heun steps land from it, in bits per dimension.
    #[arg(long, default_value_t = 0)]
    pub ode_check: usize,
    /// --ode-check: the adaptive solver's relative and absolute tolerance.
    #[arg(long, default_value_t = 1e-4)]
    pub ode_tolerance: f64,
}

impl OdeArgs {
    /// --ode's flags without --nll, or values it cannot run, refused in one line each.
    pub(super) fn check(&self, nll: bool) -> anyhow::Result<()> {
        let given = self.ode_steps.is_some() || self.ode_check > 0;
        if self.ode && !nll {
            bail!("--ode computes the ODE likelihood beside the bound: give it with --nll");
        }
        if given && !self.ode {
            bail!("--ode-steps and --ode-check go with --nll --ode");
        }
        if self.ode_steps == Some(0) {
            bail!("--ode-steps must be at least 1");
        }
        if !(self.ode_tolerance > 0.0 && self.ode_tolerance < 1.0) {
            bail!("--ode-tolerance must be in (0, 1), not {}", self.ode_tolerance);
        }
        Ok(())
    }
}

/// `eval --nll --ode`: the bound (as `--nll` prints it), the ODE check if asked, the ODE likelihood, then
/// both side by side with the paired difference; `--csv`: each image's two numbers.
pub(super) fn nll_ode_table(args: &EvalArgs, device: &Device) -> anyhow::Result<()> {
    let (model, schedule, test) = model_and_test_values(args, device)?;
    let options = nll_options(args, &model, test.kind);
    let started = std::time::Instant::now();
    let bar = progress_bar(0, 0);
    let sums = nll::bound(&model, &schedule, &test.values, &test.labels, test.dims, &options, device, |d, t| {
        bar.set_length(t as u64);
        bar.set_position(d as u64);
    })?;
    bar.finish_and_clear();
    let bound_seconds = started.elapsed().as_secs_f64();
    print_bound(args, &model, &options, &sums, &schedule, test.labels.len())?;
    let steps = args.ode.ode_steps.unwrap_or(DEFAULT_ODE_STEPS);
    let ode_options =
        |solver| OdeNllOptions { seed: 13, conditional: args.conditional, kind: test.kind, batch: 25, solver };
    let run = |solver, count: usize| -> anyhow::Result<Vec<ImageLikelihood>> {
        let size: usize = test.dims.iter().product();
        let bar = progress_bar(count as u64, 0);
        let values = &test.values[..count * size];
        let labels = &test.labels[..count];
        let result = ode_nll::ode_likelihood(
            &model,
            &schedule,
            values,
            labels,
            test.dims,
            &ode_options(solver),
            device,
            |d, _| bar.set_position(d as u64),
        )?;
        bar.finish_and_clear();
        Ok(result)
    };
    let heun = FlowSolver::Heun { steps };
    if args.ode.ode_check > 0 {
        let count = args.ode.ode_check.min(test.labels.len());
        let tolerance = Tolerance { relative: args.ode.ode_tolerance, absolute: args.ode.ode_tolerance };
        let adaptive = run(FlowSolver::Adaptive(tolerance), count)?;
        let fixed = run(heun, count)?;
        let differences: Vec<f64> = fixed.iter().zip(&adaptive).map(|(a, b)| a.bits - b.bits).collect();
        let worst = differences.iter().fold(0.0f64, |m, d| m.max(d.abs()));
        let (mean, _) = mean_and_standard_error(&differences);
        let reference = mean_and_standard_error(&adaptive.iter().map(|a| a.bits).collect::<Vec<_>>()).0;
        println!(
            "ODE check on {count} images: Heun ({steps} steps, {} evaluations) − adaptive Dormand–Prince \
             (tolerance {}, {} evaluations, {reference:.4} bits/dim): mean {mean:+.4}, largest {worst:.4} bits/dim",
            fixed[0].evaluations, args.ode.ode_tolerance, adaptive[0].evaluations
        );
    }
    let started = std::time::Instant::now();
    let ode = run(heun, test.labels.len())?;
    let ode_seconds = started.elapsed().as_secs_f64();
    let ode_bits: Vec<f64> = ode.iter().map(|o| o.bits).collect();
    print_side_by_side(args, &sums.example_bits, &ode_bits, steps, test.kind, [bound_seconds, ode_seconds])?;
    if let Some(path) = &args.csv {
        let mut csv = String::from("image,label,bound_bits,ode_bits\n");
        for (i, (bound, ode)) in sums.example_bits.iter().zip(&ode_bits).enumerate() {
            let label = test.labels[i].map_or(String::new(), |l| l.to_string());
            csv.push_str(&format!("{i},{label},{bound},{ode}\n"));
        }
        output::write_file(path, csv.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The two likelihoods' table and their paired difference.
fn print_side_by_side(
    args: &EvalArgs,
    bound: &[f64],
    ode: &[f64],
    steps: usize,
    kind: DataKind,
    [bound_seconds, ode_seconds]: [f64; 2],
) -> anyhow::Result<()> {
    if bound.len() != ode.len() || bound.is_empty() {
        bail!("the bound covers {} images and the ODE {}", bound.len(), ode.len());
    }
    let unit = match kind {
        DataKind::Pixels8Bit => {
            "bits per pixel of the 8-bit images (the ODE's: of their dequantised values + log₂ 127.5)"
        }
        DataKind::Continuous => "bits per latent dimension (densities of continuous latents)",
    };
    let (bound_mean, bound_se) = mean_and_standard_error(bound);
    let (ode_mean, ode_se) = mean_and_standard_error(ode);
    let differences: Vec<f64> = bound.iter().zip(ode).map(|(b, o)| b - o).collect();
    let (gap, gap_se) = mean_and_standard_error(&differences);
    let condition = if args.conditional { "given the label" } else { "unconditional" };
    println!("{}: n = {} test images, {condition}, {unit}", args.model, bound.len());
    println!("| likelihood | bits/dim | standard error | wall time |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| variational bound (Ho et al. eq. 5) | {bound_mean:.4} | {bound_se:.4} | {bound_seconds:.1} s |");
    println!(
        "| probability-flow ODE (Song et al. 2021; Heun, {steps} steps in λ; Hutchinson) | {ode_mean:.4} | {ode_se:.4} | \
         {ode_seconds:.1} s |"
    );
    println!("bound − ODE, paired over images: {gap:.4} ± {gap_se:.4} bits/dim");
    Ok(())
}
