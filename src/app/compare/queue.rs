//! The runs of a comparison: the engine runs one job at a time, so B and a grid's cells wait in a queue
//! here; their events go to B's viewer or to their cell.

use std::collections::VecDeque;

use eframe::egui;

use super::{ComparePanel, Grid, Mode};
use crate::app::context::PanelContext;
use crate::app::generate_ui::RunEnd;
use crate::app::state::Trajectory;
use crate::engine::{Event, Frame, GenerateRequest};
use crate::run::generate::Branch;

/// Which run a queued or running job belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    B,
    Cell(usize),
}

/// Runs waiting for the engine, in order, and the one it has.
#[derive(Default)]
pub struct RunQueue {
    waiting: VecDeque<(Target, GenerateRequest)>,
    /// The job the engine runs for us, and whose it is.
    pub running: Option<(u64, Target)>,
    /// B's job, kept after it finishes for the frames decoded later.
    pub b_job: Option<u64>,
}

impl RunQueue {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Drops what waits (Cancel, or a new Generate).
    pub fn clear(&mut self) {
        self.waiting.clear();
    }

    /// Whether `job` is the one running.
    fn runs(&self, job: u64) -> bool {
        self.running.is_some_and(|(j, _)| j == job)
    }
}

impl ComparePanel {
    /// Whether `job` is one of ours: running, or B's, whose frames the engine decodes after it.
    pub fn owns(&self, job: u64) -> bool {
        self.queue.runs(job) || self.queue.b_job == Some(job)
    }

    /// An event of one of our jobs: frames go to B's viewer or to their cell; the end of a run is returned.
    pub fn on_run_event(&mut self, ctx: &mut PanelContext, event: Event) -> Option<RunEnd> {
        match event {
            Event::Frame { job, frame, total_steps } => {
                self.on_frame(job, frame, total_steps);
                None
            }
            Event::Done { job, summary } if self.queue.runs(job) => {
                self.queue.running = None;
                if summary.cancelled {
                    ctx.set_status(format!("cancelled after {} steps", summary.steps_done), false);
                    return Some(RunEnd::Stopped);
                }
                Some(RunEnd::Finished)
            }
            Event::Failed { job, message } => {
                if let Some(message) = self.on_failed(job, &message) {
                    ctx.set_status(message, true);
                }
                // A failed cell does not stop the grid: the next one runs.
                Some(RunEnd::Finished)
            }
            Event::Decoded { job, index, decoded } if self.queue.b_job == Some(job) => {
                self.viewer_b.set_decoded(index, decoded);
                None
            }
            _ => None,
        }
    }

    /// A frame of one of our jobs has arrived.
    fn on_frame(&mut self, job: u64, frame: Frame, total_steps: usize) {
        match self.queue.running {
            Some((j, Target::B)) if j == job => self.viewer_b.push(frame, total_steps),
            // Cells run without streaming: the frame after x_T is the result.
            Some((j, Target::Cell(i))) if j == job && frame.index > 0 => {
                if let Some(grid) = &mut self.grid
                    && let Some(picture) = frame.pictures().into_iter().next()
                {
                    grid.cells[i] = Some(picture);
                    grid.serial += 1;
                }
            }
            _ => {}
        }
    }

    /// One of our jobs has failed: a cell keeps the reason, B's failure goes to the status bar.
    fn on_failed(&mut self, job: u64, message: &str) -> Option<String> {
        match self.queue.running.take() {
            Some((j, Target::Cell(i))) if j == job => {
                if let Some(grid) = &mut self.grid {
                    grid.errors[i] = Some(message.to_owned());
                    grid.serial += 1;
                }
                None
            }
            Some((j, Target::B)) if j == job => Some(format!("B: {message}")),
            other => {
                self.queue.running = other;
                None
            }
        }
    }

    /// Drops B when it waits for an A that was cancelled or failed.
    pub fn drop_queued_b(&mut self) {
        self.queue.waiting.retain(|(target, _)| *target != Target::B);
    }

    /// Drops what is queued (Cancel, or a new Generate).
    pub fn clear_queue(&mut self) {
        self.queue.clear();
    }

    /// Starts the next queued comparison run, if the engine is free of ours (`main_running`: the main run
    /// still runs; B waits for A).
    pub fn start_next_queued(&mut self, ctx: &mut PanelContext, main_running: bool) {
        if main_running || self.queue.running.is_some() {
            return;
        }
        let Some((target, request)) = self.queue.waiting.pop_front() else { return };
        // B streams like A (it is scrubbed); a grid cell needs only its result.
        let job = ctx.engine.generate(request, target == Target::B);
        self.queue.running = Some((job, target));
        if target == Target::B {
            self.queue.b_job = Some(job);
            // Its frames are this job's: textures of an earlier B at the same index are not reused.
            self.viewer_b.serial = job;
        }
    }

    /// B's `request` shown (empty) in B's viewer and queued to run after A.
    pub(super) fn queue_b(&mut self, ctx: &PanelContext, request: GenerateRequest) {
        let trajectory = Trajectory { budget_bytes: ctx.trajectory_budget, ..Trajectory::new(request.clone()) };
        self.viewer_b.show(trajectory, 0);
        self.queue.b_job = None;
        self.queue.waiting.push_back((Target::B, request));
    }

    /// "Continue from here" (or Generate in branch mode): B continues `branch`, queued to run after A.
    pub fn queue_branch(&mut self, ctx: &PanelContext, branch: Branch) {
        self.mode = Mode::Branch;
        self.branch.branch = Some(branch);
        let Some(request) = self.branch.request(&ctx.settings) else { return };
        self.drop_queued_b();
        self.queue_b(ctx, request);
    }

    /// Queues every cell of `run` (what was running was cancelled by the window, which then starts the
    /// first cell with [`ComparePanel::start_next_queued`]).
    pub(super) fn start_cells(&mut self, ctx: &mut PanelContext, run: Grid) {
        self.queue.waiting = run.requests.iter().cloned().enumerate().map(|(i, r)| (Target::Cell(i), r)).collect();
        self.grid = Some(run);
        self.queue.running = None;
        ctx.clear_status();
    }

    /// B's or the grid's part of the status bar.
    pub fn progress_ui(&self, ui: &mut egui::Ui) {
        match (self.queue.running, &self.grid) {
            (Some((_, Target::B)), _) => {
                let done = self.viewer_b.len().saturating_sub(1);
                let total = self.viewer_b.trajectory.as_ref().map_or(0, |t| t.total_steps);
                ui.label(format!("running B: step {done} of {total}"));
            }
            (Some((_, Target::Cell(i))), Some(grid)) => {
                ui.add(
                    egui::ProgressBar::new(grid.finished_cells() as f32 / grid.cells.len().max(1) as f32)
                        .desired_width(220.0)
                        .text(format!("grid: cell {} of {}", i + 1, grid.cells.len())),
                );
            }
            _ => {}
        }
    }
}
