//! "When is it decided?": one run continued from several of its steps, several times each with fresh
//! noise (DDPM's Figure 7), the continuations asking for the run's class or another ("Branches ask for");
//! the engine's rows become a labelled grid (x_t, then where each continuation ended, captioned by how many
//! ends the judge puts in the class of the run's own end), and the row from which it is decided.

use std::sync::Arc;

use eframe::egui;

use super::grid::Grid;
use crate::app::context::PanelContext;
use crate::engine::{CommandFailure, GenerateRequest};
use crate::eval::decided::{DecidedRows, class_word, decided_from, rows_figure, stochastic_sibling};

/// How many continuations from how many steps, the class they ask for, the engine's job computing the rows
/// and the last rows received.
#[derive(Clone, Debug, PartialEq)]
pub struct DecidedMode {
    /// Continuations per step.
    pub continuations: usize,
    /// Steps continued from.
    pub points: usize,
    /// The class the continuations ask for ("Branches ask for"); `None`: the run's class.
    pub branch_class: Option<usize>,
    /// The engine's job computing the rows, while it does.
    pub job: Option<u64>,
    /// The last rows received (with what the run and its branches asked for and the run's judged end), for
    /// this mode's verdict and for other panels.
    pub last: Option<Arc<DecidedRows>>,
}

impl Default for DecidedMode {
    fn default() -> Self {
        Self { continuations: 8, points: 6, branch_class: None, job: None, last: None }
    }
}

impl DecidedMode {
    /// Generate in "when is it decided" mode: the engine continues `request`'s run (one image) from its steps,
    /// the continuations asking for [`DecidedMode::branch_class`].
    pub fn start(&mut self, ctx: &mut PanelContext, request: GenerateRequest) {
        self.job = Some(ctx.engine.decided(request, self.continuations, self.points, self.branch_class));
        ctx.clear_status();
    }

    /// The rows of job `job` have arrived: the grid they make, or `None` (another job's, cancelled, failed:
    /// the status line says which).
    pub fn on_rows(
        &mut self,
        ctx: &mut PanelContext,
        job: u64,
        rows: Result<Arc<DecidedRows>, CommandFailure>,
    ) -> Option<Grid> {
        if self.job != Some(job) {
            return None;
        }
        self.job = None;
        match rows {
            Ok(rows) => {
                let grid = rows_grid(&rows, GenerateRequest { batch: 1, ..ctx.request() }, job);
                self.last = Some(rows);
                grid
            }
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

    /// How many continuations from how many steps, the class they ask for, what they show, from which row
    /// it is decided, and Save.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, grid: Option<&Grid>) {
        ui.add(egui::Slider::new(&mut self.continuations, 2..=12).text("Continuations per step"));
        ui.add(egui::Slider::new(&mut self.points, 2..=12).text("Steps continued from"));
        self.branch_class_ui(ui, ctx.num_classes());
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
             image was decided at that noise level; the spread is how far apart they still end (0 to 1 per pixel). \
             The judge names each ending's garment; with \"Branches ask for\" another class, the continuations ask \
             for it, and the rows show from which step the run's own garment holds anyway.",
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
        if let Some(last) = &self.last {
            let [formula, numbers, plain] = verdict_lines(last);
            ui.monospace(format!("{formula}\n{numbers}"));
            ui.label(plain);
        }
        if ui.add_enabled(grid.is_some(), egui::Button::new("Save rows…")).clicked() {
            crate::app::export::save_grid_in_background(ctx, ui.ctx(), grid.cloned());
        }
    }

    /// "Branches ask for": the run's class, or one of the model's classes.
    fn branch_class_ui(&mut self, ui: &mut egui::Ui, num_classes: usize) {
        let name = |class: Option<usize>| match class {
            None => "the run's class".to_string(),
            Some(c) => format!("{c}: {}", class_word(c, num_classes)),
        };
        egui::ComboBox::from_label("Branches ask for").selected_text(name(self.branch_class)).show_ui(ui, |ui| {
            for class in std::iter::once(None).chain((0..num_classes).map(Some)) {
                ui.selectable_value(&mut self.branch_class, class, name(class));
            }
        });
    }
}

/// What the rows decide, as the formula, its live numbers and one plain line: the row from which every row
/// ends mostly as the run's own end ([`decided_from`]), or why there is none.
pub fn verdict_lines(last: &DecidedRows) -> [String; 3] {
    let formula = "decided from row k = the first k with every row j >= k: #{ends judged c} > n/2".to_string();
    let Some(class) = last.end_class else {
        return [
            formula,
            "c: not judged".into(),
            "The judge reads only 28x28 pictures of Fashion-MNIST's 10 classes: this model's ends are not judged."
                .into(),
        ];
    };
    let word = class_word(class, crate::data::FASHION_MNIST_CLASSES.len());
    let shares: Vec<String> = last.rows.iter().map(|r| format!("{}/{}", r.judged_as(class), r.classes.len())).collect();
    let asked = match last.branch_class {
        Some(b) if last.branch_class != last.class => {
            format!("continuations asking for {}", class_word(b, crate::data::FASHION_MNIST_CLASSES.len()))
        }
        _ => "continuations with fresh noise".to_string(),
    };
    let judged = format!("c = {word} (the run's own end); ends judged c, row by row: {}", shares.join(", "));
    let (verdict, plain) = match decided_from(&last.rows, class) {
        Some(k) => {
            let (t, n) = (last.rows[k].t, last.rows.len());
            // The last row often draws no noise: there the ends agree by construction, not by the model.
            let note = if last.rows[k].deterministic { " (a row that draws no fresh noise)" } else { "" };
            (
                format!("decided from row {} of {n} (t = {t}): every later row ends mostly as {word}", k + 1),
                format!(
                    "From row {} on (t = {t}){note}, {asked} still end mostly as the {word} the run became.",
                    k + 1
                ),
            )
        }
        None => (
            format!("no row is decided: the last row does not end mostly as {word}"),
            format!("Not even the last row's {asked} end mostly as the {word} the run became."),
        ),
    };
    let numbers = format!("{judged}\n{verdict}");
    [formula, numbers, plain]
}

/// The rows as a labelled grid: x_t, then the ends, a row per step continued from with its spread;
/// `request`: the run continued (what the PNG's settings restore); `serial`: the texture's key.
fn rows_grid(decided: &DecidedRows, request: GenerateRequest, serial: u64) -> Option<Grid> {
    let rows = &decided.rows;
    let n = rows.first()?.ends.len();
    // A row after the last noisy step cannot differ: it says so instead of showing "spread 0.00" as found.
    let (cells, labels) = rows_figure(decided, true);
    let settings = serde_json::json!({
        "decided": {
            "continuations": n,
            "steps": rows.iter().map(|r| r.step).collect::<Vec<_>>(),
            "branch_class": decided.branch_class,
        }
    });
    let count = cells.len();
    Some(Grid { labels, settings, base: request, requests: Vec::new(), cells, errors: vec![None; count], serial })
}
