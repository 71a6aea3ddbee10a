//! The solver bench (issue 37, part 1): `lab2d --solver-bench` prints each deterministic sampler's order
//! of accuracy against the exact ODE solution (DDIM/Euler about 1, Heun and DPM++ 2M about 2), writes the
//! plot and the table, and refuses a bad step range in one line; the window's "Solver bench" section fills
//! in on the 2-D lab page (egui_kittest, by accessible labels). The exact reference's convergence is a unit
//! test beside the bench (src/lab2d/solver_bench.rs) and is checked here on the printed numbers too.

mod common;

use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diffusion_lab::app::LabApp;
use diffusion_lab::app::lab2d::{LabPhase, SolverPhase};
use diffusion_lab::app::state::Settings;
use diffusion_lab::engine::{DeviceChoice, Engine};
use diffusion_lab::lab2d::solver_bench::SolverMethod;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// The height of the test window (the left column scrolls within it).
const WINDOW_HEIGHT: f32 = 1700.0;

/// The window tests one at a time: the stop test counts the process's bench threads.
static WINDOW: Mutex<()> = Mutex::new(());

/// Threads of this process running a solver bench (engine/lab2d_jobs.rs names them "lab2d-solver-bench",
/// which Linux keeps to its first 15 bytes).
fn bench_threads() -> usize {
    common::thread_names()
        .iter()
        .filter(|name| "lab2d-solver-bench".starts_with(name.as_str()) && name.len() > 10)
        .count()
}

fn lab2d(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_diffusion-lab"));
    command.arg("lab2d").args(args);
    common::output_within(&mut command, Duration::from_secs(600), &format!("lab2d {}", args.join(" ")))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The order printed for `name` (`<name>: order <p>`).
fn order_of(stdout: &str, name: &str) -> f64 {
    let prefix = format!("{name}: order ");
    let line = stdout.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no `{prefix}`: {stdout}"));
    line[prefix.len()..].trim().parse().unwrap_or_else(|_| panic!("not a number: {line}"))
}

/// On two Gaussians (on the two moons a few particles that Euler's error sends into a neighbouring blob
/// dominate its RMS error: tests in src/lab2d/solver_bench.rs): the orders with the exact score are within 0.4 of the theory's, the reference moved
/// less than a tenth of the smallest error when its tolerance was halved, the network's part is printed,
/// and the CSV and the PNG (with the bench in its text) are written.
#[test]
fn the_solver_bench_prints_the_orders_and_writes_the_plot_and_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let (png, csv) = (dir.path().join("orders.png"), dir.path().join("orders.csv"));
    let args = ["--solver-bench", "--preset", "two-gaussians", "--steps", "300", "--particles", "200"];
    let out = lab2d(&[&args[..], &["--out", png.to_str().unwrap(), "--csv", csv.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    println!("{stdout}");
    for method in SolverMethod::ALL {
        let order = order_of(&stdout, method.name());
        let expected = method.expected_order();
        assert!((order - expected).abs() < 0.4, "{}: order {order}, expected {expected}", method.name());
    }
    assert!(stdout.contains("DDIM η = 0 and Euler are the same update"), "{stdout}");
    assert!(!stdout.contains("another blob"), "two Gaussians: no particle changes blob: {stdout}");
    assert!(stdout.contains("learned network (training step 300)"), "{stdout}");
    assert!(stdout.contains("Euler a") && stdout.contains("DPM++ 2M SDE") && stdout.contains("DDPM"), "{stdout}");

    let table = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("denoiser,sampler,kind,steps"), "{}", rows[0]);
    // 3 methods x 6 step counts, for the exact score and for the network.
    assert_eq!(rows.iter().filter(|r| r.contains(",deterministic,")).count(), 2 * 3 * 6, "{table}");
    let chunk = diffusion_lab::images::png_text(&png).unwrap();
    let (_, json) = chunk.iter().find(|(k, _)| k == diffusion_lab::lab2d::LAB2D_CHUNK).expect("the bench's numbers");
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    let change = json["bench"]["reference"]["change_on_halving"].as_f64().unwrap();
    let smallest = json["bench"]["exact"]["curves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["points"].as_array().unwrap().iter().map(|p| p["error"].as_f64().unwrap()))
        .fold(f64::INFINITY, f64::min);
    assert!(
        change < 0.1 * smallest,
        "the reference moved {change} on halving its tolerance; smallest error {smallest}"
    );
}

/// A step range that makes no sense is refused before anything trains: one line, nothing written.
#[test]
fn a_bad_step_range_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("never.png");
    let cases = [
        ("8-256", "write FIRST..LAST"),
        ("64..100", "at least 3 are needed to fit a slope"),
        ("1..8", "between 2 and T = 1000"),
        ("8..4096", "between 2 and T = 1000"),
    ];
    for (range, needle) in cases {
        let out = lab2d(&["--solver-bench", "--bench-steps", range, "--out", png.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{range} should fail");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{range}: one line, got {stderr:?}");
        assert!(stderr.contains(needle), "{range}: {stderr}");
        assert!(out.stdout.is_empty(), "{range}: {}", text(&out.stdout));
        assert!(!png.exists(), "{range} wrote the plot");
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

/// Clicks `label` after scrolling the left column to it and waiting until it stays put.
fn click_scrolled(harness: &mut Harness<'static, LabApp>, label: &str) {
    harness.get_by_label(label).scroll_to_me();
    let mut last = harness.get_by_label(label).rect();
    for _ in 0..120 {
        harness.step();
        let now = harness.get_by_label(label).rect();
        // The scroll may start a frame late: wait until the widget is in the window and stays put.
        if now == last && now.max.y < WINDOW_HEIGHT {
            break;
        }
        last = now;
    }
    harness.get_by_label(label).click();
}

/// A window on the CPU without file dialogs, on the 2-D lab page.
fn lab_page() -> Harness<'static, LabApp> {
    let mut app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), Settings::default());
    app.ctx.dialogs.available = false;
    let mut harness =
        Harness::builder().with_size([1280.0, WINDOW_HEIGHT]).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    harness.run_steps(2);
    harness.get_by_label("2-D lab").click();
    harness.run_steps(2);
    harness
}

/// The page's "Solver bench": a small network trains on the two moons, "Run solver bench" measures the
/// samplers with the exact score and with it, and the orders, the formula's numbers and the network's line
/// appear — the numbers shown are the bench's own.
#[test]
fn the_solver_bench_fills_in_on_the_lab_page() {
    let _one_at_a_time = WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    let mut harness = lab_page();
    harness.state_mut().lab2d.training.steps = 200;
    click_scrolled(&mut harness, "Start training");
    harness.run_steps(1);
    step_until(&mut harness, "training has finished", |app| app.lab2d.training.phase == LabPhase::Trained);

    harness.state_mut().lab2d.solver.particles = 60;
    click_scrolled(&mut harness, "Run solver bench");
    harness.run_steps(1);
    step_until(&mut harness, "the solver bench is done", |app| app.lab2d.solver.is_done());
    harness.run_steps(3);
    let bench = harness.state().lab2d.solver.bench.clone().expect("the bench");
    assert_eq!(bench.settings.particles, 60);
    let network = bench.network.as_ref().expect("the session's network was measured");
    assert_eq!(network.step, harness.state().lab2d.training.step, "the network as trained");
    for curve in &bench.exact.curves {
        let fit = curve.fit.expect("a fitted order");
        let shown = format!(
            "{}: order {:.2}   error ≈ C·N^-p = {:.3}·N^-{:.2}",
            curve.method.name(),
            fit.order,
            fit.constant,
            fit.order
        );
        harness.get_by_label_contains(&shown);
    }
    harness.get_by_label_contains("DDIM with η = 0 and Euler are the same update here");
    harness.get_by_label_contains("A method of order p divides its error by 2^p each time the steps double");
    harness.get_by_label_contains(&format!("its own ODE solution lies {:.2e} from the exact one", network.ode_error));
}

/// "Stop solver bench" stops a bench in the middle: the section no longer measures, the status line says
/// so, the bench's thread ends, and its answer never comes.
#[test]
fn stop_solver_bench_ends_the_measurement() {
    let _one_at_a_time = WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    let mut harness = lab_page();
    // The slider's most: tens of seconds of work on two cores.
    harness.state_mut().lab2d.solver.particles = 2000;
    click_scrolled(&mut harness, "Run solver bench");
    harness.run_steps(1);
    step_until(&mut harness, "the bench's thread runs", |_| bench_threads() > 0);
    assert_eq!(harness.state().lab2d.solver.phase, SolverPhase::Running);
    click_scrolled(&mut harness, "Stop solver bench");
    harness.run_steps(2);
    assert_ne!(harness.state().lab2d.solver.phase, SolverPhase::Running);
    let status = harness.state().ctx.status.as_ref().map(|s| s.text.clone()).unwrap_or_default();
    assert_eq!(status, "2-D lab: the solver bench was stopped");
    step_until(&mut harness, "the bench's thread ends", |_| bench_threads() == 0);
    harness.run_steps(5);
    assert!(harness.state().lab2d.solver.bench.is_none(), "a stopped bench sent its answer");
    assert!(harness.query_by_label("Stop solver bench").is_none(), "Stop stays after the bench stopped");
}
