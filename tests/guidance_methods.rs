//! Guidance methods (issue 37, part 3) through the engine's loop and the command line: each method runs on
//! every kind of model's path, APG's momentum survives a branch, CFG++'s renoised update is taken apart by
//! "This step" exactly, the methods travel in PNG settings and back into the window's settings, the
//! built-in models' weaker guides load, and every bad setting is one clear line.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use burn::prelude::*;
use diffusion_lab::app::state::Settings;
use diffusion_lab::diffusion::guidance::{ApgParams, GuidanceMethod, GuidanceParams};
use diffusion_lab::diffusion::{Method, Sampler, Spacing};
use diffusion_lab::engine::Frame;
use diffusion_lab::engine::ModelSource;
use diffusion_lab::model::checkpoint::Checkpoint;
use diffusion_lab::model::{LoadedUnet, ModelId, UNetConfig};
use diffusion_lab::run::explain::explain_step;
use diffusion_lab::run::generate::{Branch, GenerateError, GenerateRequest, RunHooks, run_generate};
use diffusion_lab::run::models::{LoadedModel, ResolvedModel};
use diffusion_lab::run::png_settings::{request_from_png_text, settings_from_png, settings_text};

const COMMAND_LIMIT: Duration = Duration::from_secs(600);

fn diffusion_lab(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_diffusion-lab"));
    common::output_within(command.args(args), COMMAND_LIMIT, &format!("diffusion-lab {}", args.join(" ")))
}

/// An untrained tiny UNet on 8x8 pictures, and another of its kind (other weights) as its guide.
fn tiny_model(device: &Device) -> LoadedUnet {
    let dir = tempfile::tempdir().unwrap();
    let mut model =
        LoadedUnet::from_checkpoint(&Checkpoint::read(&common::tiny_unet_file(dir.path())).unwrap(), device).unwrap();
    let guide = diffusion_lab::model::init_from_seed(device, 11, || UNetConfig::tiny().with_image_size(8).init(device));
    model.guide = Some(Box::new(guide));
    model
}

fn request(sampler: Sampler, method: GuidanceMethod, scale: f64) -> GenerateRequest {
    GenerateRequest {
        model: ModelId::default_built_in(),
        schedule: diffusion_lab::diffusion::BetaSchedule::linear(1000),
        sampler,
        seed: 3,
        batch: 2,
        class: Some(1),
        prompt: None,
        guidance: scale,
        guidance_interval: None,
        guidance_method: GuidanceParams::of(method),
        init: None,
        interpolate: None,
        branch: None,
    }
}

fn record(model: &LoadedUnet, request: &GenerateRequest, device: &Device) -> Result<Vec<Frame>, GenerateError> {
    let mut frames = Vec::new();
    let mut emit = |frame: Frame| frames.push(frame);
    let keep_going = || true;
    run_generate(model, None, request, device, RunHooks { keep_going: &keep_going, stream: true, emit: &mut emit })?;
    Ok(frames)
}

#[test]
fn every_method_runs_on_the_samplers_it_allows_and_records_itself() {
    let device = Device::flex();
    let model = tiny_model(&device);
    let samplers = [
        Sampler::ddim(4, 0.0),
        Sampler::new(Method::EulerAncestral, 4),
        Sampler::new(Method::DpmSolver2M, 4).with_spacing(Spacing::Karras),
        Sampler::new(Method::Heun, 3),
    ];
    let cfg = record(&model, &request(samplers[0], GuidanceMethod::Cfg, 3.0), &device).unwrap();
    for method in GuidanceMethod::ALL {
        for sampler in samplers {
            if method == GuidanceMethod::CfgPlusPlus && sampler.method == Method::Heun {
                continue;
            }
            let scale = if method == GuidanceMethod::CfgPlusPlus { 0.6 } else { 3.0 };
            let frames = record(&model, &request(sampler, method, scale), &device).unwrap();
            let last = frames.last().unwrap();
            assert!(last.x_t.iter().all(|v| v.is_finite()), "{method} on {sampler:?}");
            assert_eq!(last.parts.as_ref().unwrap().method, method, "{method}: the step records its method");
            if sampler == samplers[0] && method != GuidanceMethod::Cfg {
                let off = common::max_difference(&last.x_t, &cfg.last().unwrap().x_t);
                assert!(off > 1e-4, "{method} ends where CFG does (by {off})");
            }
        }
    }
}

#[test]
fn apg_momentum_is_carried_through_a_branch() {
    let device = Device::flex();
    let model = tiny_model(&device);
    let mut parent = request(Sampler::ddim(8, 0.0), GuidanceMethod::Apg, 4.0);
    parent.guidance_method.apg = ApgParams { eta: 0.3, momentum: -0.75, threshold: 0.0 };
    let frames = record(&model, &parent, &device).unwrap();
    // The momentum matters: without it the run ends elsewhere.
    let mut no_momentum = parent.clone();
    no_momentum.guidance_method.apg.momentum = 0.0;
    let other = record(&model, &no_momentum, &device).unwrap();
    assert!(common::max_difference(&other[8].x_t, &frames[8].x_t) > 1e-4, "β changes the run");
    // A branch that changes nothing continues with the parent's running average: the same frames, exactly.
    let branch = GenerateRequest { branch: Some(Branch { parent: Box::new(parent.clone()), at_step: 4 }), ..parent };
    let continued = record(&model, &branch, &device).unwrap();
    assert_eq!(continued.len(), 5);
    for (i, frame) in continued.iter().enumerate() {
        assert!(frame.x_t == frames[4 + i].x_t, "frame {i} of the branch differs from the parent's");
    }
}

#[test]
fn this_step_takes_a_cfgpp_step_apart_exactly() {
    let device = Device::flex();
    let model = tiny_model(&device);
    for sampler in
        [Sampler::ddim(5, 0.0), Sampler::new(Method::DpmSolver2M, 5), Sampler::new(Method::EulerAncestral, 5)]
    {
        let request = request(sampler, GuidanceMethod::CfgPlusPlus, 0.6);
        let frames = record(&model, &request, &device).unwrap();
        for step in 0..5 {
            let explained = explain_step(&request, model.x0_bound(), &frames[step], &frames[step + 1]).unwrap();
            let off = common::max_difference(&explained.x_next, &frames[step + 1].x_t);
            assert!(off < 1e-4, "{sampler:?} step {step}: the terms miss x_t' by {off}");
            // Every step but the last (into σ = 0, where x_{t'} = x̂_0) renoises with ε̂_Ø.
            let renoised = explained.terms.iter().any(|t| t.symbol.starts_with("ε̂_Ø"));
            assert_eq!(renoised, step < 4, "{sampler:?} step {step}: CFG++ renoises with ε̂_Ø");
        }
    }
}

#[test]
fn autoguidance_without_a_weaker_model_is_refused() {
    let device = Device::flex();
    let mut model = tiny_model(&device);
    model.guide = None;
    let error = record(&model, &request(Sampler::ddim(3, 0.0), GuidanceMethod::Auto, 2.0), &device).unwrap_err();
    assert!(error.to_string().starts_with("autoguidance needs a weaker model of the same kind"), "{error}");
}

#[test]
fn methods_travel_in_png_settings_and_back_into_the_window() {
    let mut asked = request(Sampler::ddim(8, 0.0), GuidanceMethod::Apg, 5.0);
    asked.guidance_method.apg = ApgParams { eta: 0.25, momentum: -0.5, threshold: 4.0 };
    asked.guidance_interval = Some([-2.0, 3.0]);
    let text = settings_text(&asked, serde_json::json!({}));
    let restored = request_from_png_text(&text, "test").unwrap();
    assert_eq!(restored, asked);
    let mut settings = Settings::default();
    settings.apply_request(&restored);
    assert_eq!(settings.guidance_method, asked.guidance_method);
    assert_eq!(settings.request(false).guidance_settings(), asked.guidance_settings());
    // Plain CFG writes what it always wrote (no method key), and settings without one read as CFG.
    let cfg = request(Sampler::ddim(8, 0.0), GuidanceMethod::Cfg, 1.5);
    let json = &settings_text(&cfg, serde_json::json!({}))[0].1;
    assert!(!json.contains("guidance_method"), "{json}");
    assert_eq!(request_from_png_text(&settings_text(&cfg, serde_json::json!({})), "t").unwrap(), cfg);
    // A window setting out of range falls back to CFG with the reason.
    let mut bad = Settings { guidance_method: GuidanceParams::of(GuidanceMethod::Rescale), ..Settings::default() };
    bad.guidance_method.rescale_phi = 3.0;
    let fixed = bad.sanitize(10);
    assert!(fixed.iter().any(|f| f.starts_with("guidance method")), "{fixed:?}");
    assert!(bad.guidance_method.is_default());
}

#[test]
fn the_built_in_models_bring_an_earlier_checkpoint_as_their_guide() {
    let device = Device::flex();
    for name in ["fashion", "latent", "fashion-text"] {
        let resolved = ResolvedModel::named(name, None).unwrap();
        let guide = resolved.guide.as_ref().expect("a built-in model's guide");
        assert!(guide.header.step < resolved.unet.header.step, "{name}: the guide is an earlier checkpoint");
        assert_eq!(guide.header.kind, resolved.unet.header.kind, "{name}");
        let loaded = resolved.load(&device).unwrap();
        assert!(loaded.unet.guide.is_some(), "{name}: the guide loads with today's loader");
        // The window's engine loads the built-in model with its guide too.
        let builtin = diffusion_lab::model::embedded::model_by_short_name(name).unwrap();
        let autoencoder = builtin.autoencoder.map(ModelSource::Embedded);
        let engine = LoadedModel::load(&ModelSource::Embedded(builtin.unet), autoencoder.as_ref(), &device).unwrap();
        assert!(engine.unet.guide.is_some(), "{name}: the engine's model has its guide");
    }
}

#[test]
fn sample_runs_each_method_and_saves_it_in_the_png() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_unet_file(dir.path());
    let guide_dir = tempfile::tempdir().unwrap();
    let guide = common::tiny_unet_file(guide_dir.path());
    let out = dir.path().join("out");
    let (model, guide, out) = (model.to_str().unwrap(), guide.to_str().unwrap(), out.to_str().unwrap());
    let base = ["sample", "--model", model, "--class", "1", "--n", "2", "--sampling-steps", "3", "--device", "cpu"];
    let run = |extra: &[&str]| diffusion_lab(&[&base[..], &["--out-dir", out], extra].concat());
    let ran = run(&["--guidance-method", "apg", "--apg-momentum", "-0.5", "--apg-eta", "0.2"]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let saved = settings_from_png(&std::path::Path::new(out).join("00000-class1.png")).unwrap();
    assert_eq!(saved.guidance_method.method, GuidanceMethod::Apg);
    assert_eq!(saved.guidance_method.apg, ApgParams { eta: 0.2, momentum: -0.5, threshold: 2.5 });
    assert_eq!(saved.guidance, GuidanceMethod::Apg.default_scale(), "no --guidance: the method's default");
    let ran = run(&["--guidance-method", "auto", "--guide", guide, "--guidance", "2"]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let ran = run(&["--guidance-method", "cfgpp", "--sampler", "ddim"]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    // More images than one window batch (the sweep's n = 500) are checked as `sample` runs them.
    let many_png = dir.path().join("many.png");
    let many = ["sample", "--model", model, "--all-classes", "--n", "70", "--sampling-steps", "2", "--device", "cpu"];
    let ran =
        diffusion_lab(&[&many[..], &["--guidance-method", "rescale", "--grid", many_png.to_str().unwrap()]].concat());
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
}

#[test]
fn bad_guidance_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_unet_file(dir.path());
    let out = dir.path().join("out");
    let (model, out) = (model.to_str().unwrap(), out.to_str().unwrap());
    let base = ["sample", "--model", model, "--class", "1", "--n", "1", "--sampling-steps", "2", "--out-dir", out];
    let cases: [(&[&str], &str); 8] = [
        (&["--guidance-method", "pag"], "unknown guidance method `pag`: use one of cfg, rescale, apg, cfgpp, auto"),
        (
            &["--guidance-method", "rescale", "--guidance-rescale", "1.5"],
            "guidance rescale φ must be in [0, 1], got 1.5",
        ),
        (&["--guidance=-1"], "guidance must be a finite number of at least 0, got -1"),
        (&["--guidance-method", "cfgpp", "--guidance", "2"], "CFG++'s guidance λ must be in [0, 1], got 2"),
        (&["--guidance-method", "cfgpp", "--sampler", "heun"], "CFG++ cannot run on Heun: Heun's second evaluation"),
        (&["--guidance-method", "auto"], "autoguidance needs a weaker model of the same kind"),
        (&["--guidance-method", "apg", "--apg-momentum", "1.5"], "APG's momentum β must be in (-1, 1), got 1.5"),
        (&["--guidance-interval", "2,-1"], "the interval must go from low to high λ, got 2 to -1"),
    ];
    for (flags, message) in cases {
        let ran = diffusion_lab(&[&base[..], flags].concat());
        let stderr = String::from_utf8_lossy(&ran.stderr);
        assert!(!ran.status.success(), "{flags:?} ran");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
        let line = stderr.lines().find(|l| l.contains(message)).unwrap_or_default();
        assert!(line.len() < 240, "{flags:?}: one line: {line}");
    }
    // A guide of another kind is named with why.
    let other = tempfile::tempdir().unwrap();
    let classifier = other.path().join("not-a-unet.dlab");
    std::fs::write(&classifier, diffusion_lab::model::embedded::FASHION_CLASSIFIER).unwrap();
    let ran =
        diffusion_lab(&[&base[..], &["--guidance-method", "auto", "--guide", classifier.to_str().unwrap()]].concat());
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(!ran.status.success() && stderr.contains("cannot guide with"), "{stderr}");
}

#[test]
fn this_step_shows_each_methods_formula_with_the_numbers_it_used() {
    let device = Device::flex();
    let model = tiny_model(&device);
    for method in GuidanceMethod::ALL {
        let scale = if method == GuidanceMethod::CfgPlusPlus { 0.6 } else { 3.5 };
        let mut request = request(Sampler::ddim(5, 0.0), method, scale);
        request.guidance_method.rescale_phi = 0.6;
        request.guidance_method.apg = ApgParams { eta: 0.4, momentum: -0.5, threshold: 0.5 };
        let frames = record(&model, &request, &device).unwrap();
        for step in [0, 3] {
            let explained = explain_step(&request, model.x0_bound(), &frames[step], &frames[step + 1]).unwrap();
            let shown = &explained.guidance_explained;
            assert_eq!(shown.method, method);
            // ε̂ made again from the recorded branches by the formula shown is the ε̂ the step used.
            let again = shown.eps.as_ref().expect("both branches ran");
            let off = common::max_difference(again, &frames[step + 1].eps);
            assert!(off < 1e-4, "{method} step {step}: the formula's ε̂ is {off} off the one used");
            let text = shown.lines.join("\n");
            let scale_shown = if method == GuidanceMethod::CfgPlusPlus { "λ = 0.6" } else { "w = 3.5" };
            assert!(text.contains(scale_shown), "{method}: {text}");
            match method {
                GuidanceMethod::Rescale => {
                    assert!(text.contains("φ = 0.6") && text.contains("σ(x_y)/σ(x_cfg)"), "{text}")
                }
                GuidanceMethod::Apg => {
                    for number in ["η = 0.4", "β = -0.5", "r = 0.5"] {
                        assert!(text.contains(number), "{number}: {text}");
                    }
                    let momentum = if step == 0 { "no Δ_prev yet" } else { "β Δ_prev added" };
                    assert!(text.contains(momentum), "{method} step {step}: {text}");
                }
                GuidanceMethod::Auto => assert!(text.contains("ε̂_weak"), "{text}"),
                GuidanceMethod::CfgPlusPlus => assert!(text.contains("renoises x̂_0 with ε̂_Ø"), "{text}"),
                GuidanceMethod::Cfg => assert!(text.contains("ε̂ = ε̂_Ø + w (ε̂_y - ε̂_Ø)"), "{text}"),
            }
        }
    }
}
