//! [`LikelihoodPanel`]: the "Likelihood" section of the 2-D lab's left column. With the session's network
//! as it is now, the engine measures fresh points of the data four ways (`lab2d::likelihood`): the true
//! density, the probability-flow ODE with the exact score and with the network (the change of variables,
//! its exact divergence), and the network's variational bound. The section shows the change of variables
//! with its numbers, the table in bits per dimension, and what the measured gaps mean.

use std::sync::Arc;

use eframe::egui;

use super::latest::Latest;
use crate::app::context::PanelContext;
use crate::engine::Measurement;
use crate::engine::lab2d::Lab2dCommand;
use crate::lab2d::likelihood::{Column, LikelihoodReport, LikelihoodSettings};

#[derive(Default)]
pub struct LikelihoodPanel {
    latest: Latest<()>,
    pub report: Option<Arc<LikelihoodReport>>,
}

/// `log p₀(x₀) = log p_T(x_T) + 2 ln α_T + ∫ div f ds` with the mean parts of one ODE column, in nats.
pub fn formula_line(parts: [f64; 3]) -> String {
    let [prior, jacobian, integral] = parts;
    format!("{:.3} = {prior:.3} {jacobian:+.3} {integral:+.3} nats", prior + jacobian + integral)
}

impl LikelihoodPanel {
    pub fn is_waiting(&self) -> bool {
        self.latest.is_waiting()
    }

    /// The network changed (a new training): the last reading is of another network.
    pub fn clear(&mut self) {
        self.latest.forget();
        self.report = None;
    }

    pub fn on_likelihood(&mut self, ctx: &mut PanelContext, key: u64, report: Arc<LikelihoodReport>) {
        if self.latest.answer(key).is_some() {
            ctx.set_status(format!("2-D lab: likelihood of {} points measured", report.rows.len()), false);
            self.report = Some(report);
        }
    }

    pub fn on_failed(&mut self, ctx: &mut PanelContext, key: u64, message: &str) {
        if self.latest.answer(key).is_some() {
            ctx.set_status(format!("2-D lab, likelihood: {message}"), true);
        }
    }

    /// A command of the lab failed without saying which (a panic): nothing is awaited any more.
    pub fn on_any_failure(&mut self) {
        self.latest.forget();
    }

    /// The section: the button, then the last reading. `ready`: the session has a network.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, ready: bool) {
        ui.heading("Likelihood");
        ui.label("How much density does the model give the data? By the probability-flow ODE, beside the bound.");
        let waiting = self.latest.is_waiting();
        ui.horizontal(|ui| {
            let button = ui.add_enabled(ready && !waiting, egui::Button::new("Measure likelihood"));
            if button.clicked() {
                let key = self.latest.send(());
                let settings = LikelihoodSettings::quick(ctx.settings.schedule);
                ctx.engine.lab2d(Lab2dCommand::Likelihood { key, settings });
            }
            if waiting {
                ui.spinner();
                ui.label("integrating the ODE…");
                if ui.button("Stop likelihood").on_hover_text("stop the measurement; the last reading stays").clicked()
                {
                    ctx.engine.lab2d(Lab2dCommand::StopMeasurement(Measurement::Likelihood));
                    self.latest.forget();
                    ctx.set_status("2-D lab: the likelihood measurement was stopped".to_string(), false);
                }
            }
        });
        if let Some(report) = &self.report {
            report_ui(ui, report);
        }
    }
}

fn report_ui(ui: &mut egui::Ui, report: &LikelihoodReport) {
    ui.label(format!(
        "log p₀(x₀) = log p_T(x_T) + 2 ln α_T + ∫₀^s_T div f ds, s = σ/α from 0 to s_T = {:.0}, f = dy/ds = ε̂(αy), \
         mean of {} fresh points (network at step {}):",
        report.s_top,
        report.rows.len(),
        report.train_step
    ));
    for (column, prior) in [(Column::OdeExact, "p_T = q_T"), (Column::OdeNetwork, "p_T = N(0, I)")] {
        if let Some(parts) = report.flow_parts(column) {
            ui.label(format!("  {} ({prior}): {}", column.label(), formula_line(parts)));
        }
    }
    let [prior, steps, decoder] = report.bound_parts();
    ui.label(format!(
        "  bound: L_T + Σ L_t-1 + L_0 = {prior:.3} + {steps:.3} + {decoder:.3} = {:.3} bits/dim",
        prior + steps + decoder
    ));
    egui::Grid::new("lab2d likelihood table").striped(true).show(ui, |ui| {
        ui.strong("bits/dim");
        ui.strong("mean");
        ui.strong("± s.e.");
        ui.end_row();
        for column in Column::ALL {
            let m = report.mean(column);
            ui.label(column.label());
            ui.label(format!("{:.4}", m.mean));
            ui.label(format!("{:.4}", m.standard_error));
            ui.end_row();
        }
    });
    ui.label("bits/dim = -log₂ p / 2: lower is likelier; below 0 where the density exceeds 1 (continuous data).");
    ui.label(report.gap_line());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formula's parts add up to the total it shows.
    #[test]
    fn formula_line_shows_the_parts_and_their_sum() {
        assert_eq!(formula_line([-2.5, -19.75, 21.0]), "-1.250 = -2.500 -19.750 +21.000 nats");
    }
}
