//! Comparing runs in the window. A/B: two runs from the same x_T (same seed, batch and class) with
//! different settings, side by side, scrubbed together by noise level. X/Y grid: one run per pair of
//! values of two settings, filling in live, labelled on both axes, saved as one PNG with every cell's
//! settings. The interpolation strip, the branch ("Continue from here") and "When is it decided?" rows.
//!
//! Each mode is a struct that owns its settings and draws them: [`ABMode`] (ab.rs), [`GridMode`] and the
//! filled-in [`Grid`] (grid.rs), [`StripMode`] (strip.rs), [`BranchMode`] (branch.rs), [`DecidedMode`]
//! (decided.rs). [`ComparePanel`] holds one of each, the mode chosen, and what the modes share: the queue
//! of runs ([`RunQueue`], queue.rs: the engine runs one job at a time), B's viewer and the grid on screen
//! (pictures.rs). Generate asks the panel what its mode runs ([`ComparePanel::launch`]), starts the main
//! run the answer names, and hands the rest back to the panel ([`ComparePanel::begin`]).

use eframe::egui;

use super::colors::TextureCache;
use super::context::PanelContext;
use super::state::{Settings, Trajectory};
use super::viewer::TrajectoryViewer;
use crate::engine::GenerateRequest;
use crate::run::generate::{Branch, InitImage, Interpolate};

mod ab;
mod branch;
mod decided;
mod grid;
mod pictures;
mod queue;
mod strip;

pub use ab::ABMode;
pub use branch::BranchMode;
pub use decided::{DecidedMode, verdict_lines};
pub use grid::{Grid, GridMode};
pub use queue::{RunQueue, Target};
pub use strip::{Between, StripMode};

/// What Generate runs and the middle of the window shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One run, as always.
    Single,
    /// A (the settings on the left) and B, side by side.
    AB,
    /// An X/Y grid over two settings.
    Grid,
    /// A strip between two seeds or two classes.
    Interpolate,
    /// A run continued from a step of the main run ("Continue from here"), beside it.
    Branch,
    /// When is it decided: one run continued from several of its steps, several times each (DDPM's
    /// Figure 7), as rows.
    Decided,
}

/// What the comparison knows of the main run when Generate is pressed.
pub struct MainRun<'a> {
    /// The settings on the left as a request (A's).
    pub request: GenerateRequest,
    /// The main run on screen.
    pub shown: Option<&'a Trajectory>,
    /// Whether the main run is still running.
    pub running: bool,
    /// The Forward process panel's picture, which a grid's strength axis edits.
    pub init: Option<InitImage>,
}

/// What Generate starts, as the mode answers it: the main run (A), then the comparison's own runs.
pub struct Launch {
    /// The main run to start (what ran is cancelled by it); `None`: the main run on screen stays, and what
    /// runs is cancelled.
    pub main: Option<GenerateRequest>,
    runs: Runs,
}

/// The comparison's own part of a [`Launch`].
enum Runs {
    None,
    /// A/B: B, after A.
    B(GenerateRequest),
    /// B continues a run from one of its steps, after it.
    Branch(Branch),
    /// A grid's or a strip's cells, or why the grid cannot run.
    Cells(Box<Result<Grid, String>>),
    /// The engine's rows of "When is it decided?" for this run.
    Decided(GenerateRequest),
}

impl Launch {
    /// Only the comparison's runs: the main run on screen stays.
    fn alone(runs: Runs) -> Self {
        Self { main: None, runs }
    }
}

/// The comparison controls and what they run: one state per mode, the mode chosen, and the runs they
/// share (B's viewer, scrubbed along with A's; the grid filling in; the queue of runs).
pub struct ComparePanel {
    pub mode: Mode,
    pub ab: ABMode,
    pub xy: GridMode,
    pub strip: StripMode,
    pub branch: BranchMode,
    pub decided: DecidedMode,
    /// The runs of a comparison waiting for the engine, and the one it has.
    pub queue: RunQueue,
    /// B's run (A/B, a branch); its cursor follows A's noise level.
    pub viewer_b: TrajectoryViewer,
    /// The grid, strip or decided rows on screen, filled in as their runs finish.
    pub grid: Option<Grid>,
    grid_texture: TextureCache<u64>,
}

impl ComparePanel {
    pub fn new(settings: &Settings) -> Self {
        Self {
            mode: Mode::Single,
            ab: ABMode::new(settings),
            xy: GridMode::default(),
            strip: StripMode::new(settings),
            branch: BranchMode::default(),
            decided: DecidedMode::default(),
            queue: RunQueue::default(),
            viewer_b: TrajectoryViewer::new("frame-b", "B images"),
            grid: None,
            grid_texture: TextureCache::new("grid"),
        }
    }

    /// Whether a run of ours (B, a cell) or the decided rows are with the engine.
    pub fn is_running(&self) -> bool {
        self.queue.running.is_some() || self.decided.job.is_some()
    }

    /// Whether the mode varies A's settings (a grid, a strip): its cells are checked one by one as they run,
    /// not A's settings as they are.
    pub fn varies_settings(&self) -> bool {
        matches!(self.mode, Mode::Grid | Mode::Interpolate)
    }

    /// What Generate runs in the current mode; `None`: nothing (a branch mode with no branch).
    pub fn launch(&self, main: MainRun) -> Option<Launch> {
        let request = main.request;
        Some(match self.mode {
            Mode::Single => Launch { main: Some(request), runs: Runs::None },
            Mode::AB => {
                let b = self.ab.request(&request);
                Launch { main: Some(request), runs: Runs::B(b) }
            }
            Mode::Grid => Launch::alone(Runs::Cells(Box::new(self.xy.cells(request, main.init)))),
            Mode::Interpolate => Launch::alone(Runs::Cells(Box::new(Ok(self.strip.cells(request))))),
            Mode::Decided => Launch::alone(Runs::Decided(GenerateRequest { batch: 1, ..request })),
            Mode::Branch => {
                let branch = self.branch.branch.clone()?;
                // A on screen is the branch's parent, whole: only B runs again.
                let parent_shown = main.shown.is_some_and(|t| t.request == *branch.parent && t.is_complete());
                let main = (main.running || !parent_shown).then(|| (*branch.parent).clone());
                Launch { main, runs: Runs::Branch(branch) }
            }
        })
    }

    /// Queues (or starts) the comparison's part of `launch`, once the window has started or cancelled the
    /// main run; the window then starts the first queued run with [`ComparePanel::start_next_queued`].
    pub fn begin(&mut self, ctx: &mut PanelContext, launch: Launch) {
        match launch.runs {
            Runs::None => {}
            Runs::B(request) => self.queue_b(ctx, request),
            Runs::Branch(branch) => self.queue_branch(ctx, branch),
            Runs::Cells(cells) => match *cells {
                Ok(grid) => self.start_cells(ctx, grid),
                Err(e) => ctx.set_status(format!("cannot run the grid: {e}"), true),
            },
            Runs::Decided(request) => {
                self.grid = None;
                self.decided.start(ctx, request);
            }
        }
    }

    /// The branch B runs in branch mode, with the settings on the left (see [`BranchMode::request`]).
    pub fn branch_request(&self, settings: &Settings) -> Option<GenerateRequest> {
        self.branch.request(settings)
    }

    /// Restored settings of a branch: back to branch mode, Generate runs its parent and then it.
    pub fn restore_branch(&mut self, branch: &Branch) {
        self.mode = Mode::Branch;
        self.branch.branch = Some(branch.clone());
    }

    /// Restored settings of a strip (its request says where u = 1 goes): back to interpolation mode.
    pub fn restore_interpolation(&mut self, interpolate: &Interpolate) {
        self.mode = Mode::Interpolate;
        self.strip.restore(interpolate);
    }

    /// The rows of "when is it decided" have arrived: they become a labelled grid (x_t, then the ends).
    pub fn on_decided(
        &mut self,
        ctx: &mut PanelContext,
        job: u64,
        rows: Result<std::sync::Arc<crate::eval::decided::DecidedRows>, crate::engine::CommandFailure>,
    ) {
        if let Some(grid) = self.decided.on_rows(ctx, job, rows) {
            self.grid = Some(grid);
        }
    }

    /// Why the comparison of the current mode cannot run, if it cannot (A's own reasons come first).
    pub fn blocker(&self, ctx: &PanelContext) -> Option<String> {
        match self.mode {
            Mode::Single | Mode::Decided => None,
            Mode::AB => self.ab.blocker(ctx),
            Mode::Grid => self.xy.axes().err(),
            Mode::Branch => self.branch.blocker(ctx),
            Mode::Interpolate => self.strip.blocker(ctx),
        }
    }

    /// The comparison controls in the Generate panel: the mode, then that mode's settings.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let picker = ui.horizontal(|ui| {
            ui.label("Compare:");
            ui.selectable_value(&mut self.mode, Mode::Single, "Off");
            ui.selectable_value(&mut self.mode, Mode::AB, "A/B");
            ui.selectable_value(&mut self.mode, Mode::Grid, "X/Y grid");
            ui.selectable_value(&mut self.mode, Mode::Interpolate, "Interpolate");
            ui.selectable_value(&mut self.mode, Mode::Branch, "Branch")
                .on_hover_text("A run continued from a step of another: press Continue from here below the timeline");
            ui.selectable_value(&mut self.mode, Mode::Decided, "When is it decided?").on_hover_text(
                "One run continued from several of its steps, several times each with fresh noise (DDPM's Figure 7)",
            );
        });
        ctx.mark(ui, picker.response.rect, crate::app::context::Highlight::Compare);
        let grid = self.grid.as_ref();
        match self.mode {
            Mode::Single => {}
            Mode::Decided => self.decided.ui(ui, ctx, grid),
            Mode::Branch => {
                if self.branch.ui(ui, ctx, &self.viewer_b) {
                    self.mode = Mode::Single;
                }
            }
            Mode::AB => self.ab.ui(ui, ctx),
            Mode::Interpolate => self.strip.ui(ui, ctx, grid),
            Mode::Grid => self.xy.ui(ui, ctx, grid),
        }
    }
}
