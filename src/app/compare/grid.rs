//! The X/Y grid: one run per pair of values of two settings, and [`Grid`], the labelled pictures a grid,
//! a strip or the decided rows fill in.

use eframe::egui;

use crate::app::context::PanelContext;
use crate::engine::GenerateRequest;
use crate::images::{GridLabels, Picture};
use crate::run::generate::InitImage;
use crate::run::grid::{GridAxis, GridSetting, grid_requests, grid_settings_json};

/// A grid or an interpolation strip in progress (or done): its labels, every cell's request and what has
/// arrived.
#[derive(Clone, Debug)]
pub struct Grid {
    pub labels: GridLabels,
    /// What its PNG's settings text holds beside the base request: the axes and cells, or the strip.
    pub settings: serde_json::Value,
    pub base: GenerateRequest,
    pub requests: Vec<GenerateRequest>,
    /// Each cell's image once its run has finished.
    pub cells: Vec<Option<Picture>>,
    /// Why a cell has no image, if its run failed.
    pub errors: Vec<Option<String>>,
    /// Bumped whenever a cell changes, so the texture is rebuilt only then.
    pub serial: u64,
}

impl Grid {
    pub fn labels(&self) -> GridLabels {
        self.labels.clone()
    }

    /// A run of `requests` (row-major) with these labels.
    pub(super) fn new(
        labels: GridLabels,
        settings: serde_json::Value,
        base: GenerateRequest,
        requests: Vec<GenerateRequest>,
    ) -> Self {
        let n = requests.len();
        Self { labels, settings, base, requests, cells: vec![None; n], errors: vec![None; n], serial: 0 }
    }

    pub fn finished_cells(&self) -> usize {
        self.cells.iter().zip(&self.errors).filter(|(c, e)| c.is_some() || e.is_some()).count()
    }

    /// Whether every cell's run has finished (with a picture or an error).
    pub fn is_finished(&self) -> bool {
        self.finished_cells() == self.cells.len()
    }
}

/// The X/Y grid's axes as the user types them: a setting and its comma-separated values each.
#[derive(Clone, Debug, PartialEq)]
pub struct GridMode {
    pub x_setting: GridSetting,
    pub x_values: String,
    pub y_setting: GridSetting,
    pub y_values: String,
}

impl Default for GridMode {
    fn default() -> Self {
        Self {
            x_setting: GridSetting::Guidance,
            x_values: "0, 1, 2, 4".into(),
            y_setting: GridSetting::Steps,
            y_values: "10, 20, 50".into(),
        }
    }
}

impl GridMode {
    /// The grid's axes from what the user typed.
    pub fn axes(&self) -> Result<(GridAxis, GridAxis), String> {
        let axis = |setting: GridSetting, values: &str| {
            format!("{}={values}", setting.name()).parse::<GridAxis>().map_err(|e| e.to_string())
        };
        Ok((axis(self.x_setting, &self.x_values)?, axis(self.y_setting, &self.y_values)?))
    }

    /// Every cell's request for a grid around `base`.
    pub fn grid_requests(&self, base: &GenerateRequest) -> Result<(GridAxis, GridAxis, Vec<GenerateRequest>), String> {
        let (x, y) = self.axes()?;
        let requests = grid_requests(base, &x, &y).map_err(|e| e.to_string())?;
        Ok((x, y, requests))
    }

    /// The grid Generate runs around `base` (A's settings): every cell, one after the other, each filled in
    /// as it finishes. `init` is the Forward process panel's picture, which a strength axis edits.
    pub fn cells(&self, mut base: GenerateRequest, init: Option<InitImage>) -> Result<Grid, String> {
        if [self.x_setting, self.y_setting].contains(&GridSetting::Strength) {
            base.init = init;
        }
        let (x, y, requests) = self.grid_requests(&base)?;
        let labels = GridLabels {
            x_title: x.title().into(),
            columns: x.values.clone(),
            y_title: y.title().into(),
            rows: y.values.clone(),
        };
        let settings = grid_settings_json(&x, &y, &requests);
        Ok(Grid::new(labels, settings, base, requests))
    }

    /// The two axes (a setting and its values each); Save.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, grid: Option<&Grid>) {
        let text_model = ctx.text_model();
        for (axis, setting, values) in
            [("X", &mut self.x_setting, &mut self.x_values), ("Y", &mut self.y_setting, &mut self.y_values)]
        {
            ui.horizontal(|ui| {
                egui::ComboBox::from_label(format!("{axis} setting")).selected_text(setting.name()).show_ui(ui, |ui| {
                    // Prompt axes only where the model reads prompts.
                    for s in GridSetting::ALL.into_iter().filter(|s| text_model || !s.takes_prompts()) {
                        ui.selectable_value(setting, s, s.name());
                    }
                });
            });
            let hint = if setting.takes_prompts() { "prompts, |-separated" } else { "values, comma-separated" };
            ui.add(egui::TextEdit::singleline(values).hint_text(hint))
                .labelled_by(ui.label(format!("{axis} values")).id);
        }
        progress_ui(grid, ui);
        let done = grid.is_some_and(|g| g.is_finished() && g.cells.iter().any(Option::is_some));
        if ui
            .add_enabled(done, egui::Button::new("Save grid…"))
            .on_disabled_hover_text("run the grid to the end first")
            .clicked()
        {
            crate::app::export::save_grid_in_background(ctx, ui.ctx(), grid.cloned());
        }
    }
}

/// How many cells of the grid or strip are done, and why any failed.
pub(super) fn progress_ui(grid: Option<&Grid>, ui: &mut egui::Ui) {
    if let Some(grid) = grid {
        ui.label(format!("{} of {} cells done", grid.finished_cells(), grid.cells.len()));
        for (i, error) in grid.errors.iter().enumerate().filter_map(|(i, e)| e.as_ref().map(|e| (i, e))) {
            ui.colored_label(ui.visuals().warn_fg_color, format!("cell {}: {error}", i + 1));
        }
    }
}
