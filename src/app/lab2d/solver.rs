//! [`SolverPanel`]: the solver bench on the page (`lab2d::solver_bench`). From the same x_T, the exact
//! probability-flow ODE solution of the page's data (its exact ε*, integrated adaptively in f64) against
//! DDIM η = 0 (= Euler), Heun and DPM++ 2M at 8 to 256 steps: each one's error at the last positive noise
//! level on a log-log plot, its fitted order p (error ∝ N^-p) with the formula's numbers, the stochastic
//! samplers' distances beside them, and the same with the session's network in place of ε*. The "Solver
//! bench" section of the left column starts it; the results are drawn in the middle.

use std::sync::Arc;

use eframe::egui::{self, Color32};
use egui_plot::{GridMark, HLine, Legend, Line, LineStyle, Plot, PlotPoints, Points};

use super::plot::color32;
use crate::app::context::PanelContext;
use crate::engine::Measurement;
use crate::engine::lab2d::Lab2dCommand;
use crate::lab2d::data::PointData;
use crate::lab2d::solver_bench::{BenchSettings, SolverBench, SolverMethod};
use crate::lab2d::solver_figure::method_color;

/// Where the bench stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolverPhase {
    Empty,
    Running,
    Done,
    Failed,
}

pub struct SolverPanel {
    /// Particles of the next bench.
    pub particles: usize,
    pub phase: SolverPhase,
    key: u64,
    pub bench: Option<Arc<SolverBench>>,
}

impl Default for SolverPanel {
    fn default() -> Self {
        Self { particles: 300, phase: SolverPhase::Empty, key: 0, bench: None }
    }
}

impl SolverPanel {
    pub fn is_done(&self) -> bool {
        self.phase == SolverPhase::Done
    }

    /// Starts the bench on `data` (the session's network joins it when it trained on the same data).
    pub fn start(&mut self, ctx: &mut PanelContext, data: PointData) {
        self.key += 1;
        self.phase = SolverPhase::Running;
        let settings =
            BenchSettings { schedule: ctx.settings.schedule, particles: self.particles, ..Default::default() };
        ctx.engine.lab2d(Lab2dCommand::SolverBench { key: self.key, data, settings });
    }

    pub fn on_benched(&mut self, ctx: &mut PanelContext, key: u64, bench: Arc<SolverBench>) {
        if key == self.key {
            self.bench = Some(bench);
            self.phase = SolverPhase::Done;
            ctx.set_status("2-D lab: the solver bench is done", false);
        }
    }

    /// Stops the running bench; the last finished one stays on screen.
    fn stop(&mut self, ctx: &mut PanelContext) {
        ctx.engine.lab2d(Lab2dCommand::StopMeasurement(Measurement::SolverBench));
        // An answer already on its way belongs to the stopped bench.
        self.key += 1;
        self.phase = if self.bench.is_some() { SolverPhase::Done } else { SolverPhase::Empty };
        ctx.set_status("2-D lab: the solver bench was stopped".to_string(), false);
    }

    pub fn on_failed(&mut self, ctx: &mut PanelContext, key: u64, message: &str) {
        if key == self.key {
            self.phase = SolverPhase::Failed;
            ctx.set_status(format!("2-D lab, solver bench: {message}"), true);
        }
    }

    /// The "Solver bench" section of the left column; true when "Run solver bench" was pressed (offered
    /// when `can_start`: there is data).
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, can_start: bool) -> bool {
        ui.heading("Solver bench");
        ui.weak(
            "Each sampler against the exact answer: the probability-flow ODE solved accurately with the data's \
             exact score, from the same x_T. With a trained network, its samplers are measured too.",
        );
        ui.add(egui::Slider::new(&mut self.particles, 50..=2000).logarithmic(true).text("Bench particles"));
        let start = ui
            .add_enabled(can_start && self.phase != SolverPhase::Running, egui::Button::new("Run solver bench"))
            .clicked();
        match self.phase {
            SolverPhase::Running => {
                ui.label("measuring: 3 samplers × 6 step counts, and the stochastic ones…");
                if ui.button("Stop solver bench").on_hover_text("stop the bench; the last one stays").clicked() {
                    self.stop(ctx);
                }
            }
            SolverPhase::Done => {
                ui.label("done: the plot and the orders are below the plot");
            }
            SolverPhase::Empty | SolverPhase::Failed => {}
        }
        start
    }

    /// The middle: the log-log plot, the orders with their formula, the stochastic samplers, the network.
    pub fn results_ui(&self, ui: &mut egui::Ui) {
        let Some(bench) = self.bench.as_deref() else { return };
        ui.separator();
        ui.heading("Solver bench");
        ui.label(format!(
            "RMS error against the exact ODE solution at the last positive noise level (σ/α = {:.5}), Karras spacing \
             from σ/α = {:.0}, x̂₀ unclipped, in f64; solid: exact ε*, dashed: the learned network",
            bench.last_sigma, bench.first_sigma
        ));
        plot_ui(ui, bench);
        orders_ui(ui, bench);
        network_ui(ui, bench);
        stochastic_ui(ui, bench);
    }
}

fn color(method: SolverMethod) -> Color32 {
    color32(method_color(method))
}

/// log₁₀ error against log₂ N, a line per method (the network's dashed), the network's ODE error gray.
fn plot_ui(ui: &mut egui::Ui, bench: &SolverBench) {
    let steps = bench.settings.steps.clone();
    Plot::new("solver bench error by steps")
        .width(ui.available_width().clamp(300.0, 560.0))
        .height(260.0)
        .legend(Legend::default())
        .x_axis_label("steps N")
        .y_axis_label("RMS error")
        .x_grid_spacer(move |_| steps.iter().map(|&n| GridMark { value: (n as f64).log2(), step_size: 1.0 }).collect())
        .x_axis_formatter(|mark, _| format!("{:.0}", mark.value.exp2()))
        .y_axis_formatter(|mark, _| format!("1e{:.0}", mark.value))
        .show(ui, |plot| {
            let xy = |n: usize, e: f64| [(n as f64).log2(), e.max(1e-300).log10()];
            for curve in &bench.exact.curves {
                let points: Vec<[f64; 2]> = curve.points.iter().map(|p| xy(p.steps, p.error)).collect();
                let name = curve.method.name().to_string();
                plot.line(
                    Line::new(name.clone(), PlotPoints::from(points.clone())).color(color(curve.method)).width(2.0),
                );
                plot.points(Points::new(name, PlotPoints::from(points)).color(color(curve.method)).radius(3.0));
            }
            if let Some(network) = &bench.network {
                for curve in &network.table.curves {
                    let points: Vec<[f64; 2]> = curve.points.iter().map(|p| xy(p.steps, p.error)).collect();
                    let line = Line::new(format!("{} (network)", curve.method.name()), PlotPoints::from(points));
                    plot.line(line.color(color(curve.method)).style(LineStyle::dashed_dense()));
                }
                plot.hline(HLine::new("the network's own ODE", network.ode_error.log10()).color(Color32::GRAY));
            }
        });
}

/// Each method's order and the formula error ≈ C·N^-p with its numbers, the doubling it implies, and what
/// it means.
fn orders_ui(ui: &mut egui::Ui, bench: &SolverBench) {
    for curve in &bench.exact.curves {
        let Some(fit) = curve.fit else { continue };
        let halving = match curve.points.as_slice() {
            [.., a, b] => format!(
                "; from {} to {} steps its error went from {:.2e} to {:.2e}, divided by {:.2} (2^p = {:.2})",
                a.steps,
                b.steps,
                a.error,
                b.error,
                a.error / b.error,
                2f64.powf(fit.order)
            ),
            _ => String::new(),
        };
        ui.label(
            egui::RichText::new(format!(
                "{}: order {:.2}   error ≈ C·N^-p = {:.3}·N^-{:.2}{halving}",
                curve.method.name(),
                fit.order,
                fit.constant,
                fit.order
            ))
            .color(color(curve.method)),
        );
    }
    for note in bench.exact.curves.iter().filter_map(|c| c.outlier_note()) {
        ui.label(note);
    }
    ui.weak(
        "A method of order p divides its error by 2^p each time the steps double: DDIM/Euler halves it, Heun and \
         DPM++ 2M quarter it — so to be 16 times more exact, a first-order method needs 16 times the steps, a \
         second-order one 4 times.",
    );
    ui.weak(
        "DDIM with η = 0 and Euler are the same update here (x_{s'}/α_{s'} = x_s/α_s + (σ_{s'} - σ_s) ε̂, with σ = σ/α \
         of the schedule): one line stands for both.",
    );
    let r = &bench.reference;
    ui.weak(format!(
        "The exact reference: Dormand-Prince 5(4), tolerance {:.0e}, {} steps, {} evaluations; halving the tolerance \
         moves it by {:.1e}, well below the smallest error measured ({:.1e}).",
        r.tolerance,
        r.accepted,
        r.evaluations,
        r.change_on_halving,
        bench.exact.smallest_error()
    ));
}

/// With the network: its own ODE error, and from which step count it dominates each solver's.
fn network_ui(ui: &mut egui::Ui, bench: &SolverBench) {
    let Some(network) = &bench.network else {
        ui.weak("Train a network on this data (Start training) and run the bench again to see its samplers.");
        return;
    };
    ui.label(format!(
        "Learned network (training step {}): its own ODE solution lies {:.2e} from the exact one (gray line).",
        network.step, network.ode_error
    ));
    for method in SolverMethod::ALL {
        let line = match network.dominated_from(&bench.exact, method) {
            Some(n) => format!(
                "{}: from {n} steps its error with ε* is below the network's — more steps no longer help",
                method.name()
            ),
            None => format!("{}: its error stays above the network's at every step count here", method.name()),
        };
        ui.label(egui::RichText::new(line).color(color(method)));
    }
}

/// The stochastic samplers: sliced W₂ of their cloud to the exact ODE's, not fitted.
fn stochastic_ui(ui: &mut egui::Ui, bench: &SolverBench) {
    ui.label(format!(
        "Stochastic samplers (not fitted: their paths are not the ODE's): sliced W₂ of their cloud to the exact ODE's at \
         the same level; a fresh draw of q there scores {:.4}",
        bench.floor
    ));
    let tables = [("exact ε*", Some(&bench.exact)), ("network", bench.network.as_ref().map(|n| &n.table))];
    egui::Grid::new("solver bench stochastic").striped(true).show(ui, |ui| {
        for (name, table) in tables {
            for row in table.map_or(&[][..], |t| &t.stochastic[..]) {
                ui.label(format!("{} ({name})", row.method.label()));
                for (n, d) in &row.distances {
                    ui.label(format!("{n}: {d:.4}"));
                }
                ui.end_row();
            }
        }
    });
}
