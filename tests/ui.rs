//! The window, driven through its accessible labels with egui_kittest, with the embedded model on the CPU.

mod common;

use std::time::{Duration, Instant};

use diffusion_lab::app::state::{RunStatus, Settings};
use diffusion_lab::app::{LabApp, export};
use diffusion_lab::diffusion::NoiseSource;
use diffusion_lab::diffusion::{DdpmVariance, Sampler};
use diffusion_lab::engine::{DeviceChoice, Engine};
use diffusion_lab::run::png_settings;
use eframe::egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn quick_settings() -> Settings {
    Settings { batch: 2, sampler: Sampler::ddim(5, 0.0), seed: 7, ..Settings::default() }
}

fn harness(settings: Settings) -> Harness<'static, LabApp> {
    let app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), settings);
    let mut harness =
        Harness::builder().with_size([1280.0, 860.0]).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    step_until(&mut harness, "the model loads", |app| app.model_info().is_some() && app.ctx.models.device.is_some());
    harness
}

/// Steps the UI until `done` holds: the harness does not wait for the engine thread by itself.
fn step_until(harness: &mut Harness<'static, LabApp>, what: &str, done: impl Fn(&LabApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done(harness.state()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: run {:?}, status {:?}, forward panel {:?}",
            harness.state().generate.run,
            harness.state().ctx.status,
            harness.state().forward.error
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.step();
}

fn finished(app: &LabApp) -> bool {
    matches!(app.generate.run, RunStatus::Finished { .. } | RunStatus::Failed(_))
}

#[test]
fn generate_runs_to_the_end_and_fills_the_timeline() {
    let mut harness = harness(quick_settings());
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", finished);
    let app = harness.state();
    assert!(matches!(app.generate.run, RunStatus::Finished { cancelled: false, .. }), "{:?}", app.generate.run);
    let trajectory = app.generate.viewer.trajectory.as_ref().unwrap();
    assert_eq!(trajectory.frames.len(), 6, "x_T and five DDIM steps");
    assert_eq!(trajectory.frames.last().unwrap().t, 0);
    assert_eq!(app.generate.viewer.cursor, 5, "the view follows the newest frame");

    // The scrubber replays any step, and the arrow keys move one t.
    harness.get_by_role_and_label(Role::Slider, "Timestep").set_value_accesskit(1.0);
    harness.run_steps(2);
    assert_eq!(harness.state().generate.viewer.cursor, 1);
    harness.key_press(eframe::egui::Key::ArrowRight);
    harness.run_steps(2);
    assert_eq!(harness.state().generate.viewer.cursor, 2);
}

#[test]
fn cancel_stops_a_run() {
    let mut harness = harness(Settings { sampler: Sampler::ddpm(DdpmVariance::BetaTilde), ..quick_settings() });
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "a few steps arrive", |app| {
        app.generate.viewer.trajectory.as_ref().is_some_and(|t| t.frames.len() > 3)
    });
    harness.get_by_role_and_label(Role::Button, "Cancel").click();
    step_until(&mut harness, "the run stops", finished);
    let app = harness.state();
    assert!(matches!(app.generate.run, RunStatus::Finished { cancelled: true, .. }), "{:?}", app.generate.run);
    assert!(app.generate.viewer.trajectory.as_ref().unwrap().frames.len() < 1001);
}

#[test]
fn a_second_generate_shows_only_the_new_run() {
    let mut harness = harness(Settings { sampler: Sampler::ddpm(DdpmVariance::BetaTilde), ..quick_settings() });
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the first run streams", |app| {
        app.generate.viewer.trajectory.as_ref().is_some_and(|t| t.frames.len() > 2)
    });
    {
        let settings = &mut harness.state_mut().ctx.settings;
        settings.sampler = Sampler::ddim(5, 0.0);
        settings.seed = 99;
    }
    harness.run_steps(1);
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the second run finishes", finished);
    // Let any stray event of the first run arrive; it must be dropped.
    for _ in 0..20 {
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    let trajectory = harness.state().generate.viewer.trajectory.clone().unwrap();
    assert_eq!(trajectory.request.seed, 99);
    assert_eq!(trajectory.frames.len(), 6);
    let x_t: Vec<f32> = NoiseSource::new(99).values(trajectory.frames[0].x_t.len());
    assert_eq!(*trajectory.frames[0].x_t, x_t, "x_T is the second run's seeded noise");
    assert!(trajectory.frames.windows(2).all(|w| w[1].index == w[0].index + 1));
}

#[test]
fn moving_beta_end_changes_the_plot_and_the_next_run() {
    let mut harness =
        harness(Settings { schedule: diffusion_lab::diffusion::BetaSchedule::linear(1000), ..quick_settings() });
    harness.run_steps(2);
    let before = harness.state().schedule.plotted.clone().unwrap();
    harness.get_by_role_and_label(Role::Slider, "β_end").set_value_accesskit(0.05);
    harness.run_steps(3);
    let after = harness.state().schedule.plotted.clone().unwrap();
    assert_eq!(after.source.beta_end, 0.05);
    assert_ne!(before.alpha_bar, after.alpha_bar);
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", finished);
    assert_eq!(harness.state().generate.viewer.trajectory.as_ref().unwrap().request.schedule.beta_end, 0.05);
}

#[test]
fn an_invalid_schedule_disables_generate_and_says_why() {
    let mut harness =
        harness(Settings { schedule: diffusion_lab::diffusion::BetaSchedule::linear(1000), ..quick_settings() });
    harness.get_by_role_and_label(Role::Slider, "β_start").set_value_accesskit(0.3);
    harness.run_steps(3);
    let reason = harness.state().generate_blocker().unwrap();
    assert!(reason.contains("beta_start (0.3) must not be greater than beta_end (0.02)"), "{reason}");
    harness.get_by_label_contains("Generate is off: invalid schedule");
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    harness.run_steps(3);
    assert!(harness.state().generate.viewer.trajectory.is_none(), "a disabled Generate starts nothing");
}

#[test]
fn save_writes_a_png_with_the_settings() {
    let mut harness = harness(quick_settings());
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", finished);
    let dir = tempfile::tempdir().unwrap();
    let app = harness.state();
    let trajectory = app.generate.viewer.trajectory.as_ref().unwrap();
    let path = dir.path().join("shown.png");
    export::save_frame_to(
        &path,
        trajectory,
        app.generate.viewer.cursor,
        app.ctx.settings.quantity,
        app.ctx.settings.color_map,
    )
    .unwrap();
    let restored = png_settings::settings_from_png(&path).unwrap();
    assert_eq!(restored, trajectory.request);
    let decoded = image::open(&path).unwrap();
    assert!(decoded.width() >= 28 && decoded.height() >= 28);

    let gif = dir.path().join("run.gif");
    export::save_animation_to(&gif, trajectory, app.ctx.settings.quantity, app.ctx.settings.color_map, 2).unwrap();
    assert!(std::fs::read(&gif).unwrap().starts_with(b"GIF89a"));
    let strip = dir.path().join("strip.png");
    export::save_filmstrip_to(&strip, trajectory, 10, app.ctx.settings.quantity, app.ctx.settings.color_map, 1)
        .unwrap();
    assert_eq!(png_settings::settings_from_png(&strip).unwrap(), trajectory.request);

    // A file that is not ours is refused with a message, and nothing is lost.
    let foreign = dir.path().join("foreign.png");
    image::GrayImage::new(2, 2).save(&foreign).unwrap();
    assert!(
        png_settings::settings_from_png(&foreign).unwrap_err().to_string().contains("holds no diffusion-lab settings")
    );
    let unwritable = dir.path().join("no/such/folder/x.png");
    assert!(
        export::save_frame_to(&unwritable, trajectory, 0, app.ctx.settings.quantity, app.ctx.settings.color_map)
            .is_err()
    );
}

#[test]
fn main_window_snapshot() {
    let mut harness = harness(quick_settings());
    harness.run_steps(3);
    harness.snapshot("main_window");
}

#[test]
fn forward_process_noises_a_test_image() {
    let mut harness = harness(quick_settings());
    // The fixture's 500 test images: the test runs without the data set package.
    harness.state_mut().ctx.fashion_mnist_dir = common::fashion_mnist_fixture();
    harness.get_by_label("Forward process").click();
    step_until(&mut harness, "x_0 loads", |app| app.forward.x0.is_some());
    harness.get_by_role_and_label(Role::Slider, "Forward t").set_value_accesskit(1.0);
    step_until(&mut harness, "x_1 arrives", |app| app.forward.x_t.as_ref().is_some_and(|(t, ..)| *t == 1));
    let (x0, ..) = harness.state().forward.x0.clone().unwrap();
    let (_, x1, _) = harness.state().forward.x_t.clone().unwrap();
    let distance = common::max_difference(&x0, &x1);
    assert!(distance < 0.2, "at t = 1 the image is almost clean: {distance}");

    harness.get_by_role_and_label(Role::Slider, "Forward t").set_value_accesskit(1000.0);
    step_until(&mut harness, "x_T arrives", |app| app.forward.x_t.as_ref().is_some_and(|(t, ..)| *t == 1000));
    let (_, x_big_t, _) = harness.state().forward.x_t.clone().unwrap();
    let n = x_big_t.len() as f32;
    let mean = x_big_t.iter().sum::<f32>() / n;
    let variance = x_big_t.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
    assert!(mean.abs() < 0.15 && (variance - 1.0).abs() < 0.2, "x_T is close to N(0, 1): {mean}, {variance}");

    // A schedule edit at the same t brings a new x_t, and the picture follows it (not the old texture).
    harness.get_by_role_and_label(Role::Slider, "Forward t").set_value_accesskit(300.0);
    step_until(&mut harness, "x_300 arrives", |app| app.forward.x_t.as_ref().is_some_and(|(t, ..)| *t == 300));
    let (before, serial) = (harness.state().forward.x_t.clone().unwrap().1, harness.state().forward.frame_serial);
    harness.state_mut().ctx.settings.schedule = diffusion_lab::diffusion::BetaSchedule::linear(1000);
    step_until(&mut harness, "the edited schedule's x_300 arrives", |app| app.forward.frame_serial > serial);
    let after = harness.state().forward.x_t.clone().unwrap().1;
    assert_ne!(before, after, "cosine and linear noise x_0 differently at t = 300");
    harness.run_steps(2);
    let map = harness.state().ctx.settings.color_map;
    assert!(harness.state().forward.pictures_are_current(map), "the picture shows the new x_t");
    let other = diffusion_lab::app::state::ColorMap::Diverging;
    harness.state_mut().ctx.settings.color_map = other;
    harness.run_steps(2);
    assert!(harness.state().forward.pictures_are_current(other), "and follows the colour map");
}

#[test]
fn forward_process_works_with_the_latent_model_through_its_autoencoder() {
    let mut harness = harness(quick_settings());
    harness.state_mut().ctx.fashion_mnist_dir = common::fashion_mnist_fixture();
    step_until(&mut harness, "the latent model loads", |app| app.ctx.models.loaded.iter().any(|m| m.is_latent));
    let latent = harness.state().ctx.models.loaded.iter().find(|m| m.is_latent).unwrap().id.clone();
    harness.state_mut().ctx.settings.model = latent;
    // The latent model's toolbar has more views: let it lay out before clicking in it.
    harness.run_steps(2);
    harness.get_by_label("Forward process").click();
    step_until(&mut harness, "x_0 loads", |app| app.forward.x0.is_some());
    assert_eq!(harness.state().forward.x0.as_ref().unwrap().1, [1, 1, 28, 28], "x_0 is the image itself");
    harness.get_by_role_and_label(Role::Slider, "Forward t").set_value_accesskit(1.0);
    step_until(&mut harness, "D(z_1) arrives", |app| app.forward.x_t.as_ref().is_some_and(|(t, ..)| *t == 1));
    let (x0, ..) = harness.state().forward.x0.clone().unwrap();
    let (_, x1, shape) = harness.state().forward.x_t.clone().unwrap();
    assert_eq!(shape, [1, 1, 28, 28], "x_t comes decoded to pixels");
    let error = x0.iter().zip(x1.iter()).map(|(a, b)| (a - b).abs()).sum::<f32>() / x0.len() as f32;
    assert!(error < 0.15, "D(z_1) is about the image (the autoencoder's error): {error}");
    assert!(harness.state().forward.error.is_none(), "{:?}", harness.state().forward.error);
}

#[test]
fn keyboard_generates_and_cancels() {
    let mut harness = harness(Settings { sampler: Sampler::ddpm(DdpmVariance::BetaTilde), ..quick_settings() });
    harness.key_press_modifiers(eframe::egui::Modifiers::COMMAND, eframe::egui::Key::Enter);
    step_until(&mut harness, "a few steps arrive", |app| {
        app.generate.viewer.trajectory.as_ref().is_some_and(|t| t.frames.len() > 3)
    });
    harness.key_press(eframe::egui::Key::Escape);
    step_until(&mut harness, "the run stops", finished);
    assert!(
        matches!(harness.state().generate.run, RunStatus::Finished { cancelled: true, .. }),
        "{:?}",
        harness.state().generate.run
    );
}

#[test]
fn a_checkpoint_file_becomes_a_model_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = harness(quick_settings());
    harness.state_mut().ctx.open_checkpoint(common::tiny_unet_file(dir.path()));
    step_until(&mut harness, "the file loads", |app| {
        app.ctx.models.loaded.iter().any(|m| m.id.label() == "file: tiny.dlab")
    });
    assert_eq!(harness.state().ctx.settings.model.label(), "file: tiny.dlab");
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", finished);
    assert_eq!(harness.state().generate.viewer.trajectory.as_ref().unwrap().frames[0].shape, [2, 1, 8, 8]);

    let junk = dir.path().join("junk.dlab");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    harness.state_mut().ctx.open_checkpoint(junk);
    step_until(&mut harness, "the refusal", |app| app.ctx.status.as_ref().is_some_and(|s| s.is_error));
    let status = harness.state().ctx.status.clone().unwrap();
    assert!(status.text.contains("not a diffusion-lab checkpoint"), "{}", status.text);
    assert_eq!(harness.state().ctx.settings.model.label(), "file: tiny.dlab", "the model it had");
}

#[test]
fn the_model_picker_switches_between_pixel_and_latent_models() {
    const PIXEL: &str = "Fashion-MNIST (pixel UNet)";
    const LATENT: &str = "Fashion-MNIST (latent UNet)";
    let mut harness = harness(quick_settings());
    step_until(&mut harness, "both built-in models load", |app| {
        app.ctx.models.loaded.iter().any(|m| m.id.label() == LATENT)
    });
    assert!(harness.query_by_label("latent channels").is_none(), "no latent view for the pixel model");

    harness.get_by_role_and_label(Role::ComboBox, "Model").click();
    harness.run_steps(2);
    harness.get_by_label(LATENT).click();
    harness.run_steps(2);
    assert_eq!(harness.state().ctx.settings.model.label(), LATENT);
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the latent run finishes", finished);
    // Frames between x_T and the result get their pixels after the run (the window never waits for them).
    step_until(&mut harness, "the latent frames are decoded", |app| {
        app.generate.viewer.trajectory.as_ref().is_some_and(|t| t.undecoded() == 0)
    });
    {
        let app = harness.state();
        assert!(matches!(app.generate.run, RunStatus::Finished { cancelled: false, .. }), "{:?}", app.generate.run);
        let frames = &app.generate.viewer.trajectory.as_ref().unwrap().frames;
        assert_eq!(frames.len(), 6);
        assert_eq!(frames[0].shape, [2, 4, 7, 7], "the latent model works on 4x7x7 latents");
        for frame in frames {
            let decoded = frame.decoded.as_ref().expect("every latent frame ends up decoded");
            assert_eq!(decoded.shape, [2, 1, 28, 28]);
        }
    }
    // The views of a latent model: decoded images and the raw latent channels.
    harness.get_by_label("D(z_t)");
    harness.get_by_label("D(predicted z_0)");
    harness.get_by_label("latent channels").click();
    harness.run_steps(2);

    // And back, without a restart: a pixel run, and no latent view.
    harness.get_by_role_and_label(Role::ComboBox, "Model").click();
    harness.run_steps(2);
    harness.get_by_label(PIXEL).click();
    harness.run_steps(2);
    assert_eq!(harness.state().ctx.settings.model.label(), PIXEL);
    assert!(harness.query_by_label("latent channels").is_none());
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    harness.step();
    assert!(harness.state().is_running(), "the click starts a new run");
    step_until(&mut harness, "the pixel run finishes", finished);
    let frames = &harness.state().generate.viewer.trajectory.as_ref().unwrap().frames;
    assert_eq!(frames[0].shape, [2, 1, 28, 28]);
    assert!(frames.iter().all(|f| f.decoded.is_none()));
}

#[test]
fn invalid_saved_or_restored_settings_fall_back_to_defaults_with_a_message() {
    // Persisted settings from a damaged file or another model: the window still starts.
    let saved = Settings { class: Some(12), batch: 0, guidance: f64::NAN, ..quick_settings() };
    let mut harness = harness(saved);
    harness.run_steps(2);
    {
        let app = harness.state();
        assert_eq!(app.ctx.settings.class, Some(0));
        assert_eq!(app.ctx.settings.batch, Settings::default().batch);
        let status = app.ctx.status.as_ref().expect("the reset is reported");
        assert!(
            status.is_error && status.text.contains("class 12") && status.text.contains("batch 0"),
            "{}",
            status.text
        );
    }
    // Settings read back from a PNG with a class the model does not know.
    let mut request = quick_settings().request(false);
    request.model = harness.state().ctx.settings.model.clone();
    request.class = Some(99);
    request.batch = 2;
    let events = harness.state().ctx.dialogs.sender();
    events.send(diffusion_lab::app::dialogs::FileEvent::SettingsLoaded(Box::new(request), "odd.png".into())).unwrap();
    harness.run_steps(2);
    let app = harness.state();
    assert_eq!(app.ctx.settings.class, Some(0));
    assert!(app.ctx.status.as_ref().unwrap().text.contains("class 99"), "{:?}", app.ctx.status);
    assert!(app.generate_blocker().is_none(), "Generate works with the repaired settings");
}

#[test]
fn without_a_file_dialog_save_writes_to_the_default_folder_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = harness(quick_settings());
    harness.state_mut().ctx.dialogs.available = false;
    harness.state_mut().ctx.dialogs.export_dir = dir.path().join("exports with spaces ü");
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", finished);
    for expected in ["diffusion-lab-seed7-t0.png", "diffusion-lab-seed7-t0-2.png"] {
        harness.state_mut().ctx.status = None;
        harness.get_by_role_and_label(Role::Button, "Save image…").click();
        step_until(&mut harness, "the save reports", |app| app.ctx.status.is_some());
        let status = harness.state().ctx.status.clone().unwrap();
        assert!(!status.is_error && status.text.contains("default folder"), "{}", status.text);
        let path = dir.path().join("exports with spaces ü").join(expected);
        assert!(status.text.contains(&path.display().to_string()), "{}", status.text);
        let request = png_settings::settings_from_png(&path).expect("the saved PNG carries its settings");
        assert_eq!(request.seed, 7);
    }
    // A default folder that cannot be made: the error says why, and the run stays in the window.
    let blocker = dir.path().join("a file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    harness.state_mut().ctx.dialogs.export_dir = blocker.join("exports");
    harness.state_mut().ctx.status = None;
    harness.get_by_role_and_label(Role::Button, "Save image…").click();
    step_until(&mut harness, "the failure reports", |app| app.ctx.status.is_some());
    let status = harness.state().ctx.status.clone().unwrap();
    assert!(status.is_error && status.text.contains("no file dialog"), "{}", status.text);
    assert!(harness.state().generate.viewer.trajectory.as_ref().is_some_and(|t| t.is_complete()), "nothing lost");
    // Choosing a file to open cannot work without a dialog: said, not silently ignored.
    harness.state_mut().ctx.status = None;
    harness.get_by_role_and_label(Role::Button, "Open settings from PNG…").click();
    harness.run_steps(2);
    assert!(harness.state().ctx.status.as_ref().is_some_and(|s| s.is_error && s.text.contains("no file dialog")));
}

#[test]
fn a_long_run_is_recorded_within_the_memory_budget_and_the_timeline_says_so() {
    let settings = Settings {
        sampler: Sampler::ddpm(DdpmVariance::BetaTilde),
        schedule: diffusion_lab::diffusion::BetaSchedule::cosine(300),
        ..quick_settings()
    };
    let mut harness = harness(settings);
    // Room for 40 frames of 2 images: x_t, x̂_0 and ε, and the parts of the step that made it (ε̂_Ø, ε̂_y
    // and the fresh noise z), 28x28 each.
    let frame_bytes = 4 * 6 * 2 * 28 * 28;
    harness.state_mut().ctx.trajectory_budget = 40 * frame_bytes;
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", finished);
    let trajectory = harness.state().generate.viewer.trajectory.clone().unwrap();
    assert!(trajectory.frames.len() <= 40 && trajectory.frames.len() >= 20, "{} frames", trajectory.frames.len());
    assert_eq!(trajectory.stride, 8);
    assert_eq!(trajectory.frames.first().unwrap().t, 300, "x_T kept");
    assert_eq!(trajectory.frames.last().unwrap().t, 0, "the result kept");
    harness.run_steps(2);
    harness.get_by_label_contains("memory budget");
    harness.get_by_label_contains("keeping every 8th step");
}

/// For a test that measures the whole process (its threads, its memory): outside that test's own process,
/// runs it again alone in a child process, asserts that it passed there, and returns true (the caller
/// returns); inside the child, returns false and the caller measures.
fn ran_in_own_process(test: &str) -> bool {
    const ALONE: &str = "DIFFUSION_LAB_TEST_ALONE";
    if std::env::var_os(ALONE).is_some() {
        return false;
    }
    use std::io::Read;
    use std::process::Stdio;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(ALONE, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes while waiting, so that a chatty child never blocks on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    // A hung child fails the test instead of hanging it.
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`{test}` did not finish within 900 s in its own process");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap();
    // Shown as it would have been, had the child written to the terminal itself.
    print!("{stdout}");
    eprint!("{}", stderr.join().unwrap());
    assert!(status.success(), "`{test}` failed in its own process (its output is above)");
    // A renamed test, or a filter that matches nothing, passes with 0 tests run: it must have run once.
    let passed = stdout
        .lines()
        .find_map(|line| line.strip_prefix("test result: ok. ")?.split(' ').next()?.parse::<usize>().ok());
    assert_eq!(passed, Some(1), "`{test}` must run exactly once in its own process (its output is above)");
    true
}

fn thread_count() -> usize {
    // A failed read must fail the test: a count of 0 would pass the "no more threads" check trivially.
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task lists the process's threads");
    let count = tasks.count();
    assert!(count > 0, "/proc/self/task lists no thread");
    count
}

#[test]
fn fifty_rapid_generate_and_cancel_clicks_leave_no_stale_frame_deadlock_or_thread() {
    // It counts the process's threads: the engines of UI tests running in parallel must not count.
    if ran_in_own_process("fifty_rapid_generate_and_cancel_clicks_leave_no_stale_frame_deadlock_or_thread") {
        return;
    }
    let mut harness = harness(Settings {
        sampler: Sampler::ddpm(DdpmVariance::BetaTilde),
        schedule: diffusion_lab::diffusion::BetaSchedule::cosine(200),
        ..quick_settings()
    });
    // One run first, so that the compute threads exist before counting.
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the first run finishes", finished);
    let threads = thread_count();
    for i in 0..50 {
        // A Generate click and a Cancel click, one frame apart.
        harness.state_mut().ctx.settings.seed = 100 + i;
        harness.get_by_role_and_label(Role::Button, "Generate").click();
        harness.step();
        harness.get_by_role_and_label(Role::Button, "Cancel").click();
        harness.step();
    }
    // The last word: one more run, which must finish with only its own frames.
    harness.state_mut().ctx.settings.seed = 999;
    harness.state_mut().ctx.settings.sampler = Sampler::ddim(5, 0.0);
    // Let the layout settle first (DDIM adds sliders above the button, and a click lands where it was).
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    harness.step();
    assert_eq!(harness.state().generate.job, 52, "the click started a new run");
    step_until(&mut harness, "the last run finishes", |app| {
        matches!(app.generate.run, RunStatus::Finished { cancelled: false, .. })
    });
    harness.run_steps(5);
    let app = harness.state();
    let trajectory = app.generate.viewer.trajectory.as_ref().unwrap();
    assert_eq!(trajectory.request.seed, 999);
    assert_eq!(trajectory.frames.len(), 6, "x_T and five DDIM steps, nothing from the cancelled runs");
    assert!(trajectory.frames.windows(2).all(|w| w[1].index == w[0].index + 1));
    let x_start = NoiseSource::new(999).values(2 * 28 * 28);
    assert_eq!(*trajectory.frames[0].x_t, x_start, "x_T of this run's seed");
    assert!(thread_count() <= threads, "threads before {threads}, after {}", thread_count());
}

fn rss_mib() -> f64 {
    // A failed read must fail the test: an RSS of 0 every time would look perfectly flat.
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status is readable");
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/self/status:\n{status}"));
    assert!(kib > 0.0, "VmRSS of 0 kB in /proc/self/status");
    kib / 1024.0
}

#[test]
fn a_hundred_runs_in_a_row_keep_memory_flat() {
    // RSS is the whole process's: the UI tests running in parallel beside it must not count as its growth.
    if ran_in_own_process("a_hundred_runs_in_a_row_keep_memory_flat") {
        return;
    }
    let mut harness = harness(quick_settings());
    let mut samples = Vec::new();
    for run in 1..=100 {
        harness.state_mut().ctx.settings.seed = run;
        harness.state_mut().start_generate();
        step_until(&mut harness, "the run finishes", finished);
        if run == 20 || run == 60 || run == 100 {
            samples.push(rss_mib());
        }
    }
    eprintln!("RSS after 20, 60, 100 runs: {samples:.1?} MiB");
    assert!(samples[2] < samples[0] * 1.15 + 20.0, "memory grows with runs: {samples:?} MiB");
}

/// A small tmpfs mounted at a fresh folder (`options` as for mount -o), unmounted on drop; `None` where
/// this process may not mount (not root): the caller then has nothing to test here.
struct TmpMount {
    point: std::path::PathBuf,
    /// Holds the folder the mount point is in until the mount is gone.
    _dir: tempfile::TempDir,
}

impl TmpMount {
    fn new(options: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let point = dir.path().join("mount point");
        std::fs::create_dir(&point).ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&point)
            .status()
            .ok()?;
        status.success().then(|| Self { point, _dir: dir })
    }
}

impl Drop for TmpMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.point).status();
    }
}

#[test]
fn a_full_or_read_only_disk_fails_the_save_with_the_reason_and_keeps_the_run() {
    let (Some(full), Some(read_only)) = (TmpMount::new("size=8k"), TmpMount::new("size=1m,ro")) else {
        common::skip("this process cannot mount a tmpfs (not root)");
        return;
    };
    let mut harness = harness(Settings { batch: 16, ..quick_settings() });
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", finished);
    let trajectory = harness.state().generate.viewer.trajectory.clone().unwrap();
    let (quantity, map) = (harness.state().ctx.settings.quantity, harness.state().ctx.settings.color_map);
    // The animation of 16 images at zoom 8 does not fit in 8 kB.
    let error = export::save_animation_to(&full.point.join("run ü.gif"), &trajectory, quantity, map, 8).unwrap_err();
    assert!(error.to_string().contains("No space left on device"), "{error}");
    assert_eq!(std::fs::read_dir(&full.point).unwrap().count(), 0, "no half-written or temporary file left");
    let error = export::save_frame_to(&read_only.point.join("frame.png"), &trajectory, 0, quantity, map).unwrap_err();
    assert!(error.to_string().contains("Read-only file system"), "{error}");
    let missing = full.point.join("no such folder").join("frame.png");
    let error = export::save_frame_to(&missing, &trajectory, 0, quantity, map).unwrap_err();
    assert!(error.to_string().contains("No such file or directory"), "{error}");
    // Nothing of the run was lost: it saves elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    export::save_animation_to(&elsewhere.path().join("run ü.gif"), &trajectory, quantity, map, 8).unwrap();
    assert_eq!(harness.state().generate.viewer.trajectory.as_ref().unwrap().frames.len(), trajectory.frames.len());
}

#[test]
fn every_kind_of_bad_model_file_is_refused_and_the_window_keeps_its_model() {
    use diffusion_lab::model::checkpoint::Checkpoint;
    let dir = tempfile::tempdir().unwrap();
    let good = common::tiny_unet_file(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let mut harness = harness(quick_settings());
    harness.state_mut().ctx.open_checkpoint(good);
    step_until(&mut harness, "the good file loads", |app| {
        app.ctx.models.loaded.iter().any(|m| m.id.label() == "file: tiny.dlab")
    });

    let mut version = bytes.clone();
    version[8] = 42;
    let mut bad_config = Checkpoint::from_bytes(&bytes).unwrap();
    bad_config.header.config["groups"] = serde_json::json!(3);
    let autoencoder =
        diffusion_lab::model::embedded::model_by_short_name("latent").unwrap().autoencoder.unwrap().to_vec();
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("empty.dlab", Some(Vec::new()), "not a diffusion-lab checkpoint"),
        ("truncated.dlab", Some(bytes[..bytes.len() / 2].to_vec()), "truncated"),
        (
            "random.dlab",
            Some((0..3000u32).map(|i| ((i * 2654435761u32) >> 24) as u8).collect()),
            "not a diffusion-lab checkpoint",
        ),
        ("version.dlab", Some(version), "format version 42"),
        ("autoencoder.dlab", Some(autoencoder), "wrong kind"),
        ("config.dlab", Some(bad_config.to_bytes()), "GroupNorm groups"),
        ("a folder.dlab", None, "directory"),
    ];
    for (name, content, cause) in cases {
        let path = dir.path().join(name);
        match content {
            Some(content) => std::fs::write(&path, content).unwrap(),
            None => std::fs::create_dir(&path).unwrap(),
        }
        harness.state_mut().ctx.status = None;
        harness.state_mut().ctx.open_checkpoint(path);
        step_until(&mut harness, "the refusal", |app| app.ctx.status.as_ref().is_some_and(|s| s.is_error));
        let status = harness.state().ctx.status.clone().unwrap();
        assert!(status.text.contains(name) && status.text.contains(cause), "{name}: {}", status.text);
        assert_eq!(harness.state().ctx.settings.model.label(), "file: tiny.dlab", "{name}: the window keeps its model");
    }
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "a run with the kept model", finished);
    assert!(matches!(harness.state().generate.run, RunStatus::Finished { cancelled: false, .. }));
}

/// Whether nothing of ours is running or queued.
fn all_done(app: &LabApp) -> bool {
    !app.is_running() && app.compare.queue.is_empty()
}

#[test]
fn an_ab_run_shows_two_runs_from_the_same_noise_side_by_side_scrubbed_by_noise_level() {
    use diffusion_lab::diffusion::Method;
    let mut harness = harness(quick_settings());
    harness.get_by_label("A/B").click();
    harness.run_steps(2);
    // B: DPM++ 2M, 3 steps, guidance 4, picked through their labels.
    harness.get_by_label("B: Sampler").click();
    harness.run_steps(2);
    harness.get_by_label("DPM++ 2M").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Slider, "B: Steps").set_value_accesskit(3.0);
    harness.get_by_role_and_label(Role::Slider, "B: guidance").set_value_accesskit(4.0);
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "A and B finish", |app| {
        all_done(app) && app.compare.viewer_b.trajectory.as_ref().is_some_and(|t| t.is_complete())
    });
    let app = harness.state();
    let a = app.generate.viewer.trajectory.as_ref().unwrap();
    let b = app.compare.viewer_b.trajectory.as_ref().unwrap();
    assert_eq!((a.frames.len(), b.frames.len()), (6, 4), "x_T and 5 DDIM steps; x_T and 3 DPM++ 2M steps");
    assert_eq!(b.request.sampler.method, Method::DpmSolver2M);
    assert_eq!(b.request.guidance, 4.0);
    assert_eq!((b.request.seed, b.request.batch, b.request.class), (a.request.seed, a.request.batch, a.request.class));
    assert_eq!(a.frames[0].x_t, b.frames[0].x_t, "both start from the same x_T");
    assert_ne!(a.frames[5].x_t, b.frames[3].x_t, "and end apart");
    harness.get_by_role_and_label(Role::Image, "A images");
    harness.get_by_role_and_label(Role::Image, "B images");

    // Scrubbing A moves B to the frame nearest in noise level.
    let noise = |l: f64| (1.0 - 1.0 / (1.0 + (-l).exp())).sqrt();
    for cursor in 0..6 {
        harness.get_by_role_and_label(Role::Slider, "Timestep").set_value_accesskit(cursor as f64);
        harness.run_steps(2);
        let app = harness.state();
        let (a, b) = (app.current_frame().unwrap(), app.current_frame_b().unwrap());
        let best = app
            .compare
            .viewer_b
            .trajectory
            .as_ref()
            .unwrap()
            .frames
            .iter()
            .map(|f| (noise(f.log_snr) - noise(a.log_snr)).abs())
            .fold(f64::INFINITY, f64::min);
        assert_eq!((noise(b.log_snr) - noise(a.log_snr)).abs(), best, "cursor {cursor}");
    }
    let app = harness.state();
    assert_eq!(app.current_frame_b().unwrap().index, 3, "A's clean image faces B's");
}

#[test]
fn a_three_by_three_grid_fills_in_and_saves_one_labelled_png() {
    use eframe::egui::{Key, Modifiers};
    let dir = tempfile::tempdir().unwrap();
    let mut harness = harness(quick_settings());
    harness.state_mut().ctx.dialogs.available = false;
    harness.state_mut().ctx.dialogs.export_dir = dir.path().to_path_buf();
    harness.get_by_label("X/Y grid").click();
    harness.run_steps(2);
    for (label, text) in [("X values", "0, 1, 3"), ("Y values", "2, 3, 4")] {
        harness.get_by_label(label).click();
        harness.run_steps(1);
        harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
        harness.get_by_label(label).type_text(text);
        harness.run_steps(2);
    }
    assert_eq!(
        (harness.state().compare.xy.x_values.as_str(), harness.state().compare.xy.y_values.as_str()),
        ("0, 1, 3", "2, 3, 4")
    );
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the grid fills", |app| {
        all_done(app) && app.compare.grid.as_ref().is_some_and(|g| g.finished_cells() == 9)
    });
    let grid = harness.state().compare.grid.clone().unwrap();
    assert!(grid.errors.iter().all(Option::is_none), "{:?}", grid.errors);
    assert!(grid.cells.iter().all(Option::is_some));
    assert_eq!((grid.requests[1].guidance, grid.requests[1].sampler.steps), (1.0, 2));
    assert_eq!((grid.requests[8].guidance, grid.requests[8].sampler.steps), (3.0, 4));
    assert_ne!(grid.cells[0], grid.cells[2], "guidance changes the image");
    harness.get_by_role_and_label(Role::Image, "X/Y grid");

    harness.get_by_role_and_label(Role::Button, "Save grid…").click();
    step_until(&mut harness, "the save reports", |app| app.ctx.status.is_some());
    let status = harness.state().ctx.status.clone().unwrap();
    assert!(!status.is_error, "{}", status.text);
    let saved = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    let restored = png_settings::settings_from_png(&saved).unwrap();
    assert_eq!(restored, grid.base, "the PNG restores the settings the grid was built around");
    let text = diffusion_lab::images::png_text(&saved).unwrap();
    let settings: serde_json::Value = serde_json::from_str(&text[0].1).unwrap();
    assert_eq!(settings["grid"]["cells"].as_array().unwrap().len(), 9);
    assert_eq!(settings["grid"]["x"]["values"], serde_json::json!(["0", "1", "3"]));
    let png = image::open(&saved).unwrap();
    let zoom = harness.state().ctx.settings.zoom as usize;
    let cells: Vec<_> = grid.cells.iter().map(|c| c.as_ref().map(|p| diffusion_lab::images::scaled(p, zoom))).collect();
    let layout = diffusion_lab::images::GridLayout::new(&cells, &grid.labels(), 4);
    assert_eq!((png.width() as usize, png.height() as usize), (layout.width, layout.height));
}

/// Image-to-image and inpainting from the Forward process panel, through its labels: "Denoise from here" at
/// t = 600 of 1000 runs the last 3 of 5 steps from that x_t; a rectangle painted on x_0 is repainted while
/// every other pixel ends exactly as it was.
#[test]
fn denoise_from_here_and_inpainting_in_the_forward_panel() {
    let mut harness = harness(quick_settings());
    harness.state_mut().ctx.fashion_mnist_dir = common::fashion_mnist_fixture();
    harness.get_by_label("Forward process").click();
    step_until(&mut harness, "x_0 loads", |app| app.forward.x0.is_some());
    harness.get_by_role_and_label(Role::Slider, "Forward t").set_value_accesskit(600.0);
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "Denoise from here").click();
    step_until(&mut harness, "image-to-image finishes", finished);
    let trajectory = harness.state().generate.viewer.trajectory.clone().unwrap();
    let init = trajectory.request.init.clone().expect("the run starts from the picture");
    assert_eq!(init.strength, 0.6);
    assert_eq!(trajectory.frames.len(), 1 + 3, "the last 3 of 5 DDIM steps");
    assert!(trajectory.frames[0].t < 1000 && trajectory.frames[0].t >= 600);

    // Paint a rectangle over the top-left of x_0.
    harness.get_by_label("Rectangle").click();
    harness.run_steps(2);
    let rect = harness.get_by_role_and_label(Role::Image, "clean image x_0").rect();
    let (from, to) = (rect.min + rect.size() * 0.05, rect.min + rect.size() * 0.5);
    harness.hover_at(from);
    harness.run_steps(1);
    harness.drag_at(from);
    harness.run_steps(1);
    for k in 1..=5 {
        harness.hover_at(from + (to - from) * (k as f32 / 5.0));
        harness.run_steps(1);
    }
    harness.drop_at(to);
    harness.run_steps(2);
    let mask = harness.state().forward.mask.clone().expect("a mask was painted");
    let painted = mask.iter().filter(|m| **m != 0).count();
    assert!((100..=250).contains(&painted), "about a quarter of 28 x 28: {painted}");
    assert!(mask[29] != 0 && mask[27 * 28 + 27] == 0);

    harness.get_by_role_and_label(Role::Slider, "Forward t").set_value_accesskit(1000.0);
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "Denoise from here").click();
    harness.run_steps(2);
    step_until(&mut harness, "inpainting finishes", finished);
    let app = harness.state();
    assert!(
        matches!(app.generate.run, RunStatus::Finished { cancelled: false, .. }),
        "{:?} {:?}",
        app.generate.run,
        app.ctx.status
    );
    let (x0, ..) = app.forward.x0.clone().unwrap();
    let trajectory = app.generate.viewer.trajectory.as_ref().unwrap();
    assert_eq!(trajectory.request.init.as_ref().and_then(|i| i.mask.clone()), Some(mask.clone()));
    let last = trajectory.frames.last().unwrap();
    for b in 0..2 {
        for i in 0..784 {
            let original = diffusion_lab::data::unit_from_u8(diffusion_lab::data::u8_from_unit(x0[i]));
            if mask[i] == 0 {
                assert_eq!(last.x_t[b * 784 + i], original, "image {b} pixel {i} is outside the mask");
            }
        }
    }
    harness.get_by_role_and_label(Role::Button, "Invert mask").click();
    harness.run_steps(2);
    assert_eq!(harness.state().forward.mask.as_ref().unwrap().iter().filter(|m| **m != 0).count(), 784 - painted);
    harness.get_by_role_and_label(Role::Button, "Clear mask").click();
    harness.run_steps(2);
    assert!(!harness.state().forward.has_mask());
}

#[test]
fn an_interpolation_strip_between_two_seeds_fills_in_and_saves_as_png_and_gif() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = harness(quick_settings());
    harness.state_mut().ctx.dialogs.available = false;
    harness.state_mut().ctx.dialogs.export_dir = dir.path().to_path_buf();
    harness.get_by_label("Interpolate").click();
    harness.run_steps(2);
    harness.get_by_label("Between seeds").click();
    harness.get_by_role_and_label(Role::Slider, "Frames").set_value_accesskit(4.0);
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    harness.run_steps(2);
    step_until(&mut harness, "the strip fills", |app| {
        all_done(app) && app.compare.grid.as_ref().is_some_and(|g| g.finished_cells() == 4)
    });
    let strip = harness.state().compare.grid.clone().unwrap();
    assert!(strip.cells.iter().all(Option::is_some));
    assert_eq!(strip.labels.x_title, "u, seed 7 -> 8");
    assert_eq!(strip.requests[3].interpolate.as_ref().unwrap().u, 1.0);
    assert_ne!(strip.cells[0], strip.cells[3]);
    for button in ["Save strip…", "Save strip GIF…"] {
        harness.state_mut().ctx.status = None;
        harness.get_by_role_and_label(Role::Button, button).click();
        step_until(&mut harness, "the save reports", |app| app.ctx.status.is_some());
        assert!(!harness.state().ctx.status.as_ref().unwrap().is_error, "{:?}", harness.state().ctx.status);
    }
    let mut saved: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    saved.sort();
    assert_eq!(saved.len(), 2);
    assert!(std::fs::read(&saved[1]).unwrap().starts_with(b"GIF89a"), "{saved:?}");
    let settings = diffusion_lab::images::png_text(&saved[0]).unwrap();
    let json: serde_json::Value = serde_json::from_str(&settings[0].1).unwrap();
    assert_eq!(json["interpolation"].as_array().unwrap().len(), 4);
    // Its settings restore the strip: A's seed, and interpolation towards seed 8.
    let restored = png_settings::settings_from_png(&saved[0]).unwrap();
    assert_eq!((restored.seed, restored.interpolate.as_ref().and_then(|i| i.seed_b)), (7, Some(8)));
    harness.state_mut().compare.restore_interpolation(&restored.interpolate.unwrap());
    assert_eq!(harness.state().compare.strip.seed_b, 8);
}

/// The Schedule panel warns when x_T keeps part of the image, and clears the warning when T, β_end or the
/// kind move back out of that region; its fixes work, and the Forward process panel shows x_T next to
/// pure noise.
#[test]
fn schedule_sliders_warn_when_x_t_is_not_pure_noise() {
    const WARNING: &str = "x_T is not pure noise";
    let warned = |harness: &Harness<'static, LabApp>| harness.query_all_by_label_contains(WARNING).next().is_some();
    let mut harness = harness(quick_settings());
    harness.state_mut().ctx.fashion_mnist_dir = common::fashion_mnist_fixture();
    harness.run_steps(2);
    harness.get_by_label_contains("Signal left at t = T: sqrt(ᾱ_T) = 0.000");
    assert!(!warned(&harness), "the model's own cosine schedule ends in pure noise");

    harness.get_by_label("Kind").click();
    harness.run_steps(2);
    harness.get_by_label("linear").click();
    harness.run_steps(2);
    assert_eq!(harness.state().ctx.settings.schedule, diffusion_lab::diffusion::BetaSchedule::linear(1000));
    assert!(!warned(&harness), "linear, T = 1000: ᾱ_T = 4e-5");

    // T down to 300: ᾱ_T = 0.048, sqrt 0.22.
    harness.get_by_role_and_label(Role::Slider, "T").set_value_accesskit(300.0);
    harness.run_steps(3);
    assert_eq!(harness.state().ctx.settings.schedule.steps, 300);
    assert!(warned(&harness), "T = 300 leaves 22 % of the image in x_T");
    harness.get_by_label_contains("still holds 22 % of the image");
    harness.get_by_label_contains("FD 55.4 with 78.0 % judged their class");

    // Shown, not only said: x_T beside pure noise in the Forward process panel.
    harness.get_by_label("Show x_T next to pure noise").click();
    step_until(&mut harness, "x_T arrives", |app| app.forward.x_t.as_ref().is_some_and(|(t, ..)| *t == 300));
    harness.run_steps(3);
    harness.get_by_role_and_label(Role::Image, "pure noise");
    harness.get_by_label_contains("x_T still shows the image (22 % of it)");

    // Back out of the region by T, by the fix button.
    let schedule = harness.state().ctx.settings.schedule;
    let fixed_steps = diffusion_lab::diffusion::schedule::terminal_fixes(&schedule).0.unwrap();
    harness.get_by_label(&format!("Raise T to {fixed_steps}")).click();
    harness.run_steps(3);
    assert_eq!(harness.state().ctx.settings.schedule.steps, fixed_steps);
    assert!(!warned(&harness), "T = {fixed_steps} ends in pure noise");

    // Into the region by β_end and out again.
    harness.get_by_role_and_label(Role::Slider, "T").set_value_accesskit(1000.0);
    harness.get_by_role_and_label(Role::Slider, "β_end").set_value_accesskit(0.005);
    harness.run_steps(3);
    assert!(warned(&harness), "β_end = 0.005 leaves 28 % of the image");
    harness.get_by_role_and_label(Role::Slider, "β_end").set_value_accesskit(0.02);
    harness.run_steps(3);
    assert!(!warned(&harness));

    // Into it by T again, out by the kind: cosine ends in pure noise at any T.
    harness.get_by_role_and_label(Role::Slider, "T").set_value_accesskit(200.0);
    harness.run_steps(3);
    assert!(warned(&harness));
    harness.get_by_label("Kind").click();
    harness.run_steps(2);
    harness.get_by_label("cosine").click();
    harness.run_steps(3);
    assert_eq!(harness.state().ctx.settings.schedule.kind, diffusion_lab::diffusion::ScheduleKind::Cosine);
    assert!(!warned(&harness), "cosine, T = 200");
    harness.get_by_role_and_label(Role::Slider, "T").set_value_accesskit(1000.0);
    harness.run_steps(3);
}

#[test]
fn continue_from_here_branches_a_run_with_another_class_and_its_png_reopens_to_the_branch() {
    let mut harness = harness(quick_settings());
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "A finishes", finished);
    // Scrub to a middle step, pick another class, and continue from there.
    harness.get_by_role_and_label(Role::Slider, "Timestep").set_value_accesskit(2.0);
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::ComboBox, "Class").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "7: Sneaker").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "Continue from here").click();
    step_until(&mut harness, "the branch finishes", |app| {
        all_done(app) && app.compare.viewer_b.trajectory.as_ref().is_some_and(|t| t.is_complete())
    });
    let app = harness.state();
    let a = app.generate.viewer.trajectory.as_ref().unwrap();
    let b = app.compare.viewer_b.trajectory.as_ref().unwrap();
    let branch = b.request.branch.as_ref().expect("B is a branch");
    assert_eq!((branch.at_step, &*branch.parent), (2, &a.request), "B continues A from step 2");
    assert_eq!((a.request.class, b.request.class), (Some(0), Some(7)));
    assert_eq!(b.frames.len(), 4, "x_t at step 2, then A's 3 remaining steps with the new class");
    assert_eq!(b.frames[0].x_t, a.frames[2].x_t, "B starts from A's x_t at the step");
    assert_ne!(b.frames[3].x_t, a.frames[5].x_t, "and ends elsewhere");
    harness.get_by_role_and_label(Role::Image, "A images");
    harness.get_by_role_and_label(Role::Image, "B images");
    harness.get_by_label_contains("continued from A's step 2");
    harness.get_by_label_contains("B continues A from its step 2");
    // Scrubbed together: at A's last step B shows its own last.
    harness.get_by_role_and_label(Role::Slider, "Timestep").set_value_accesskit(5.0);
    harness.run_steps(2);
    assert_eq!(harness.state().current_frame_b().unwrap().index, 3);

    // The branch's PNG carries its parent and step, and reopens to the same branch.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("branch.png");
    let app = harness.state();
    let b = app.compare.viewer_b.trajectory.as_ref().unwrap();
    export::save_frame_to(&path, b, 3, app.ctx.settings.quantity, app.ctx.settings.color_map).unwrap();
    let saved = png_settings::settings_from_png(&path).unwrap();
    assert_eq!(saved, b.request);
    let mut other = crate::harness(quick_settings());
    other.state_mut().restore_settings(&saved, "branch.png");
    other.run_steps(2);
    let app = other.state();
    assert_eq!(app.compare.branch_request(&app.ctx.settings).as_ref(), Some(&saved), "the same branch");
    other.get_by_label_contains("B continues A from its step 2");
    other.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut other, "the reopened branch runs (its parent first)", |app| {
        all_done(app) && app.compare.viewer_b.trajectory.as_ref().is_some_and(|t| t.is_complete())
    });
    let reopened = other.state().compare.viewer_b.trajectory.as_ref().unwrap();
    let first = harness.state().compare.viewer_b.trajectory.as_ref().unwrap();
    assert_eq!(reopened.frames.last().unwrap().x_t, first.frames.last().unwrap().x_t, "the same pixels");
}

#[test]
fn when_is_it_decided_shows_a_row_of_continuations_per_step() {
    let mut harness = harness(quick_settings());
    harness.get_by_label("When is it decided?").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Slider, "Continuations per step").set_value_accesskit(3.0);
    harness.get_by_role_and_label(Role::Slider, "Steps continued from").set_value_accesskit(4.0);
    harness.run_steps(2);
    // DDIM η = 0 adds no noise: the window says its stochastic sibling continues.
    harness.get_by_label_contains("its stochastic sibling continues");
    harness.get_by_label_contains("x_t' = c₀ x̂_0 + c₁ x_t + σ z");
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the rows arrive", |app| app.compare.grid.is_some() && app.compare.decided.job.is_none());
    let grid = harness.state().compare.grid.as_ref().unwrap();
    assert_eq!(grid.labels.rows.len(), 4, "a row per step continued from");
    assert_eq!(grid.labels.columns.len(), 4, "x_t, then 3 continuations");
    assert!(grid.cells.iter().all(Option::is_some));
    assert!(grid.labels.rows[0].starts_with("t=1000"), "{:?}", grid.labels.rows);
    // From x_T the continuations are different images; the last step (DDIM into the clean image) draws no
    // noise, so its row is marked deterministic instead of showing a spread of 0 as if measured.
    let spread = |row: &str| row.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    assert!(spread(&grid.labels.rows[0]) > spread(&grid.labels.rows[2]), "{:?}", grid.labels.rows);
    assert!(grid.labels.rows[3].ends_with("deterministic: no noise left"), "{:?}", grid.labels.rows);
    assert!(grid.labels.rows[..3].iter().all(|r| r.contains("spread")), "{:?}", grid.labels.rows);
    harness.get_by_role_and_label(Role::Button, "Save rows…");
}

/// "Branches ask for" reaches the engine's command: the rows come back asked for the picked class, every end
/// judged, each row captioned by its share of the run's own end class, and the verdict shown is the one
/// `decided_from` gives on the rows kept for other panels.
#[test]
fn when_is_it_decided_branches_ask_for_the_picked_class_and_the_rows_are_judged() {
    use diffusion_lab::app::compare::verdict_lines;
    use diffusion_lab::eval::decided::{decided_from, share_caption};
    let settings = Settings { class: Some(2), guidance: 3.0, sampler: Sampler::ddim(6, 1.0), ..quick_settings() };
    let mut harness = harness(settings);
    harness.get_by_label("When is it decided?").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Slider, "Continuations per step").set_value_accesskit(3.0);
    harness.get_by_role_and_label(Role::Slider, "Steps continued from").set_value_accesskit(3.0);
    harness.get_by_role_and_label(Role::ComboBox, "Branches ask for").click();
    harness.run_steps(2);
    harness.get_by_label("7: sneaker").click();
    harness.run_steps(2);
    assert_eq!(harness.state().compare.decided.branch_class, Some(7));
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the rows arrive", |app| app.compare.grid.is_some() && app.compare.decided.job.is_none());
    let app = harness.state();
    let last = app.compare.decided.last.clone().expect("the rows are kept");
    assert_eq!((last.class, last.branch_class), (Some(2), Some(7)), "the picked class reached the command");
    assert_eq!(last.rows.len(), 3);
    assert!(last.rows.iter().all(|r| r.classes.len() == 3), "every end judged");
    let end = last.end_class.expect("the run's end judged");
    assert!(2 * last.rows[0].judged_as(7) > 3, "{:?}", last.rows[0].classes);
    let grid = app.compare.grid.as_ref().unwrap();
    for (row, caption) in last.rows.iter().zip(&grid.labels.rows) {
        assert!(caption.contains(&share_caption(row, Some(end))), "{caption:?}");
    }
    let k = decided_from(&last.rows, end).expect("the last row continues deterministically to the run's end");
    let [formula, numbers, plain] = verdict_lines(&last);
    assert!(numbers.contains(&format!("decided from row {} of 3 (t = {})", k + 1, last.rows[k].t)), "{numbers}");
    assert!(plain.contains("continuations asking for sneaker"), "{plain}");
    harness.get_by_label_contains(&numbers);
    harness.get_by_label_contains(&formula);
    harness.get_by_label(&plain);
}
