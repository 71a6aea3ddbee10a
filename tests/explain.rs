//! "This step": a recorded step taken apart must add up to the frame the run recorded next, for every
//! sampler, at its first, a middle and its last step (issue 20), and the parts it shows must be the run's.

mod common;

use burn::prelude::*;
use diffusion_lab::diffusion::{DdpmVariance, Method, Sampler};
use diffusion_lab::engine::Frame;
use diffusion_lab::model::checkpoint::Checkpoint;
use diffusion_lab::model::{LoadedUnet, ModelId, embedded};
use diffusion_lab::run::explain::{ExplainError, explain_step};
use diffusion_lab::run::generate::{GenerateRequest, RunHooks, run_generate};

fn pixel_model(device: &Device) -> LoadedUnet {
    let builtin = embedded::model_by_short_name("fashion").expect("the built-in pixel model");
    LoadedUnet::from_checkpoint(&Checkpoint::from_bytes(builtin.unet).unwrap(), device).unwrap()
}

fn request(sampler: Sampler) -> GenerateRequest {
    GenerateRequest {
        model: ModelId::BuiltIn("Fashion-MNIST (pixel UNet)".into()),
        schedule: diffusion_lab::diffusion::BetaSchedule::linear(1000),
        sampler,
        seed: 5,
        batch: 2,
        class: Some(7),
        prompt: None,
        guidance: 2.0,
        guidance_interval: None,
        guidance_method: Default::default(),
        init: None,
        interpolate: None,
        branch: None,
    }
}

fn record(model: &LoadedUnet, request: &GenerateRequest, device: &Device) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut emit = |frame: Frame| frames.push(frame);
    let keep_going = || true;
    run_generate(model, None, request, device, RunHooks { keep_going: &keep_going, stream: true, emit: &mut emit })
        .unwrap();
    frames
}

/// The largest difference relative to the values' size.
fn relative_difference(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    common::max_difference(a, b) / scale
}

#[test]
fn the_terms_of_every_sampler_add_up_to_the_recorded_next_frame() {
    let device = Device::flex();
    let model = pixel_model(&device);
    let samplers = [
        ("DDPM β̃", Sampler::ddpm(DdpmVariance::BetaTilde)),
        ("DDPM β", Sampler::ddpm(DdpmVariance::Beta)),
        ("DDIM η = 0", Sampler::ddim(6, 0.0)),
        ("DDIM η = 1", Sampler::ddim(6, 1.0)),
        ("Euler", Sampler::new(Method::Euler, 6)),
        ("Euler a", Sampler::new(Method::EulerAncestral, 6)),
        ("Heun", Sampler::new(Method::Heun, 6)),
        ("DPM++ 2M", Sampler::new(Method::DpmSolver2M, 6)),
        ("DPM++ 2M SDE", Sampler::new(Method::DpmSolver2MSde, 6)),
    ];
    for (name, sampler) in samplers {
        // DDPM visits all 1000 timesteps: a 20-step schedule keeps the test quick with the same arithmetic.
        let mut request = request(sampler);
        if sampler.method == Method::Ddpm {
            request.schedule = diffusion_lab::diffusion::BetaSchedule::linear(20);
        }
        let frames = record(&model, &request, &device);
        let steps = frames.len() - 1;
        for step in [0, steps / 2, steps - 1] {
            let (previous, frame) = (&frames[step], &frames[step + 1]);
            let explained = explain_step(&request, model.x0_bound(), previous, frame)
                .unwrap_or_else(|e| panic!("{name} step {step}: {e}"));
            assert_eq!(explained.step, step);
            let difference = relative_difference(&explained.x_next, &frame.x_t);
            assert!(difference < 1e-5, "{name}, step {step}: the terms miss the recorded x_t' by {difference}");
            // Not a sum that holds whatever the parts: the terms really are the step's pieces.
            // (The last step of DDPM and the DPM-Solvers lands on x̂_0 alone.)
            assert!(explained.terms.len() >= 2 || step + 1 == steps, "{name}: {} terms", explained.terms.len());
            assert_eq!(explained.x0_pred, *frame.x0_pred, "{name}: x̂_0 is the run's");
            assert_prints_what_it_used(&explained, &format!("{name} step {step}"));
            let schedule = request.schedule.build().unwrap();
            let stochastic = request.plan(&schedule).unwrap().0.needs_noise(step);
            let expected_stochastic =
                matches!(sampler.method, Method::Ddpm | Method::EulerAncestral | Method::DpmSolver2MSde)
                    || sampler.eta > 0.0;
            assert!(stochastic == expected_stochastic || step + 1 == steps, "{name} step {step}");
            assert_eq!(
                explained.terms.iter().any(|t| t.symbol == "z"),
                stochastic,
                "{name} step {step}: a noise term where the sampler adds noise"
            );
            // The guidance branches recombine into the guided ε̂: ε̂ = ε̂_∅ + w (ε̂_y - ε̂_∅).
            let (u, added) =
                (explained.eps_unconditional.as_ref().unwrap(), explained.guidance_added.as_ref().unwrap());
            let recombined: Vec<f32> = u.iter().zip(added).map(|(u, a)| u + a).collect();
            assert!(relative_difference(&recombined, &frame.eps) < 1e-5, "{name}: guidance parts");
        }
    }
}

/// Every number the equation prints is finite, and each coefficient it prints beside a term is the one
/// the step weighted that term by (the terms' sum is the recorded x_{t'}: checked by the callers).
fn assert_prints_what_it_used(explained: &diffusion_lab::run::explain::StepExplanation, what: &str) {
    let eq = &explained.equation;
    for n in eq.levels.iter().chain(&eq.numbers) {
        assert!(n.value.is_finite(), "{what}: {} = {}", n.name, n.value);
    }
    let printed: Vec<(&str, f64)> = eq.coefficients().filter(|(_, c)| *c != 0.0).collect();
    let used: Vec<(&str, f64)> = explained.terms.iter().map(|t| (t.symbol, t.coefficient)).collect();
    for (symbol, coefficient) in &used {
        assert!(printed.contains(&(*symbol, *coefficient)), "{what}: {symbol} × {coefficient}, printed {printed:?}");
    }
    assert_eq!(printed.len(), used.len(), "{what}: printed {printed:?}, used {used:?}");
}

/// The defaults a new user runs (DPM++ 2M, Karras, 20 steps): the last step into the clean image is
/// printed as the first-order step it is (x_{t'} = x̂_0, finite numbers), and a branch's first step keeps
/// its parent's plan and so is second order, with r taken from the parent's previous level.
#[test]
fn the_default_runs_last_step_and_a_branchs_first_step_print_what_they_did() {
    let device = Device::flex();
    let model = pixel_model(&device);
    let mut parent = request(diffusion_lab::model::denoise::DEFAULT_SAMPLER);
    parent.batch = 1;
    let frames = record(&model, &parent, &device);
    assert_eq!(frames.len(), 21, "x_T and 20 steps");
    let last = explain_step(&parent, model.x0_bound(), &frames[19], &frames[20]).unwrap();
    assert_eq!(last.equation.form, "x_{t'} = x̂_0");
    assert_prints_what_it_used(&last, "the last step");
    assert!(relative_difference(&last.x_next, &frames[20].x_t) < 1e-5);
    let text = diffusion_lab::run::explain::step_text(&last).join("\n");
    assert!(!["= inf", "= NaN", "= —"].iter().any(|bad| text.contains(bad)), "{text}");

    let branch = GenerateRequest {
        branch: Some(diffusion_lab::run::generate::Branch { parent: Box::new(parent.clone()), at_step: 10 }),
        ..parent.clone()
    };
    let branch_frames = record(&model, &branch, &device);
    let first = explain_step(&branch, model.x0_bound(), &branch_frames[0], &branch_frames[1]).unwrap();
    let in_parent = explain_step(&parent, model.x0_bound(), &frames[10], &frames[11]).unwrap();
    let r = |e: &diffusion_lab::run::explain::StepExplanation| {
        e.equation.numbers.iter().find(|n| n.name == "r").map(|n| n.value)
    };
    assert!(r(&first).is_some_and(f64::is_finite), "{:?}", first.equation);
    assert_eq!(r(&first), r(&in_parent), "the branch's first step is its parent's step 11");
    assert_eq!(first.equation, in_parent.equation);
    assert_prints_what_it_used(&first, "a branch's first step");
    assert!(relative_difference(&first.x_next, &branch_frames[1].x_t) < 1e-5);
}

#[test]
fn a_changed_part_no_longer_adds_up() {
    let device = Device::flex();
    let model = pixel_model(&device);
    let request = request(Sampler::new(Method::DpmSolver2MSde, 6));
    let frames = record(&model, &request, &device);
    let mut frame = frames[3].clone();
    let parts = frame.parts.as_mut().unwrap();
    let mut noise = parts.noise.as_deref().unwrap().clone();
    noise[10] += 1.0;
    parts.noise = Some(std::sync::Arc::new(noise));
    let explained = explain_step(&request, model.x0_bound(), &frames[2], &frame).unwrap();
    assert!(relative_difference(&explained.x_next, &frame.x_t) > 1e-3, "the sum follows the recorded z");
}

#[test]
fn steps_that_cannot_be_taken_apart_say_why() {
    let device = Device::flex();
    let model = pixel_model(&device);
    let request = request(Sampler::ddim(4, 0.0));
    let frames = record(&model, &request, &device);
    let bound = model.x0_bound();
    assert!(matches!(explain_step(&request, bound, &frames[0], &frames[0]), Err(ExplainError::Start)));
    assert!(matches!(explain_step(&request, bound, &frames[1], &frames[3]), Err(ExplainError::Thinned)));
    let unrecorded = Frame { parts: None, ..frames[2].clone() };
    assert!(matches!(explain_step(&request, bound, &frames[1], &unrecorded), Err(ExplainError::NotRecorded)));
}

#[test]
fn guidance_in_an_interval_is_w_inside_and_one_outside() {
    let device = Device::flex();
    let model = pixel_model(&device);
    let mut request = request(Sampler::ddim(10, 0.0));
    request.guidance_interval = Some([-3.0, 2.0]);
    let frames = record(&model, &request, &device);
    for pair in frames.windows(2) {
        let step_level = pair[0].log_snr;
        let parts = pair[1].parts.as_ref().unwrap();
        let expected = if (-3.0..=2.0).contains(&step_level) { 2.0 } else { 1.0 };
        assert_eq!(parts.guidance, expected, "λ = {step_level}");
        // Outside the interval only the conditional branch runs.
        assert_eq!(parts.unconditional.is_some(), expected != 1.0);
    }
    assert!(frames.windows(2).any(|p| p[1].parts.as_ref().unwrap().guidance == 1.0));
    assert!(frames.windows(2).any(|p| p[1].parts.as_ref().unwrap().guidance == 2.0));
    request.guidance_interval = Some([2.0, -3.0]);
    assert!(request.validate(10).is_err(), "an interval from high to low is refused");
}

/// A model of another objective: the conversion "This step" prints is the one the run used. Its
/// coefficients applied to the network's own output at the recorded x_t give the ε̂ the run recorded, and
/// the printed lines carry those numbers.
#[test]
fn the_conversion_shown_is_the_one_the_step_used() {
    use diffusion_lab::diffusion::Objective;
    use diffusion_lab::diffusion::equation::number_text;
    let device = Device::flex();
    for objective in [Objective::V, Objective::X0, Objective::Flow] {
        let config = diffusion_lab::model::UNetConfig::tiny().with_num_classes(10).with_objective(objective);
        let model = LoadedUnet {
            model: diffusion_lab::model::init_from_seed(&device, 3, || config.init(&device)),
            config,
            header: Checkpoint::from_bytes(embedded::model_by_short_name("fashion").unwrap().unet).unwrap().header,
            guide: None,
        };
        let mut request = request(Sampler::new(Method::DpmSolver2M, 5));
        request.guidance = 1.0;
        let frames = record(&model, &request, &device);
        for step in [0, 2, 4] {
            let (previous, frame) = (&frames[step], &frames[step + 1]);
            let explained = explain_step(&request, model.x0_bound(), previous, frame).unwrap();
            let schedule = request.schedule.build().unwrap();
            let plan = request.sampler.plan(&schedule).unwrap();
            let log_snr = plan.steps[step].log_snr;
            assert_eq!(explained.conversion, objective.conversion_at(log_snr), "{objective} step {step}");
            // The network's raw output at the recorded x_t, read through the shown coefficients.
            let x_t = Tensor::<4>::from_data(TensorData::new(previous.x_t.to_vec(), frame.shape), &device);
            let classes = Tensor::<1, Int>::full([frame.shape[0]], 7, &device);
            let lambda = Tensor::<1>::full([frame.shape[0]], log_snr, &device);
            let raw: Vec<f32> = model.model.forward(x_t, lambda, classes).into_data().try_to_vec().unwrap();
            let [a, b] = explained.conversion.eps;
            let eps: Vec<f32> =
                previous.x_t.iter().zip(&raw).map(|(x, p)| (a * f64::from(*x) + b * f64::from(*p)) as f32).collect();
            let difference = relative_difference(&eps, &frame.eps);
            assert!(difference < 1e-4, "{objective} step {step}: ε̂ from the shown coefficients is off by {difference}");
            let lines = explained.conversion.lines();
            assert!(lines[1].contains(&number_text(b.abs())), "{objective}: {lines:?} lacks {b}");
            let text = diffusion_lab::run::explain::step_text(&explained).join("\n");
            assert!(text.contains(&lines[1]) && text.contains(&lines[2]), "{objective}: {text}");
        }
    }
}
