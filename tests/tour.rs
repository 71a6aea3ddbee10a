//! The Tour in the window, through egui_kittest by accessible labels: walked by its Next button, every step
//! sets its state (read from the app, not from pixels), every task fails when not done and passes when done as
//! asked, Back sets a step's state again, and leaving restores the settings the user had. Presenter mode at
//! 1280x720: body text of 20 px or more, the left column hidden, no text clipped.

mod common;

use std::time::{Duration, Instant};

use diffusion_lab::app::compare::Mode;
use diffusion_lab::app::context::Highlight;
use diffusion_lab::app::lab2d::LabPhase;
use diffusion_lab::app::state::{Overlay, RunStatus, Settings};
use diffusion_lab::app::tour::sampling_step_sampler;
use diffusion_lab::app::{LabApp, Page};
use diffusion_lab::diffusion::equation::{equation, number_text};
use diffusion_lab::diffusion::{BetaSchedule, Sampler, ScheduleKind};
use diffusion_lab::engine::{DeviceChoice, Engine};
use diffusion_lab::tour::{STEPS, StepId};
use eframe::egui;
use eframe::egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// Tall enough that every control of the left columns is on screen for a click.
const WINDOW: [f32; 2] = [1280.0, 2000.0];

/// The user's own settings before the tour: deliberately unlike every step's.
fn users_settings() -> Settings {
    Settings {
        batch: 1,
        seed: 7,
        class: Some(4),
        guidance: 2.0,
        sampler: Sampler::ddim(5, 0.0),
        schedule: BetaSchedule::linear(800),
        prompt: "light shirt".into(),
        ..Settings::default()
    }
}

fn harness(size: [f32; 2]) -> Harness<'static, LabApp> {
    let mut app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), users_settings());
    app.ctx.dialogs.available = false;
    // The Forward panel's test image from the fixture, so the posterior and its curve need no data set.
    app.ctx.fashion_mnist_dir = common::fashion_mnist_fixture();
    let mut harness = Harness::builder().with_size(size).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    step_until(&mut harness, "the models load", |app| app.ctx.models.loaded.len() >= 3 && app.model_info().is_some());
    harness
}

fn step_until(harness: &mut Harness<'static, LabApp>, what: &str, done: impl Fn(&LabApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done(harness.state()) {
        let app = harness.state();
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: run {:?}, status {:?}, tour step {}",
            app.generate.run,
            app.ctx.status,
            app.tour.index
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.run_steps(2);
}

fn click(harness: &mut Harness<'static, LabApp>, label: &str) {
    harness.get_by_label(label).click();
    harness.run_steps(2);
}

/// Clicks a widget of a long left column after scrolling to it (scrolling is animated: wait until it stays).
fn click_scrolled(harness: &mut Harness<'static, LabApp>, label: &str) {
    harness.get_by_label(label).scroll_to_me();
    let mut last = harness.get_by_label(label).rect();
    for _ in 0..100 {
        harness.run_steps(1);
        let now = harness.get_by_label(label).rect();
        if now == last {
            break;
        }
        last = now;
    }
    click(harness, label);
}

fn set_slider(harness: &mut Harness<'static, LabApp>, label: &str, value: f64) {
    harness.get_by_role_and_label(Role::Slider, label).set_value_accesskit(value);
    harness.run_steps(2);
}

/// Generate with the settings of the moment and wait for the run to finish.
fn generate(harness: &mut Harness<'static, LabApp>) {
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    harness.run_steps(2);
    step_until(harness, "the run finishes", |app| {
        !app.is_running() && matches!(app.generate.run, RunStatus::Finished { .. } | RunStatus::Failed(_))
    });
    let run = &harness.state().generate.run;
    assert!(matches!(run, RunStatus::Finished { cancelled: false, .. }), "{run:?}");
}

/// Presses Check and asserts the app's answer; a wrong try also shows the hint.
fn check(harness: &mut Harness<'static, LabApp>, done: bool) {
    click(harness, "Check");
    let outcome = harness.state().tour.outcome.clone();
    let id = harness.state().tour.step_id();
    assert_eq!(outcome.as_ref().map(|o| o.is_done()), Some(done), "{id:?}: {outcome:?}");
    if !done {
        harness.get_by_label_contains("Hint: ");
    } else {
        harness.get_by_label_contains("Done. ");
    }
}

/// What step `id` set, read from the app's state.
fn assert_step_state(app: &LabApp, id: StepId) {
    let settings = &app.ctx.settings;
    let lab = matches!(id, StepId::Lab2d | StepId::Recipes | StepId::ExactAnswers);
    assert_eq!(app.page, if lab { Page::Lab2d } else { Page::Generate }, "{id:?}");
    let short = match id {
        StepId::Latent => "latent",
        StepId::Prompts => "fashion-text",
        _ => "fashion",
    };
    let model = diffusion_lab::model::embedded::model_by_short_name(short).unwrap();
    assert_eq!(settings.model.label(), model.name, "{id:?}");
    let forward =
        matches!(id, StepId::Forward | StepId::ClosedForm | StepId::Schedule | StepId::Posterior | StepId::Loss);
    assert_eq!(app.forward.open, forward, "{id:?}");
    let highlight = match id {
        StepId::Forward | StepId::ClosedForm => Highlight::ForwardT,
        StepId::Schedule => Highlight::Schedule,
        StepId::Posterior | StepId::Loss => Highlight::Posterior,
        StepId::SamplingStep => Highlight::ThisStep,
        StepId::Sampler => Highlight::Sampler,
        StepId::CrossAttention => Highlight::Attention,
        StepId::Guidance => Highlight::Guidance,
        StepId::Decided => Highlight::Compare,
        StepId::Latent => Highlight::Quantity,
        StepId::Prompts => Highlight::Prompt,
        StepId::Lab2d => Highlight::Lab2dTraining,
        StepId::Recipes => Highlight::Lab2dRecipes,
        StepId::ExactAnswers => Highlight::Lab2dSolver,
    };
    assert_eq!(app.ctx.highlight, Some(highlight), "{id:?}");
    assert_eq!(app.compare.mode, if id == StepId::Decided { Mode::Decided } else { Mode::Single }, "{id:?}");
    match id {
        StepId::Forward => assert_eq!(app.forward.t, 1),
        StepId::ClosedForm => assert_eq!(app.forward.t, 100),
        StepId::Schedule => {
            assert_eq!((settings.schedule.kind, settings.schedule.beta_end), (ScheduleKind::Linear, 0.004));
            assert_eq!(app.forward.t, 1000);
        }
        StepId::Posterior | StepId::Loss => assert_eq!(app.forward.t, 500),
        StepId::SamplingStep => assert!(settings.this_step && settings.sampler == sampling_step_sampler()),
        StepId::Sampler => assert_eq!(settings.sampler, Sampler::ddim(50, 1.0)),
        StepId::CrossAttention => assert!(settings.overlay == Overlay::Attention && !settings.attention.summed),
        StepId::Guidance => {
            assert_eq!(
                (settings.overlay, settings.guidance, settings.guidance_interval),
                (Overlay::Guidance, 3.0, None)
            )
        }
        StepId::Decided => {
            assert_eq!(settings.class, Some(diffusion_lab::tour::DECIDED_CLASS));
            assert_eq!(app.compare.decided.branch_class, Some(diffusion_lab::tour::DECIDED_BRANCH_CLASS));
        }
        StepId::Prompts => assert!(settings.prompt.is_empty()),
        _ => {}
    }
    if !matches!(id, StepId::Schedule) {
        assert_eq!(settings.schedule, BetaSchedule::cosine(1000), "{id:?}");
    }
}

/// The numbers the sampling step shows are those of the step on screen: rebuilt here from the run's plan.
fn assert_sampling_numbers_shown(harness: &Harness<'static, LabApp>, index: usize) {
    let app = harness.state();
    let request = &app.generate.viewer.trajectory.as_ref().unwrap().request;
    let plan = request.sampler.plan(&request.schedule.build().unwrap()).unwrap();
    let coefficients: Vec<String> = equation(&request.sampler, &plan, index - 1)
        .coefficients()
        .map(|(term, value)| format!("{} × {term}", number_text(value)))
        .collect();
    harness.get_by_label_contains(&format!("step {index} of {}: x_t' = {}", plan.len(), coefficients.join(" + ")));
}

/// Does step `id`'s task wrongly (Check says not yet, with the hint), then as asked (Check says done).
fn do_task(harness: &mut Harness<'static, LabApp>, id: StepId) {
    match id {
        StepId::Forward => assert!(harness.query_by_label("Check").is_none(), "the first step has no task"),
        StepId::ClosedForm => {
            check(harness, false);
            set_slider(harness, "Forward t", 700.0);
            check(harness, true);
            // Next and Back set the step's own state again.
            click(harness, "Next");
            click(harness, "Back");
            assert_eq!(harness.state().forward.t, 100);
            assert!(harness.state().tour.outcome.is_none());
        }
        StepId::Schedule => {
            check(harness, false);
            set_slider(harness, "β_end", 0.02);
            check(harness, true);
        }
        StepId::Posterior => {
            check(harness, false);
            set_slider(harness, "Forward t", 1.0);
            check(harness, true);
        }
        StepId::Loss => {
            step_until(harness, "the L_{t-1} curve arrives", |app| !app.forward.posterior.curve.is_empty());
            let curve = harness.state().forward.posterior.curve.clone();
            let peak = curve.iter().filter(|c| c.1.is_finite()).max_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0;
            set_slider(harness, "Forward t", if peak > 500 { 1.0 } else { 1000.0 });
            check(harness, false);
            set_slider(harness, "Forward t", peak as f64);
            check(harness, true);
        }
        StepId::SamplingStep => {
            check(harness, false);
            generate(harness);
            set_slider(harness, "Timestep", 1.0);
            assert_sampling_numbers_shown(harness, 1);
            check(harness, false);
            set_slider(harness, "Timestep", 20.0);
            assert_sampling_numbers_shown(harness, 20);
            check(harness, true);
        }
        StepId::Sampler => {
            generate(harness);
            check(harness, false);
            set_slider(harness, "η", 0.0);
            set_slider(harness, "Steps", 8.0);
            generate(harness);
            check(harness, true);
        }
        StepId::CrossAttention => {
            generate(harness);
            check(harness, false);
            step_until(harness, "the run's attention arrives", |app| {
                app.generate.viewer.step.attention_ready(app.generate.viewer.serial)
            });
            click(harness, "Summed over steps");
            check(harness, true);
        }
        StepId::Guidance => {
            check(harness, false);
            click(harness, "Guide only within a λ interval");
            set_slider(harness, "guide to λ", 20.0);
            set_slider(harness, "guide from λ", 1.0);
            check(harness, true);
        }
        StepId::Decided => decided_task(harness),
        StepId::Latent => {
            check(harness, false);
            generate(harness);
            check(harness, false);
            click(harness, "latent channels");
            check(harness, true);
        }
        StepId::Prompts => {
            check(harness, false);
            let field = harness.get_by_role_and_label(Role::TextInput, "Prompt");
            field.click();
            field.type_text("dark sneaker");
            harness.run_steps(2);
            generate(harness);
            check(harness, true);
        }
        StepId::Lab2d => {
            check(harness, false);
            click_scrolled(harness, "Start training");
            step_until(harness, "the 2-D network trains", |app| app.lab2d.training.phase == LabPhase::Trained);
            click_scrolled(harness, "Sample particles");
            step_until(harness, "the particles arrive", |app| app.lab2d.has_particles());
            check(harness, true);
            // The numbers shown are the training's own.
            let (step, distances) = harness.state().lab2d.training.distances.last().cloned().unwrap();
            let w2 = number_text(distances.sliced_wasserstein);
            harness.get_by_label_contains(&format!("sliced W₂ of the samples to the data at step {step} = {w2}"));
        }
        StepId::Recipes => {
            check(harness, false);
            click_scrolled(harness, "Train side by side");
            step_until(harness, "both recipes are measured", |app| app.lab2d.recipes.is_done());
            check(harness, true);
            let shown: Vec<String> = harness
                .state()
                .lab2d
                .recipes
                .compared
                .iter()
                .map(|(recipe, progress)| {
                    let report = progress.report.as_ref().unwrap();
                    let fewest = &report.distances[0];
                    let ratio = number_text(report.straightness.length_ratio);
                    format!(
                        "{}: L/D = {ratio}, W₂ at {} steps = {}",
                        recipe.label(),
                        fewest.steps,
                        number_text(fewest.usual)
                    )
                })
                .collect();
            for line in shown {
                harness.get_by_label_contains(&line);
            }
        }
        StepId::ExactAnswers => {
            check(harness, false);
            click_scrolled(harness, "Run solver bench");
            step_until(harness, "the solver bench runs", |app| app.lab2d.solver.is_done());
            check(harness, true);
            let bench = harness.state().lab2d.solver.bench.clone().unwrap();
            for curve in &bench.exact.curves {
                let order = curve.fit.unwrap().order;
                harness.get_by_label_contains(&format!("{}: order p = {order:.2}", curve.method.name()));
            }
        }
    }
}

/// The rows are the app's own: the right answer is read from them here as the task reads them, then a wrong
/// row is refused and the right one accepted, each typed into "My answer: row".
fn decided_task(harness: &mut Harness<'static, LabApp>) {
    use diffusion_lab::eval::decided::decided_from;
    check(harness, false);
    harness.state_mut().compare.decided.continuations = 4;
    harness.state_mut().compare.decided.points = 4;
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    harness.run_steps(2);
    step_until(harness, "the judged rows arrive", |app| {
        app.compare.decided.job.is_none() && app.compare.decided.last.is_some()
    });
    let last = harness.state().compare.decided.last.clone().unwrap();
    assert_eq!(last.branch_class, Some(diffusion_lab::tour::DECIDED_BRANCH_CLASS));
    let first = decided_from(&last.rows, last.end_class.unwrap()).unwrap() + 1;
    let wrong = if first > 1 { first - 1 } else { first + 1 };
    let answer = |harness: &mut Harness<'static, LabApp>, row: usize| {
        harness.get_by_role_and_label(Role::SpinButton, "My answer: row").set_value_accesskit(row as f64);
        harness.run_steps(2);
        assert_eq!(harness.state().tour.decided_answer, row);
    };
    answer(harness, wrong);
    check(harness, false);
    answer(harness, first);
    check(harness, true);
}

#[test]
fn the_tour_walks_the_story_by_next_and_checks_every_task() {
    let mut harness = harness(WINDOW);
    let before = harness.state().ctx.settings.clone();
    // Small 2-D jobs: the lab's panels keep their own sizes (not settings the tour restores).
    harness.state_mut().lab2d.training.steps = 300;
    harness.state_mut().lab2d.recipes.steps = 150;
    harness.state_mut().lab2d.solver.particles = 60;
    click(&mut harness, "Tour");
    assert!(harness.state().tour.open);
    for (i, step) in STEPS.iter().enumerate() {
        assert_eq!(harness.state().tour.index, i);
        assert_step_state(harness.state(), step.id);
        harness.get_by_label(step.title);
        do_task(&mut harness, step.id);
        click(&mut harness, if i + 1 == STEPS.len() { "Finish" } else { "Next" });
    }
    let app = harness.state();
    assert!(!app.tour.open && app.ctx.highlight.is_none());
    assert_eq!(app.ctx.settings, before, "leaving the tour restores the user's settings");
    assert_eq!((app.page, app.forward.open, app.compare.mode), (Page::Generate, false, Mode::Single));
}

/// Leaving from the middle (the tab's Tour switch) restores the settings too, and the page.
#[test]
fn leaving_the_tour_midway_restores_the_window() {
    let mut harness = harness([1280.0, 860.0]);
    let before = harness.state().ctx.settings.clone();
    click(&mut harness, "Tour");
    for _ in 0..12 {
        click(&mut harness, "Next");
    }
    assert_eq!(harness.state().page, Page::Lab2d);
    click(&mut harness, "Leave tour");
    let app = harness.state();
    assert_eq!(app.ctx.settings, before);
    assert_eq!(app.page, Page::Generate);
    assert!(!app.tour.open);
}

/// Presenter mode at 1280x720: every step's text at 20 px or more, the left column hidden, nothing clipped
/// (every label of the tour's panel inside the window), the keyboard steps through.
#[test]
fn presenter_mode_is_large_and_unclipped_at_1280x720() {
    const SIZE: [f32; 2] = [1280.0, 720.0];
    let mut harness = harness(SIZE);
    click(&mut harness, "Tour");
    click(&mut harness, "Presenter mode");
    assert!(harness.state().tour.presenter);
    for (i, step) in STEPS.iter().enumerate() {
        harness.run_steps(3);
        assert_eq!(harness.state().tour.index, i);
        let body = harness.ctx.global_style().text_styles[&egui::TextStyle::Body].size;
        assert!(body >= 20.0, "body text {body} px");
        assert_eq!(harness.state().ctx.settings.zoom, 6.0, "pictures 1.5 times the user's zoom of 4");
        assert!(harness.query_by_role_and_label(Role::Slider, "Batch").is_none(), "the left column is hidden");
        let title = harness.get_by_label(step.title).rect();
        assert!(title.height() >= 20.0, "{}: the title is {} px high", step.title, title.height());
        let panel_left = title.left() - 20.0;
        // Above the status bar, which the panel ends at.
        let floor = harness.get_by_label_contains("display: ").rect().top();
        let screen = egui::Rect::from_min_max(egui::Pos2::ZERO, egui::pos2(SIZE[0], floor));
        let mut texts = 0;
        for node in harness.query_all_by_role(Role::Label) {
            let rect = node.rect();
            if rect.left() >= panel_left {
                texts += 1;
                assert!(screen.contains_rect(rect), "step {}: {:?} is clipped at {rect:?}", i + 1, node);
            }
        }
        assert!(texts >= 5, "step {}: {texts} texts in the tour's panel", i + 1);
        // The buttons at the panel's bottom are on screen too.
        let last = if i + 1 == STEPS.len() { "Finish" } else { "Next" };
        let mut buttons = vec![last];
        if step.task.is_some() {
            buttons.push("Check");
        }
        for label in buttons {
            let rect = harness.get_by_role_and_label(Role::Button, label).rect();
            assert!(screen.contains_rect(rect), "step {}: {label} is off screen at {rect:?}", i + 1);
        }
        if std::env::var("TOUR_PRINT").is_ok() {
            let bottom = harness.query_all_by_role(Role::Label).map(|n| n.rect().bottom()).fold(0.0f32, f32::max);
            eprintln!("step {}: {texts} texts, lowest text at {bottom}", i + 1);
        }
        harness.key_press(egui::Key::PageDown);
    }
    harness.run_steps(2);
    assert_eq!(harness.state().tour.index, STEPS.len() - 1);
    harness.key_press(egui::Key::PageUp);
    harness.run_steps(2);
    assert_eq!(harness.state().tour.index, STEPS.len() - 2);
    harness.key_press(egui::Key::Escape);
    harness.run_steps(2);
    assert!(!harness.state().tour.presenter);
    let body = harness.ctx.global_style().text_styles[&egui::TextStyle::Body].size;
    assert!(body < 20.0, "leaving presenter mode restores the text size ({body})");
    assert_eq!(harness.state().ctx.settings.zoom, 4.0);
    // Leaving the tour by the tab bar's switch from presenter mode restores the text size too.
    click(&mut harness, "Presenter mode");
    assert!(harness.ctx.global_style().text_styles[&egui::TextStyle::Body].size >= 20.0);
    click(&mut harness, "Tour");
    assert!(!harness.state().tour.open && !harness.state().tour.presenter);
    let body = harness.ctx.global_style().text_styles[&egui::TextStyle::Body].size;
    assert!(body < 20.0, "leaving the tour from presenter mode restores the text size ({body})");
}
