//! The guidance methods against the exact p(x|y) in the 2-D lab: `lab2d --guidance-bench` prints one line
//! per method × scale and writes the picture and the table, refuses bad input in one line with nothing
//! written, and the window's "Guidance methods" section fills in on the 2-D lab page (driven by its
//! accessible labels). The methods' identities (APG without its parts and rescale at φ = 0 are CFG, CFG++
//! changes DDIM's update, autoguidance at w = 1 is the conditional model) are unit tests in
//! src/lab2d/guided.rs.

mod common;

use diffusion_lab::app::LabApp;
use diffusion_lab::app::lab2d::{GuidancePhase, LabPhase};
use diffusion_lab::app::state::Settings;
use diffusion_lab::diffusion::guidance::GuidanceMethod;
use diffusion_lab::engine::{DeviceChoice, Engine};
use diffusion_lab::lab2d::guidance_bench::bench_scales;
use eframe::egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

use common::{lab2d, text};

/// A short run: two Gaussians, few training steps and particles.
const QUICK: [&str; 7] = ["--guidance-bench", "--preset", "two-gaussians", "--steps", "160", "--particles", "150"];

/// Every method at each of its scales is one printed line with its distance and spread ratio (and the exact
/// scores' where there are), the CSV has a row per run, and the PNG carries the table in its text.
#[test]
fn the_guidance_bench_prints_a_line_per_method_and_scale_and_writes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let (png, csv) = (dir.path().join("guidance.png"), dir.path().join("guidance.csv"));
    let out = lab2d(
        &[&QUICK[..], &["--class", "1", "--out", png.to_str().unwrap(), "--csv", csv.to_str().unwrap()]].concat(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("autoguidance's guide: the same network trained 100 steps"), "{stdout}");
    let mut runs = 0;
    for method in GuidanceMethod::ALL {
        for scale in bench_scales(method) {
            let prefix = format!(
                "{} {} = {scale}",
                method.name(),
                if method == GuidanceMethod::CfgPlusPlus { "λ" } else { "w" }
            );
            let line =
                stdout.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no line {prefix}: {stdout}"));
            assert!(line.contains("sliced W₂ ") && line.contains("spread ×"), "{line}");
            assert_eq!(line.contains("exact scores"), method != GuidanceMethod::Auto, "{line}");
            runs += if method == GuidanceMethod::Auto { 1 } else { 2 };
        }
    }
    let table = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(table.lines().count(), 1 + runs, "{table}");
    assert!(table.starts_with("method,scale,parameters,scores,sliced_wasserstein,energy_distance,spread_ratio"));
    let chunk = diffusion_lab::images::png_text(&png).unwrap();
    let (_, settings) =
        chunk.iter().find(|(k, _)| k == diffusion_lab::lab2d::LAB2D_CHUNK).expect("the bench's numbers");
    let json: serde_json::Value = serde_json::from_str(settings).unwrap();
    assert_eq!(json["guidance_bench"]["class"], 1, "{json}");
    assert_eq!(json["table"].as_str(), Some(table.as_str()));
}

/// Bad input is refused before anything trains: one line on stderr naming the problem, nothing on stdout, no
/// file written.
#[test]
fn bad_guidance_input_is_refused_in_one_line_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("never.png");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--guidance-methods", "cfg,pag"], "unknown guidance method `pag`"),
        (vec!["--guidance-methods", "cfgpp", "--sampler", "heun"], "CFG++ cannot run on Heun"),
        (
            vec!["--guidance-methods", "rescale", "--rescale-phi", "1.5"],
            "guidance rescale φ must be in [0, 1], got 1.5",
        ),
        (vec!["--guidance-methods", "apg", "--apg-momentum", "-1"], "APG's momentum β must be in (-1, 1)"),
        (vec!["--guidance-methods", "auto", "--guide-steps", "0"], "autoguidance needs a guide"),
        (vec!["--class", "5"], "--class 5: the preset two-gaussians has 2 class(es)"),
    ];
    for (args, needle) in cases {
        let out = lab2d(&[&QUICK[..], &args, &["--out", png.to_str().unwrap()]].concat());
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: one line, got {stderr:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
        assert!(!png.exists(), "{args:?} wrote the picture");
    }
}

fn step_until(harness: &mut Harness<'static, LabApp>, what: &str, done: impl Fn(&LabApp) -> bool) {
    common::step_until(harness, what, done, |app| {
        format!(
            "{:?}; training {:?}, guidance {:?}",
            app.ctx.status, app.lab2d.training.phase, app.lab2d.guidance.phase
        )
    });
}

/// On the 2-D lab page: train briefly, open "Guidance methods", pick rescale and see φ on its slider, press
/// "Compare guidance methods":
/// every method's clouds and curves arrive, and the formula on the page carries the φ the run used.
#[test]
fn the_guidance_comparison_fills_in_on_the_lab_page() {
    let mut app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), Settings::default());
    app.ctx.dialogs.available = false;
    let mut harness =
        Harness::builder().with_size([1400.0, 2400.0]).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    harness.run_steps(2);
    harness.get_by_label("2-D lab").click();
    harness.run_steps(2);
    harness.state_mut().lab2d.training.steps = 200;
    harness.state_mut().lab2d.guidance.particles = 120;
    harness.get_by_label("Start training").click();
    harness.run_steps(1);
    step_until(&mut harness, "training has finished", |app| app.lab2d.training.phase == LabPhase::Trained);

    harness.get_by_label("Guidance methods").click();
    harness.run_steps(2);
    harness.get_by_label("Guidance method").click();
    harness.run_steps(2);
    harness.get_by_label("rescale — CFG + rescale").click();
    harness.run_steps(2);
    assert_eq!(harness.state().lab2d.guidance.picked, GuidanceMethod::Rescale);
    harness.state_mut().lab2d.guidance.params.rescale_phi = 0.25;
    harness.run_steps(1);
    let slider = harness.get_by_role_and_label(Role::Slider, "Rescale φ");
    assert_eq!(slider.accesskit_node().numeric_value(), Some(0.25), "the slider shows the φ set");

    harness.get_by_label("Compare guidance methods").scroll_to_me();
    harness.run_steps(4);
    harness.get_by_label("Compare guidance methods").click();
    harness.run_steps(1);
    step_until(&mut harness, "the guidance comparison arrived", |app| {
        app.lab2d.guidance.phase != GuidancePhase::Running
    });
    let panel = &harness.state().lab2d.guidance;
    assert_eq!(panel.phase, GuidancePhase::Done, "{:?}", harness.state().ctx.status);
    let bench = panel.bench.clone().unwrap();
    assert_eq!(bench.curves.len(), GuidanceMethod::ALL.len());
    let rescale = bench.curves.iter().find(|c| c.method() == GuidanceMethod::Rescale).unwrap();
    assert_eq!(rescale.params.rescale_phi, 0.25, "the φ set is the φ used");
    harness.run_steps(2);
    // The numbers shown are the numbers used: the page's formula is the run's, with φ = 0.25 and 1 - φ.
    let shown = format!("at its default w = 7.5: {}", rescale.formula_at(7.5, bench.guide_steps));
    assert!(shown.contains("0.25 · ε̂_cfg") && shown.contains("0.75 · ε̂_cfg"), "{shown}");
    assert!(harness.query_by_label(&shown).is_some(), "the page shows {shown}");
    assert!(harness.query_by_label("Guidance methods against the exact p(x|y)").is_some());
    for curve in &bench.curves {
        assert_eq!(curve.network.len(), bench_scales(curve.method()).len());
        assert!(curve.network.iter().all(|p| p.distances.sliced_wasserstein.is_finite() && p.spread_ratio > 0.0));
    }
    assert!(bench.guide_steps.is_some(), "autoguidance's guide was trained");
}
