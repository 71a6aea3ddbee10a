//! "Continue from here" (issue 22): a run continued from a recorded step of another. A branch that changes
//! nothing reproduces its parent's frames from that step on, exactly, for every sampler (the stochastic
//! ones with the parent's seed); one that changes something starts from the parent's x_t and differs only
//! after it.

mod common;

use burn::prelude::*;
use diffusion_lab::diffusion::{BetaSchedule, DdpmVariance, Method, Sampler, Spacing};
use diffusion_lab::engine::Frame;
use diffusion_lab::model::checkpoint::Checkpoint;
use diffusion_lab::model::{LoadedUnet, ModelId, embedded};
use diffusion_lab::run::explain::explain_step;
use diffusion_lab::run::generate::{Branch, GenerateError, GenerateRequest, RunHooks, run_generate};
use diffusion_lab::run::png_settings::{request_from_png_text, settings_text};

fn pixel_model(device: &Device) -> LoadedUnet {
    let builtin = embedded::model_by_short_name("fashion").expect("the built-in pixel model");
    LoadedUnet::from_checkpoint(&Checkpoint::from_bytes(builtin.unet).unwrap(), device).unwrap()
}

fn request(sampler: Sampler) -> GenerateRequest {
    let schedule = match sampler.method {
        // DDPM visits every timestep: 20 of them keep the test quick with the same arithmetic.
        Method::Ddpm => BetaSchedule::linear(20),
        _ => BetaSchedule::cosine(1000),
    };
    GenerateRequest {
        model: ModelId::default_built_in(),
        schedule,
        sampler,
        seed: 5,
        batch: 2,
        class: Some(9),
        prompt: None,
        guidance: 2.0,
        guidance_interval: None,
        guidance_method: Default::default(),
        init: None,
        interpolate: None,
        branch: None,
    }
}

/// `parent` continued from its frame `at_step` with nothing changed.
fn branch_of(parent: &GenerateRequest, at_step: usize) -> GenerateRequest {
    GenerateRequest { branch: Some(Branch { parent: Box::new(parent.clone()), at_step }), ..parent.clone() }
}

fn record(model: &LoadedUnet, request: &GenerateRequest, device: &Device) -> Result<Vec<Frame>, GenerateError> {
    let mut frames = Vec::new();
    let mut emit = |frame: Frame| frames.push(frame);
    let keep_going = || true;
    run_generate(model, None, request, device, RunHooks { keep_going: &keep_going, stream: true, emit: &mut emit })?;
    Ok(frames)
}

fn assert_same_frame(branch: &Frame, parent: &Frame, what: &str) {
    assert_eq!((branch.t, branch.log_snr), (parent.t, parent.log_snr), "{what}: the level");
    assert!(branch.x_t == parent.x_t, "{what}: x_t differs by {}", common::max_difference(&branch.x_t, &parent.x_t));
    if branch.index > 0 {
        assert!(branch.x0_pred == parent.x0_pred, "{what}: x̂_0");
        assert!(branch.eps == parent.eps, "{what}: ε̂");
    }
}

#[test]
fn a_branch_that_changes_nothing_reproduces_its_parent_from_its_step() {
    let device = Device::flex();
    let model = pixel_model(&device);
    let samplers = [
        ("DDIM η = 0", Sampler::ddim(8, 0.0)),
        ("DPM++ 2M Karras", Sampler::new(Method::DpmSolver2M, 8).with_spacing(Spacing::Karras)),
        ("Heun", Sampler::new(Method::Heun, 4)),
        // Stochastic: the parent's seed, so the branch draws what the parent drew.
        ("DDIM η = 1", Sampler::ddim(8, 1.0)),
        ("Euler a", Sampler::new(Method::EulerAncestral, 8)),
        ("DPM++ 2M SDE", Sampler::new(Method::DpmSolver2MSde, 8)),
        ("DDPM", Sampler::ddpm(DdpmVariance::BetaTilde)),
    ];
    for (name, sampler) in samplers {
        let parent = request(sampler);
        let frames = record(&model, &parent, &device).unwrap();
        let steps = frames.len() - 1;
        for at_step in [0, steps / 2, steps - 1] {
            let branch = record(&model, &branch_of(&parent, at_step), &device).unwrap();
            assert_eq!(branch.len(), steps - at_step + 1, "{name} from step {at_step}: one frame per step left");
            for (i, frame) in branch.iter().enumerate() {
                assert_same_frame(frame, &frames[at_step + i], &format!("{name} from step {at_step}, frame {i}"));
            }
        }
    }
}

#[test]
fn a_branch_starts_from_its_parents_x_t_and_changes_only_what_follows() {
    let device = Device::flex();
    let model = pixel_model(&device);
    let parent = request(Sampler::new(Method::DpmSolver2M, 10).with_spacing(Spacing::Karras));
    let frames = record(&model, &parent, &device).unwrap();
    let at_step = 4;

    // Another class, the same plan: the rest of the parent's steps, the multistep solver's x̂_0 carried.
    let boot = GenerateRequest { class: Some(7), ..branch_of(&parent, at_step) };
    let branch = record(&model, &boot, &device).unwrap();
    assert_eq!(branch.len(), 7);
    assert_same_frame(&branch[0], &frames[at_step], "the branch's first frame");
    assert!(branch[0].x0_pred == frames[at_step].x0_pred, "it carries the parent's x̂_0 into its first step");
    assert!(common::max_difference(&branch[6].x_t, &frames[10].x_t) > 0.1, "another class ends elsewhere");
    // "This step" takes the branch's first step apart, the carried x̂_0 included.
    let explained = explain_step(&boot, model.x0_bound(), &branch[0], &branch[1]).unwrap();
    let off = common::max_difference(&explained.x_next, &branch[1].x_t);
    assert!(off < 1e-4, "the terms of the branch's first step miss its x_t' by {off}");

    // Another sampler: planned afresh from the parent's level at that step.
    let ddim = GenerateRequest { sampler: Sampler::ddim(5, 0.0), ..branch_of(&parent, at_step) };
    let branch = record(&model, &ddim, &device).unwrap();
    assert_eq!(branch.len(), 6, "the branch's own 5 steps");
    assert_same_frame(&branch[0], &frames[at_step], "a replanned branch's first frame");
    assert_eq!(branch[5].t, 0);
    assert!(branch.windows(2).all(|w| w[0].log_snr < w[1].log_snr), "its levels fall from the parent's");

    // A stochastic branch with a fresh seed draws other noise; with the parent's seed it is the parent.
    let euler = request(Sampler::new(Method::EulerAncestral, 8));
    let frames = record(&model, &euler, &device).unwrap();
    let reseeded = record(&model, &GenerateRequest { seed: 6, ..branch_of(&euler, 3) }, &device).unwrap();
    assert_same_frame(&reseeded[0], &frames[3], "a reseeded branch's first frame");
    assert!(common::max_difference(&reseeded[5].x_t, &frames[8].x_t) > 0.01, "fresh noise, another end");

    // A branch of a branch that changes nothing is still the first run.
    let twice = branch_of(&branch_of(&euler, 3), 2);
    let again = record(&model, &twice, &device).unwrap();
    assert_same_frame(&again[0], &frames[5], "a branch of a branch");
    assert_same_frame(again.last().unwrap(), &frames[8], "a branch of a branch's end");
}

#[test]
fn a_branch_travels_in_png_settings() {
    let parent = request(Sampler::ddim(8, 0.0));
    let branch = GenerateRequest { class: Some(3), guidance: 4.0, ..branch_of(&parent, 5) };
    let text = settings_text(&branch, serde_json::json!({}));
    assert_eq!(request_from_png_text(&text, "test").unwrap(), branch);
}

#[test]
fn bad_branches_are_refused_with_the_reason() {
    let device = Device::flex();
    let model = pixel_model(&device);
    let parent = request(Sampler::ddim(8, 0.0));
    let message = |request: &GenerateRequest| match record(&model, request, &device) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{request:?} ran"),
    };
    let past_the_end = message(&branch_of(&parent, 8));
    assert!(past_the_end.contains("step 8 is not before the end of its run, which has 8 steps"), "{past_the_end}");
    let batch = message(&GenerateRequest { batch: 3, ..branch_of(&parent, 2) });
    assert!(batch.contains("keeps its parent's model, schedule, batch"), "{batch}");
    let mut deep = parent.clone();
    for _ in 0..17 {
        deep = branch_of(&deep, 0);
    }
    assert!(message(&deep).contains("at most 16 deep"));
    let bad_parent = branch_of(&GenerateRequest { class: Some(12), ..parent.clone() }, 1);
    assert!(message(&GenerateRequest { class: Some(1), ..bad_parent }).contains("class 12 does not exist"));
}
