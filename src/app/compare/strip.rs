//! The interpolation strip: images from A's seed, class or prompt to another, the rest kept.

use eframe::egui;

use super::grid::{Grid, progress_ui};
use crate::app::context::PanelContext;
use crate::app::state::Settings;
use crate::engine::GenerateRequest;
use crate::images::GridLabels;
use crate::run::generate::Interpolate;
use crate::run::grid::{conditioning_caption, interpolation_requests};

/// What an interpolation strip goes between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Between {
    /// A's seed's noise and `seed_b`'s (spherically), A's class throughout.
    Seeds,
    /// A's class and `class_b` (their τ_θ(y)), A's noise throughout.
    Classes,
    /// A text model's prompt and `prompt_b` (their τ_θ(y), token by token), A's noise throughout.
    Prompts,
}

/// Where the strip goes from A's settings, and in how many images.
#[derive(Clone, Debug, PartialEq)]
pub struct StripMode {
    pub between: Between,
    pub seed_b: u64,
    pub class_b: usize,
    pub prompt_b: String,
    /// Images in a strip, both ends included.
    pub frames: usize,
}

impl StripMode {
    pub fn new(settings: &Settings) -> Self {
        Self { between: Between::Seeds, seed_b: settings.seed + 1, class_b: 7, prompt_b: String::new(), frames: 8 }
    }

    /// Every image's request of a strip from `base` (A's settings) to the other seed or class.
    pub fn requests(&self, base: &GenerateRequest) -> (GridLabels, Vec<GenerateRequest>) {
        let n = self.frames.max(2);
        let (seed_b, class_b, prompt_b, what) = match self.between {
            Between::Seeds => (Some(self.seed_b), None, None, format!("seed {} -> {}", base.seed, self.seed_b)),
            Between::Classes => {
                (None, Some(self.class_b), None, format!("{} -> class {}", conditioning_caption(base), self.class_b))
            }
            Between::Prompts => {
                let a = base.prompt.as_ref().map(|p| p.text.clone()).unwrap_or_default();
                (None, None, Some(self.prompt_b.as_str()), format!("'{a}' -> '{}'", self.prompt_b))
            }
        };
        let requests = interpolation_requests(base, seed_b, class_b, prompt_b, n);
        let columns = requests.iter().map(|r| format!("{:.2}", r.interpolate.as_ref().map_or(0.0, |i| i.u))).collect();
        (
            GridLabels { x_title: format!("u, {what}"), columns, y_title: String::new(), rows: vec![String::new()] },
            requests,
        )
    }

    /// The strip Generate runs from `base` (A's settings): its images one after the other, filled in as they
    /// finish.
    pub fn cells(&self, base: GenerateRequest) -> Grid {
        let (labels, requests) = self.requests(&base);
        let settings = serde_json::json!({ "interpolation": requests });
        // The strip's PNG restores as its far end's settings: A's seed and class, and where u = 1 goes.
        let base = GenerateRequest { interpolate: requests.last().and_then(|r| r.interpolate.clone()), ..base };
        Grid::new(labels, settings, base, requests)
    }

    /// Restored settings of a strip: where its u = 1 goes.
    pub fn restore(&mut self, interpolate: &Interpolate) {
        match (interpolate.seed_b, interpolate.class_b, &interpolate.prompt_b) {
            (Some(seed), ..) => {
                self.between = Between::Seeds;
                self.seed_b = seed;
            }
            (None, Some(class), _) => {
                self.between = Between::Classes;
                self.class_b = class;
            }
            (None, None, Some(prompt)) => {
                self.between = Between::Prompts;
                self.prompt_b = prompt.clone();
            }
            (None, None, None) => {}
        }
    }

    /// Why the strip cannot run, if one of its images cannot.
    pub fn blocker(&self, ctx: &PanelContext) -> Option<String> {
        let model = ctx.model_info()?;
        let (_, requests) = self.requests(&ctx.request());
        requests.iter().find_map(|r| r.validate(model.config.num_classes).err()).map(|e| e.to_string())
    }

    /// Between which seeds or classes, how many images; Save.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, grid: Option<&Grid>) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.between, Between::Seeds, "Between seeds");
            ui.selectable_value(&mut self.between, Between::Classes, "Between classes");
            if ctx.text_model() {
                ui.selectable_value(&mut self.between, Between::Prompts, "Between prompts");
            }
        });
        self.far_end_ui(ui, ctx);
        ui.add(egui::Slider::new(&mut self.frames, 2..=32).text("Frames"));
        progress_ui(grid, ui);
        let done = grid.is_some_and(|g| g.is_finished() && g.cells.iter().all(Option::is_some));
        ui.horizontal(|ui| {
            if ui
                .add_enabled(done, egui::Button::new("Save strip…"))
                .on_disabled_hover_text("run the strip to the end first")
                .clicked()
            {
                crate::app::export::save_grid_in_background(ctx, ui.ctx(), grid.cloned());
            }
            if ui
                .add_enabled(done, egui::Button::new("Save strip GIF…"))
                .on_disabled_hover_text("run the strip to the end first")
                .clicked()
            {
                crate::app::export::save_strip_gif_in_background(ctx, ui.ctx(), grid.cloned());
            }
        });
    }

    /// The seed, class or prompt the strip goes to.
    fn far_end_ui(&mut self, ui: &mut egui::Ui, ctx: &PanelContext) {
        match self.between {
            Between::Seeds => {
                ui.add(egui::DragValue::new(&mut self.seed_b).prefix("to seed "))
                    .on_hover_text("Seed B: x_T moves from A's seed's noise to this one's, on the sphere");
            }
            Between::Classes => {
                let classes = ctx.num_classes();
                ui.add(egui::Slider::new(&mut self.class_b, 0..=classes.saturating_sub(1)).text("to class"))
                    .on_hover_text("τ_θ(y) moves from A's class to this one; the noise stays");
            }
            Between::Prompts => {
                let label = ui.label("to prompt");
                ui.add(egui::TextEdit::singleline(&mut self.prompt_b).hint_text("light sneaker"))
                    .labelled_by(label.id)
                    .on_hover_text(
                        "τ_θ(y) moves from the prompt on the left to this one, token by token; the noise stays",
                    );
            }
        }
    }
}
