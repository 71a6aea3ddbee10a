//! Likelihood by the probability-flow ODE in the 2-D lab: on a trained preset the four numbers (true, ODE
//! with the exact score, ODE with the network, the network's bound) are finite and as ordered as theory
//! guarantees; `lab2d --likelihood` prints them and refuses bad input in one line; the window's
//! "Likelihood" section fills in.

mod common;

use common::{lab2d, text};

use std::time::{Duration, Instant};

use burn::prelude::Device;
use diffusion_lab::app::LabApp;
use diffusion_lab::app::lab2d::LabPhase;
use diffusion_lab::app::state::Settings;
use diffusion_lab::diffusion::BetaSchedule;
use diffusion_lab::engine::{DeviceChoice, Engine};
use diffusion_lab::lab2d::data::{PointData, Preset};
use diffusion_lab::lab2d::likelihood::{Column, LikelihoodSettings, lab_likelihood};
use diffusion_lab::lab2d::recipes::recipe_lab;
use diffusion_lab::train::recipe::Recipe;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// Two Gaussians trained for 800 steps: every number finite; the exact score's ODE is the true density
/// (to 1e-5 bits/dim); and, by Gibbs' inequality, the mean bound is at least the true density's mean
/// (E_q[-log p] ≥ E_q[-log q] for any normalised p, and the bound is above -log p of the reverse SDE's
/// model), up to three standard errors of the paired difference over the points drawn. The bound and the
/// ODE's likelihood are of two different models (the reverse SDE's and the ODE's), so no order between
/// them is asserted.
#[test]
fn a_trained_network_has_finite_likelihoods_and_the_bound_is_above_the_truth() {
    let device = Device::flex();
    let data = PointData::from_preset(Preset::TwoGaussians, 2000, 1);
    let mut lab = recipe_lab(data, Recipe::usual(diffusion_lab::diffusion::Objective::Eps), 800, 1, &device);
    for _ in 0..800 {
        lab.train_step();
    }
    let settings =
        LikelihoodSettings { points: 100, bound_stride: 10, ..LikelihoodSettings::full(BetaSchedule::cosine(1000)) };
    let report = lab_likelihood(&lab, &settings, &device).unwrap();
    println!("{}\n{}", report.table_lines().join("\n"), report.gap_line());
    for row in &report.rows {
        for column in Column::ALL {
            assert!(column.bits(row).is_finite(), "{column:?} at {:?}", row.point);
        }
        let (exact, truth) = (Column::OdeExact.bits(row), Column::True.bits(row));
        assert!((exact - truth).abs() < 1e-5, "at {:?}: ODE exact {exact} vs true {truth}", row.point);
    }
    let gap = report.difference(Column::Bound, Column::True);
    assert!(gap.mean > -3.0 * gap.standard_error, "bound below the truth: {gap:?}");
    assert!(report.network_stats.evaluations > 0 && report.exact_stats.evaluations > 0);
}

/// `lab2d --likelihood` on a short run prints the four numbers and the formula's parts, and writes one
/// CSV row per point.
#[test]
fn lab2d_likelihood_prints_the_four_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("likelihood.csv");
    let args = ["--preset", "two-gaussians", "--steps", "100", "--likelihood", "--likelihood-points", "12"];
    let out = lab2d(&[&args[..], &["--likelihood-stride", "50", "--csv", csv.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for column in Column::ALL {
        let line = stdout.lines().find(|l| l.trim_start().starts_with(column.label()));
        let line = line.unwrap_or_else(|| panic!("no line for {}: {stdout}", column.label()));
        assert!(line.contains(" ± "), "{line}");
    }
    assert!(stdout.contains("log p_0(x_0) = log p_T(x_T) + 2 ln α_T + ∫ ∇·f ds"), "{stdout}");
    let written = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(written.lines().next(), Some("x,y,true,ode_exact,ode_network,bound"));
    assert_eq!(written.lines().count(), 13, "{written}");
}

/// Bad input is refused before anything trains: one line on stderr, nothing on stdout.
#[test]
fn bad_likelihood_input_is_refused_in_one_line() {
    let quick = ["--preset", "two-gaussians", "--steps", "10", "--likelihood"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--likelihood-points", "0"], "--likelihood-points and --likelihood-stride must be at least 1"),
        (vec!["--likelihood-stride", "0"], "--likelihood-points and --likelihood-stride must be at least 1"),
        (vec!["--likelihood-tolerance", "0.5"], "the ODE tolerance must be in (0, 0.1), got 0.5"),
        (vec!["--objective", "noise"], "unknown objective `noise`"),
    ];
    for (args, needle) in cases {
        let out = lab2d(&[&quick[..], &args].concat());
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: one line, got {stderr:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}

fn step_until(harness: &mut Harness<'static, LabApp>, what: &str, done: impl Fn(&LabApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done(harness.state()) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}: {:?}", harness.state().ctx.status);
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The window: train two Gaussians briefly, click "Measure likelihood", and the section shows the table
/// and the change of variables with the numbers the report holds.
#[test]
fn the_likelihood_section_fills_in_on_the_lab_page() {
    let app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), Settings::default());
    let mut harness =
        Harness::builder().with_size([1280.0, 2400.0]).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    harness.run_steps(2);
    harness.get_by_label("2-D lab").click();
    harness.run_steps(2);
    harness.state_mut().lab2d.training.steps = 200;
    harness.get_by_label("Start training").click();
    harness.run_steps(1);
    step_until(&mut harness, "training has finished", |app| app.lab2d.training.phase == LabPhase::Trained);
    harness.get_by_label("Measure likelihood").scroll_to_me();
    harness.run_steps(10);
    harness.get_by_label("Measure likelihood").click();
    harness.run_steps(1);
    step_until(&mut harness, "the likelihood arrived", |app| app.lab2d.likelihood.report.is_some());
    harness.run_steps(2);
    let report = harness.state().lab2d.likelihood.report.clone().unwrap();
    for column in Column::ALL {
        harness.get_by_label(column.label());
        let shown = format!("{:.4}", report.mean(column).mean);
        assert!(harness.query_all_by_label(&shown).count() >= 1, "{column:?}'s mean {shown} is not on the page");
    }
    let parts = report.flow_parts(Column::OdeNetwork).unwrap();
    let formula = diffusion_lab::app::lab2d::likelihood_formula_line(parts);
    harness.get_by_label_contains(&formula);
    harness.get_by_label_contains("Measured: the bound is");
}
