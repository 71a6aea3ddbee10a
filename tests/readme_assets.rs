//! Regenerates the README's animation with the app's own export code, driving the window through egui_kittest:
//! `cargo test --release --test readme_assets -- --ignored`. Ignored by default: it runs a full
//! generation with the embedded model (minutes on a CPU).

use std::time::{Duration, Instant};

use diffusion_lab::app::state::{Quantity, RunStatus, Settings};
use diffusion_lab::app::{LabApp, export};
use diffusion_lab::diffusion::Sampler;
use diffusion_lab::engine::{DeviceChoice, Engine};
use eframe::egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// Runs `settings` in the window to the end and returns the app.
fn run_in_window(settings: Settings) -> Harness<'static, LabApp> {
    let app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), settings);
    let mut harness =
        Harness::builder().with_size([1280.0, 860.0]).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    let deadline = Instant::now() + Duration::from_secs(1800);
    while harness.state().model_info().is_none() {
        assert!(Instant::now() < deadline, "timed out waiting for the model to load");
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    harness.step();
    while !matches!(harness.state().generate.run, RunStatus::Finished { .. } | RunStatus::Failed(_)) {
        assert!(Instant::now() < deadline, "timed out waiting for the generation to end");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    // A latent run's frames are decoded after the run (the decode backlog): wait for all of them.
    let undecoded = |app: &LabApp| {
        app.generate.viewer.trajectory.as_ref().is_some_and(|t| {
            app.model_info().is_some_and(|m| m.is_latent) && t.frames.iter().any(|f| f.decoded.is_none())
        })
    };
    while undecoded(harness.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for the frames to be decoded");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness
}

/// Steps the window until `done` holds (or `deadline` passes), then three frames more for it to settle.
fn step_until_by(
    harness: &mut Harness<'static, LabApp>,
    deadline: Instant,
    what: &str,
    done: &dyn Fn(&LabApp) -> bool,
) {
    while !done(harness.state()) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.run_steps(3);
}

fn readme_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/readme");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
#[ignore = "writes assets/readme/; run by hand after the embedded model changes"]
fn readme_animation_and_filmstrip() {
    let settings = Settings { batch: 16, class: None, sampler: Sampler::ddim(60, 0.0), seed: 3, ..Settings::default() };
    let harness = run_in_window(settings);
    let app = harness.state();
    let trajectory = app.generate.viewer.trajectory.as_ref().expect("a run");
    let dir = readme_dir();
    export::save_animation_to(
        &dir.join("denoising.gif"),
        trajectory,
        app.ctx.settings.quantity,
        app.ctx.settings.color_map,
        2,
    )
    .unwrap();
    export::save_filmstrip_to(
        &dir.join("filmstrip.png"),
        trajectory,
        10,
        app.ctx.settings.quantity,
        app.ctx.settings.color_map,
        3,
    )
    .unwrap();
}

#[test]
#[ignore = "writes assets/readme/; run by hand after the embedded model changes"]
fn readme_latent_filmstrip() {
    let settings = Settings {
        model: "Fashion-MNIST (latent UNet)".into(),
        batch: 10,
        class: None,
        sampler: Sampler::ddim(60, 0.0),
        seed: 3,
        ..Settings::default()
    };
    let harness = run_in_window(settings);
    let app = harness.state();
    let trajectory = app.generate.viewer.trajectory.as_ref().expect("a run");
    assert!(trajectory.frames.iter().all(|f| f.decoded.is_some()), "latent frames come decoded");
    let dir = readme_dir();
    // D(z_t) at ten timesteps, then the raw latent channels z_t.
    export::save_filmstrip_to(
        &dir.join("latent-filmstrip.png"),
        trajectory,
        10,
        Quantity::Noisy,
        app.ctx.settings.color_map,
        3,
    )
    .unwrap();
    export::save_filmstrip_to(
        &dir.join("latent-channels.png"),
        trajectory,
        10,
        Quantity::LatentChannels,
        app.ctx.settings.color_map,
        3,
    )
    .unwrap();
}

/// The Schedule panel's terminal-signal warning (sigmoid, T = 300: the example), with the Forward
/// process panel at t = T beside pure noise, after a run under that schedule: rendered by egui_kittest.
#[test]
#[ignore = "writes assets/readme/; run by hand after the schedule panel changes"]
fn readme_terminal_signal_warning() {
    let schedule =
        diffusion_lab::diffusion::BetaSchedule::default_for(diffusion_lab::diffusion::ScheduleKind::Sigmoid, 300);
    let settings = Settings { schedule, batch: 16, class: Some(3), seed: 2, ..Settings::default() };
    let mut harness = run_in_window(settings);
    harness.state_mut().ctx.fashion_mnist_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist");
    harness.state_mut().forward.test_index = 3;
    harness.get_by_label("Show x_T next to pure noise").click();
    let deadline = Instant::now() + Duration::from_secs(60);
    while harness.state().forward.x_t.as_ref().is_none_or(|(t, ..)| *t != 300) {
        assert!(Instant::now() < deadline, "timed out waiting for x_T (t = 300) to arrive");
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.run_steps(4);
    let image = harness.render().unwrap();
    image.save(readme_dir().join("window-terminal-warning.png")).unwrap();
}

/// "This step" beside a run in progress, then the cross-attention overlay and the Forward panel's posterior
/// after it: the README's pictures of issue 20, rendered by egui_kittest.
#[test]
#[ignore = "writes assets/readme/; run by hand after This step, the overlays or the posterior panel change"]
fn readme_this_step_attention_and_posterior() {
    use diffusion_lab::app::state::Overlay;
    let settings = Settings {
        batch: 4,
        class: Some(7),
        seed: 11,
        sampler: Sampler::ddim(50, 0.0),
        this_step: true,
        ..Settings::default()
    };
    let app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), settings);
    let mut harness =
        Harness::builder().with_size([1600.0, 1000.0]).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    let deadline = Instant::now() + Duration::from_secs(1800);
    let step_until = |harness: &mut Harness<'static, LabApp>, what: &str, done: &dyn Fn(&LabApp) -> bool| {
        step_until_by(harness, deadline, what, done)
    };
    step_until(&mut harness, "the model loads", &|app| app.model_info().is_some());
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "half the run arrives", &|app| {
        app.generate.viewer.trajectory.as_ref().is_some_and(|t| t.frames.len() > 25)
    });
    harness.state_mut().ctx.settings.overlay = Overlay::Guidance;
    harness.run_steps(3);
    harness.render().unwrap().save(readme_dir().join("this-step-mid-run.png")).unwrap();

    step_until(&mut harness, "the run finishes", &|app| matches!(app.generate.run, RunStatus::Finished { .. }));
    harness.state_mut().ctx.settings.this_step = false;
    harness.state_mut().ctx.settings.overlay = Overlay::Attention;
    harness.state_mut().ctx.settings.zoom = 8.0;
    harness.state_mut().ctx.settings.attention.summed = true;
    harness.state_mut().ctx.settings.attention.layer = 2;
    step_until(&mut harness, "the attention arrives", &|app| {
        app.generate.viewer.step.attention_ready(app.generate.viewer.serial)
    });
    harness.render().unwrap().save(readme_dir().join("attention-overlay.png")).unwrap();

    harness.state_mut().ctx.settings.overlay = Overlay::Off;
    harness.state_mut().ctx.fashion_mnist_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist");
    harness.state_mut().forward.test_index = 3;
    harness.state_mut().forward.posterior.open = true;
    harness.get_by_label("Forward process").click();
    step_until(&mut harness, "x_0 loads", &|app| app.forward.x0.is_some());
    harness.state_mut().forward.t = 300;
    step_until(&mut harness, "the posterior and its KL curve arrive", &|app| {
        app.forward.posterior.view.as_ref().is_some_and(|v| v.t == 300) && !app.forward.posterior.curve.is_empty()
    });
    harness.render().unwrap().save(readme_dir().join("forward-posterior.png")).unwrap();
}

/// "Continue from here" (a run of any garment continued as an ankle boot from its step 6) and "When is it
/// decided?": the README's pictures of issue 22, rendered by egui_kittest.
#[test]
#[ignore = "writes assets/readme/; run by hand after branching, the decided rows or the pixel model change"]
fn readme_branch_and_decided() {
    use diffusion_lab::app::compare::Mode;
    let settings = Settings { batch: 4, class: None, seed: 3, sampler: Sampler::ddim(20, 0.0), ..Settings::default() };
    let app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), settings);
    let mut harness =
        Harness::builder().with_size([1400.0, 900.0]).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    let deadline = Instant::now() + Duration::from_secs(1800);
    let step_until = |harness: &mut Harness<'static, LabApp>, what: &str, done: &dyn Fn(&LabApp) -> bool| {
        step_until_by(harness, deadline, what, done)
    };
    step_until(&mut harness, "the model loads", &|app| app.model_info().is_some());
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", &|app| matches!(app.generate.run, RunStatus::Finished { .. }));
    harness.get_by_role_and_label(Role::Slider, "Timestep").set_value_accesskit(6.0);
    harness.run_steps(2);
    harness.state_mut().ctx.settings.class = Some(9);
    harness.get_by_role_and_label(Role::Button, "Continue from here").click();
    step_until(&mut harness, "the branch finishes", &|app| {
        !app.is_running() && app.compare.viewer_b.trajectory.as_ref().is_some_and(|t| t.is_complete())
    });
    harness.get_by_role_and_label(Role::Slider, "Timestep").set_value_accesskit(20.0);
    harness.run_steps(3);
    harness.render().unwrap().save(readme_dir().join("window-branch.png")).unwrap();

    harness.state_mut().ctx.settings.class = None;
    harness.state_mut().compare.mode = Mode::Decided;
    harness.state_mut().ctx.settings.zoom = 2.0;
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the rows arrive", &|app| app.compare.grid.is_some() && app.compare.decided.job.is_none());
    harness.render().unwrap().save(readme_dir().join("window-decided.png")).unwrap();
}

/// A text model's prompt in the window and where two of its words looked (summed over the steps): the
/// README's pictures of issue 25, rendered by egui_kittest.
#[test]
#[ignore = "writes assets/readme/; run by hand after the text model, the prompt box or the word picker change"]
fn readme_prompt_attention() {
    use diffusion_lab::app::state::Overlay;
    let settings = Settings {
        model: diffusion_lab::model::ModelId::BuiltIn("Fashion-MNIST (text, latent UNet)".into()),
        batch: 8,
        seed: 5,
        prompt: "a dark small ankle boot".into(),
        zoom: 6.0,
        ..Settings::default()
    };
    let app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), settings);
    let mut harness =
        Harness::builder().with_size([1400.0, 900.0]).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    let deadline = Instant::now() + Duration::from_secs(1800);
    let step_until = |harness: &mut Harness<'static, LabApp>, what: &str, done: &dyn Fn(&LabApp) -> bool| {
        step_until_by(harness, deadline, what, done)
    };
    step_until(&mut harness, "the text model loads", &|app| app.model_info().is_some_and(|m| m.config.text.is_some()));
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", &|app| matches!(app.generate.run, RunStatus::Finished { .. }));
    harness.state_mut().ctx.settings.overlay = Overlay::Attention;
    harness.state_mut().ctx.settings.attention.summed = true;
    step_until(&mut harness, "the attention arrives", &|app| {
        app.generate.viewer.step.attention_ready(app.generate.viewer.serial)
    });
    for (token, name) in [(2, "dark"), (5, "boot")] {
        harness.state_mut().ctx.settings.attention.token = token;
        harness.run_steps(4);
        harness.render().unwrap().save(readme_dir().join(format!("prompt-attention-{name}.png"))).unwrap();
    }
}

/// The Tour: its panel beside the window at the closed form's step (the Forward panel's test image scrubbed to
/// t = 300, the task checked), and the same step in presenter mode at 1280x720: the README's pictures of
/// issue 38, rendered by egui_kittest.
#[test]
#[ignore = "writes assets/readme/; run by hand after the tour's panel or its steps change"]
fn readme_tour() {
    let settings = Settings { batch: 1, ..Settings::default() };
    let mut app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), settings);
    app.ctx.fashion_mnist_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist");
    app.forward.test_index = 3;
    let mut harness =
        Harness::builder().with_size([1280.0, 800.0]).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    let deadline = Instant::now() + Duration::from_secs(600);
    step_until_by(&mut harness, deadline, "the model loads", &|app| app.model_info().is_some());
    harness.get_by_label("Tour").click();
    harness.run_steps(2);
    harness.get_by_label("Next").click();
    harness.run_steps(2);
    harness.state_mut().forward.t = 300;
    step_until_by(&mut harness, deadline, "x_t at t = 300 arrives", &|app| {
        app.forward.x_t.as_ref().is_some_and(|(t, ..)| *t == 300)
    });
    harness.get_by_label("Check").click();
    harness.run_steps(3);
    harness.render().unwrap().save(readme_dir().join("tour.png")).unwrap();

    harness.set_size(eframe::egui::vec2(1280.0, 720.0));
    harness.get_by_label("Presenter mode").click();
    harness.run_steps(4);
    harness.render().unwrap().save(readme_dir().join("tour-presenter.png")).unwrap();
}
