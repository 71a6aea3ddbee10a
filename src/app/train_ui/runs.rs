//! Runs compared in the Train view: run folders (picked from the folders beside the run folder, typed, or
//! chosen in a dialog) read by the engine — their loss log, quality log, recipe, and their checkpoint's loss
//! by noise level on the same images as every other run's — and drawn over this run's curves, each in its
//! colour, named by its folder and recipe.

use std::path::{Path, PathBuf};

use eframe::egui::{self, Color32};

use super::{FolderTarget, TrainPanel, smooth};
use crate::app::context::PanelContext;
use crate::engine::train::{LEVEL_IMAGES, RunFolderRecord, TrainCommand};
use crate::train::recipe::Recipe;

/// The colours of compared runs, in order (this run is light blue).
const PALETTE: [Color32; 8] = [
    Color32::from_rgb(255, 160, 60),
    Color32::from_rgb(110, 210, 110),
    Color32::from_rgb(230, 110, 230),
    Color32::from_rgb(240, 220, 90),
    Color32::from_rgb(240, 90, 90),
    Color32::from_rgb(150, 150, 255),
    Color32::from_rgb(90, 220, 220),
    Color32::from_rgb(200, 200, 200),
];

/// The colour of the `index`th compared run (or showcase recipe).
pub fn color(index: usize) -> Color32 {
    PALETTE[index % PALETTE.len()]
}

/// A recipe as short as a legend needs it: "v · min-snr:5".
pub fn short_name(recipe: Recipe) -> String {
    format!("{} · {}", recipe.objective.name(), recipe.weighting.name())
}

/// A square of `color`, then `text`: a legend entry drawn outside a plot.
pub fn swatch_ui(ui: &mut egui::Ui, color: Color32, text: &str) {
    let (swatch, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
    ui.painter().rect_filled(swatch, 2.0, color);
    ui.label(text);
}

/// A run folder drawn over this run's curves.
#[derive(Clone, Debug)]
pub struct ComparedFolder {
    pub dir: PathBuf,
    /// What the engine read of it; `None` until it answers.
    pub record: Option<RunFolderRecord>,
    /// Its loss log smoothed as the trainer smooths it.
    pub smoothed: Vec<[f64; 2]>,
}

impl ComparedFolder {
    /// "folder · eps · plain".
    pub fn name(&self) -> String {
        let folder = folder_name(&self.dir);
        match self.record.as_ref().and_then(|r| r.recipe) {
            Some(recipe) => format!("{folder} · {}", short_name(recipe)),
            None => folder,
        }
    }
}

fn folder_name(dir: &Path) -> String {
    dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The runs compared and the folders offered.
#[derive(Debug, Default)]
pub struct RunFolderComparison {
    pub folders: Vec<ComparedFolder>,
    /// The run folders beside the run folder (asked for `listed_for`).
    pub offered: Vec<PathBuf>,
    listed_for: Option<PathBuf>,
    /// A folder typed to add.
    pub typed: String,
}

impl RunFolderComparison {
    /// The engine's reading of a run folder, for the run that asked (a removed run's answer is dropped).
    pub fn on_read(&mut self, record: RunFolderRecord) {
        if let Some(run) = self.folders.iter_mut().find(|r| r.dir == record.dir) {
            let losses: Vec<[f64; 2]> = record.losses.iter().map(|(s, l)| [*s as f64, *l]).collect();
            run.smoothed = smooth(&losses);
            run.record = Some(record);
        }
    }

    pub fn on_listed(&mut self, dir: PathBuf, runs: Vec<PathBuf>) {
        if self.listed_for.as_ref() == Some(&dir) {
            self.offered = runs;
        }
    }
}

impl TrainPanel {
    /// Adds the run in `dir` to the comparison (or reads it again) and asks the engine to read it.
    pub fn compare_folder(&mut self, ctx: &mut PanelContext, dir: PathBuf) {
        if !self.compare.folders.iter().any(|r| r.dir == dir) {
            self.compare.folders.push(ComparedFolder { dir: dir.clone(), record: None, smoothed: Vec::new() });
        }
        let levels_on = Some(ctx.settings.train.data_request());
        ctx.engine.train(TrainCommand::ReadRunFolder { dir, levels_on });
    }

    /// The runs compared (each removable), and the ways to add one.
    pub(super) fn compare_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let out = ctx.settings.train.out_dir();
        if self.compare.listed_for.as_ref() != Some(&out) {
            self.compare.listed_for = Some(out.clone());
            ctx.engine.train(TrainCommand::ListRunFolders(out));
        }
        let mut remove = None;
        for (i, run) in self.compare.folders.iter().enumerate() {
            ui.horizontal_wrapped(|ui| {
                swatch_ui(ui, color(i), &run_summary(run));
                if ui.small_button("Remove").on_hover_text("stop comparing this run").clicked() {
                    remove = Some(i);
                }
            });
        }
        if let Some(i) = remove {
            self.compare.folders.remove(i);
        }
        self.add_run_ui(ui, ctx);
        ui.small(format!(
            "Each run is drawn in its colour over this run's curves: its loss (each recipe's loss in its own \
             units), its checkpoint's loss by noise level (ε units, on the same {LEVEL_IMAGES} images of the \
             loaded data with the same noise) and its quality readings."
        ));
    }

    /// "Add a run to compare" (the folders beside the run folder), a typed folder, a dialog, and Refresh.
    fn add_run_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let offered: Vec<PathBuf> = self
            .compare
            .offered
            .iter()
            .filter(|d| !self.compare.folders.iter().any(|r| r.dir == **d))
            .cloned()
            .collect();
        let mut picked = None;
        egui::ComboBox::from_label("Add a run to compare").selected_text("a run folder…").show_ui(ui, |ui| {
            if offered.is_empty() {
                ui.label("no other run folders beside the run folder");
            }
            for dir in &offered {
                if ui.selectable_label(false, folder_name(dir)).on_hover_text(dir.display().to_string()).clicked() {
                    picked = Some(dir.clone());
                }
            }
        });
        let mut choose = false;
        ui.horizontal(|ui| {
            let label = ui.label("Run folder to compare");
            ui.add(egui::TextEdit::singleline(&mut self.compare.typed).desired_width(120.0)).labelled_by(label.id);
            if ui.button("Add run").clicked() && !self.compare.typed.trim().is_empty() {
                picked = Some(PathBuf::from(self.compare.typed.trim()));
            }
            choose = ui.button("Choose…").clicked();
        });
        if ui.button("Refresh compared runs").on_hover_text("read every compared run folder again").clicked() {
            let dirs: Vec<PathBuf> = self.compare.folders.iter().map(|r| r.dir.clone()).collect();
            for dir in dirs {
                self.compare_folder(ctx, dir);
            }
            self.compare.listed_for = None;
        }
        if let Some(dir) = picked {
            self.compare_folder(ctx, dir);
        }
        if choose {
            Self::pick_folder(ctx, ui.ctx(), FolderTarget::Compare);
        }
    }

    /// This run's name in the legends: "this run · its recipe".
    pub(super) fn run_name(&self) -> String {
        match self.recipe {
            Some(recipe) => format!("this run · {}", short_name(recipe)),
            None => "this run".into(),
        }
    }
}

/// "folder · recipe: 600 steps, 3 quality readings" (or reading…, or what could not be read).
fn run_summary(run: &ComparedFolder) -> String {
    let Some(record) = &run.record else { return format!("{}: reading…", run.name()) };
    let mut text =
        format!("{}: {} steps logged, {} quality readings", run.name(), record.losses.len(), record.quality.len());
    if let Some(error) = &record.error {
        text.push_str(&format!("; {error}"));
    } else if let Err(why) = &record.levels {
        text.push_str(&format!("; no loss by noise level: {why}"));
    }
    text
}
