//! The window's guidance box (issue 37): the method picker and its parameters reach the run, and "This
//! step" writes the method's formula with the step's numbers.

use std::time::{Duration, Instant};

use diffusion_lab::app::LabApp;
use diffusion_lab::app::state::{RunStatus, Settings};
use diffusion_lab::diffusion::Sampler;
use diffusion_lab::diffusion::guidance::GuidanceMethod;
use diffusion_lab::engine::{DeviceChoice, Engine};
use eframe::egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn step_until(harness: &mut Harness<'static, LabApp>, what: &str, done: impl Fn(&LabApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done(harness.state()) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}: status {:?}", harness.state().ctx.status);
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.step();
}

#[test]
fn the_guidance_box_picks_a_method_whose_parameters_reach_the_run_and_this_step() {
    let settings =
        Settings { batch: 2, sampler: Sampler::ddim(5, 0.0), seed: 7, this_step: true, ..Settings::default() };
    let app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), settings);
    let mut harness =
        Harness::builder().with_size([1280.0, 860.0]).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    step_until(&mut harness, "the model loads", |app| app.model_info().is_some() && app.ctx.models.device.is_some());

    harness.get_by_role_and_label(Role::ComboBox, "Guidance method").click();
    harness.run_steps(2);
    harness.get_by_label("Adaptive projected guidance").click();
    harness.run_steps(2);
    let settings = &harness.state().ctx.settings;
    assert_eq!(settings.guidance_method.method, GuidanceMethod::Apg);
    assert_eq!(settings.guidance, GuidanceMethod::Apg.default_scale(), "a new method starts at its paper's scale");
    harness.get_by_role_and_label(Role::Slider, "APG momentum β").set_value_accesskit(-0.5);
    harness.run_steps(2);
    assert_eq!(harness.state().ctx.settings.guidance_method.apg.momentum, -0.5);

    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", |app| {
        matches!(app.generate.run, RunStatus::Finished { .. } | RunStatus::Failed(_))
    });
    let app = harness.state();
    assert!(matches!(app.generate.run, RunStatus::Finished { cancelled: false, .. }), "{:?}", app.generate.run);
    let trajectory = app.generate.viewer.trajectory.as_ref().unwrap();
    assert_eq!(trajectory.request.guidance_method.method, GuidanceMethod::Apg);
    assert_eq!(trajectory.request.guidance_method.apg.momentum, -0.5);
    harness.run_steps(3);
    harness.get_by_label_contains("Adaptive projected guidance (Sadat et al. 2024) on x̂_0");
    harness.get_by_label_contains("β = -0.5");
}
