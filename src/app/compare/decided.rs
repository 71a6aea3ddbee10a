//! "When is it decided?": one run continued from several of its steps, several times each with fresh
//! noise (DDPM's Figure 7); the engine's rows become a labelled grid (x_t, then where each continuation
//! ended).

use std::sync::Arc;

use eframe::egui;

use super::grid::Grid;
use crate::app::context::PanelContext;
use crate::engine::{CommandFailure, GenerateRequest};
use crate::eval::decided::{ContinuedRow, rows_figure, stochastic_sibling};

/// How many continuations from how many steps, and the engine's job computing the rows.
#[derive(Clone, Debug, PartialEq)]
pub struct DecidedMode {
    /// Continuations per step.
    pub continuations: usize,
    /// Steps continued from.
    pub points: usize,
    /// The engine's job computing the rows, while it does.
    pub job: Option<u64>,
}

impl Default for DecidedMode {
    fn default() -> Self {
        Self { continuations: 8, points: 6, job: None }
    }
}

impl DecidedMode {
    /// Generate in "when is it decided" mode: the engine continues `request`'s run (one image) from its steps.
    pub fn start(&mut self, ctx: &mut PanelContext, request: GenerateRequest) {
        self.job = Some(ctx.engine.decided(request, self.continuations, self.points));
        ctx.clear_status();
    }

    /// The rows of job `job` have arrived: the grid they make, or `None` (another job's, cancelled, failed:
    /// the status line says which).
    pub fn on_rows(
        &mut self,
        ctx: &mut PanelContext,
        job: u64,
        rows: Result<Arc<Vec<ContinuedRow>>, CommandFailure>,
    ) -> Option<Grid> {
        if self.job != Some(job) {
            return None;
        }
        self.job = None;
        match rows {
            Ok(rows) => rows_grid(&rows, GenerateRequest { batch: 1, ..ctx.request() }, job),
            Err(CommandFailure::Cancelled) => {
                ctx.set_status("cancelled", false);
                None
            }
            Err(CommandFailure::Failed(message)) => {
                ctx.set_status(format!("cannot continue the run: {message}"), true);
                None
            }
        }
    }

    /// How many continuations from how many steps, what they show, and Save.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, grid: Option<&Grid>) {
        ui.add(egui::Slider::new(&mut self.continuations, 2..=12).text("Continuations per step"));
        ui.add(egui::Slider::new(&mut self.points, 2..=12).text("Steps continued from"));
        let sampler = stochastic_sibling(ctx.settings.sampler);
        ui.monospace(format!(
            "x_t kept, then each continuation:\nx_t' = c₀ x̂_0 + c₁ x_t + σ z,  z ~ N(0, I) fresh\n({}, the first image \
             of seed {})",
            sampler.label(),
            ctx.settings.seed
        ));
        ui.label(
            "Each row starts from the same x_t of one run and finishes it several times with different noise. Near \
             pure noise (top) the endings are different garments; where a row's endings agree on the garment, the \
             image was decided at that noise level; the spread is how far apart they still end (0 to 1 per pixel).",
        );
        if sampler != ctx.settings.sampler {
            ui.weak(format!("{} adds no noise: its stochastic sibling continues", ctx.settings.sampler.label()));
        }
        if self.job.is_some() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("continuing the run…");
            });
        }
        if ui.add_enabled(grid.is_some(), egui::Button::new("Save rows…")).clicked() {
            crate::app::export::save_grid_in_background(ctx, ui.ctx(), grid.cloned());
        }
    }
}

/// The rows as a labelled grid: x_t, then the ends, a row per step continued from with its spread;
/// `request`: the run continued (what the PNG's settings restore); `serial`: the texture's key.
fn rows_grid(rows: &[ContinuedRow], request: GenerateRequest, serial: u64) -> Option<Grid> {
    let n = rows.first()?.ends.len();
    // A row after the last noisy step cannot differ: it says so instead of showing "spread 0.00" as found.
    let (cells, labels) = rows_figure(rows, true);
    let settings = serde_json::json!({
        "decided": { "continuations": n, "steps": rows.iter().map(|r| r.step).collect::<Vec<_>>() }
    });
    let count = cells.len();
    Some(Grid { labels, settings, base: request, requests: Vec::new(), cells, errors: vec![None; count], serial })
}
