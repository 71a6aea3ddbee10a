//! Comparing runs in the window. A/B: two runs from the same x_T (same seed, batch and class) with
//! different settings, side by side, scrubbed together by noise level. X/Y grid: one run per pair of
//! values of two settings, filling in live, labelled on both axes, saved as one PNG with every cell's
//! settings. The engine runs one job at a time: the runs of a comparison wait in a queue here.

use std::collections::VecDeque;

use eframe::egui::{self, TextureHandle, TextureOptions};

use super::LabApp;
use super::state::Trajectory;
use crate::diffusion::{BetaSchedule, Sampler, ScheduleKind};
use crate::engine::grid::{GridAxis, GridSetting, grid_requests};

use crate::engine::{Frame, GenerateRequest};
use crate::images::{GridLabels, Picture};

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
}

/// What an interpolation strip goes between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Between {
    /// A's seed's noise and `seed_b`'s (spherically), A's class throughout.
    Seeds,
    /// A's class and `class_b` (their τ_θ(y)), A's noise throughout.
    Classes,
}

/// What B changes from A; everything else (seed, batch, class, clipping) is A's, so both start from the
/// same x_T.
#[derive(Clone, Debug, PartialEq)]
pub struct BSettings {
    pub model: String,
    pub sampler: Sampler,
    pub guidance: f64,
    pub schedule: BetaSchedule,
}

/// A grid or an interpolation strip in progress (or done): its labels, every cell's request and what has
/// arrived.
#[derive(Clone, Debug)]
pub struct GridRun {
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

impl GridRun {
    pub fn labels(&self) -> GridLabels {
        self.labels.clone()
    }

    /// A run of `requests` (row-major) with these labels.
    fn new(
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
}

/// Which run a queued or running job belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    B,
    Cell(usize),
}

pub struct CompareState {
    pub mode: Mode,
    pub b: BSettings,
    pub trajectory_b: Option<Trajectory>,
    /// The grid's axes as the user types them: a setting and its comma-separated values.
    pub x_setting: GridSetting,
    pub x_values: String,
    pub y_setting: GridSetting,
    pub y_values: String,
    pub grid: Option<GridRun>,
    pub between: Between,
    pub seed_b: u64,
    pub class_b: usize,
    /// Images in a strip, both ends included.
    pub frames: usize,
    /// Runs waiting for the engine, in order; `running` is the one it has.
    pub queue: VecDeque<(Target, GenerateRequest)>,
    pub running: Option<(u64, Target)>,
    /// B's job, kept after it finishes for the frames decoded later.
    pub b_job: Option<u64>,
    texture_b: Option<(TextureHandle, (u64, usize, super::state::View, super::state::ColorMap))>,
    grid_texture: Option<(TextureHandle, u64)>,
}

impl CompareState {
    pub fn new(settings: &super::state::Settings) -> Self {
        Self {
            mode: Mode::Single,
            b: BSettings {
                model: settings.model.clone(),
                sampler: Sampler::new(crate::diffusion::Method::DpmSolver2M, 20),
                guidance: settings.guidance,
                schedule: settings.schedule,
            },
            trajectory_b: None,
            x_setting: GridSetting::Guidance,
            x_values: "0, 1, 2, 4".into(),
            y_setting: GridSetting::Steps,
            y_values: "10, 20, 50".into(),
            grid: None,
            between: Between::Seeds,
            seed_b: settings.seed + 1,
            class_b: 7,
            frames: 8,
            queue: VecDeque::new(),
            running: None,
            b_job: None,
            texture_b: None,
            grid_texture: None,
        }
    }

    /// Whether `job` is one of ours.
    pub fn owns(&self, job: u64) -> bool {
        self.running.is_some_and(|(j, _)| j == job)
    }

    /// The request B runs, for A's `request`.
    pub fn request_b(&self, request: &GenerateRequest) -> GenerateRequest {
        GenerateRequest {
            model: self.b.model.clone(),
            schedule: self.b.schedule,
            sampler: Sampler { clip_x0: request.sampler.clip_x0, ..self.b.sampler },
            guidance: self.b.guidance,
            ..request.clone()
        }
    }

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

    /// Every image's request of a strip from `base` (A's settings) to the other seed or class.
    pub fn strip_requests(&self, base: &GenerateRequest) -> (GridLabels, Vec<GenerateRequest>) {
        let n = self.frames.max(2);
        let (seed_b, class_b, what) = match self.between {
            Between::Seeds => (Some(self.seed_b), None, format!("seed {} -> {}", base.seed, self.seed_b)),
            Between::Classes => (
                None,
                Some(self.class_b),
                format!("class {} -> {}", base.class.map_or("any".into(), |c| c.to_string()), self.class_b),
            ),
        };
        let requests = crate::engine::grid::interpolation_requests(base, seed_b, class_b, n);
        let columns = requests.iter().map(|r| format!("{:.2}", r.interpolate.map_or(0.0, |i| i.u))).collect();
        (
            GridLabels { x_title: format!("u, {what}"), columns, y_title: String::new(), rows: vec![String::new()] },
            requests,
        )
    }

    /// Restored settings of a strip (its request says where u = 1 goes): back to interpolation mode.
    pub fn restore_interpolation(&mut self, interpolate: &crate::engine::generate::Interpolate) {
        self.mode = Mode::Interpolate;
        match (interpolate.seed_b, interpolate.class_b) {
            (Some(seed), _) => {
                self.between = Between::Seeds;
                self.seed_b = seed;
            }
            (None, Some(class)) => {
                self.between = Between::Classes;
                self.class_b = class;
            }
            (None, None) => {}
        }
    }

    /// A frame of one of our jobs has arrived.
    pub fn on_frame(&mut self, job: u64, frame: Frame, total_steps: usize) {
        match self.running {
            Some((j, Target::B)) if j == job => {
                if let Some(trajectory) = &mut self.trajectory_b {
                    trajectory.total_steps = total_steps;
                    trajectory.push(frame);
                }
            }
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
    pub fn on_failed(&mut self, job: u64, message: &str) -> Option<String> {
        match self.running.take() {
            Some((j, Target::Cell(i))) if j == job => {
                if let Some(grid) = &mut self.grid {
                    grid.errors[i] = Some(message.to_owned());
                    grid.serial += 1;
                }
                None
            }
            Some((j, Target::B)) if j == job => Some(format!("B: {message}")),
            other => {
                self.running = other;
                None
            }
        }
    }

    /// Whether decoded frames of `job` belong to B: B's job, running or finished (the engine decodes a
    /// latent run's frames after it).
    pub fn decodes(&self, job: u64) -> bool {
        self.b_job == Some(job)
    }

    /// Drops what is queued (Cancel, or a new Generate).
    pub fn clear_queue(&mut self) {
        self.queue.clear();
    }
}

impl LabApp {
    /// Starts the next queued comparison run, if the engine is free.
    pub fn start_next_queued(&mut self) {
        if self.is_running() {
            return;
        }
        let Some((target, request)) = self.compare.queue.pop_front() else { return };
        // B streams like A (it is scrubbed); a grid cell needs only its result.
        let job = self.engine.generate(request, target == Target::B);
        self.compare.running = Some((job, target));
        if target == Target::B {
            self.compare.b_job = Some(job);
        }
    }

    /// Generate in A/B mode: A as always, then B from the same x_T.
    pub fn start_ab(&mut self) {
        let request_b = self.compare.request_b(&self.settings.request());
        self.start_single();
        if self.is_running() {
            self.compare.trajectory_b =
                Some(Trajectory { budget_bytes: self.trajectory_budget, ..Trajectory::new(request_b.clone()) });
            self.compare.queue.push_back((Target::B, request_b));
        }
    }

    /// Generate in grid mode: every cell, one after the other, each filled in as it finishes.
    pub fn start_grid(&mut self) {
        let mut base = self.settings.request();
        // A strength axis edits the Forward process panel's picture.
        if [self.compare.x_setting, self.compare.y_setting].contains(&GridSetting::Strength) {
            base.init = super::forward_ui::init_from_panel(self);
        }
        let (x, y, requests) = match self.compare.grid_requests(&base) {
            Ok(grid) => grid,
            Err(e) => {
                self.set_status(format!("cannot run the grid: {e}"), true);
                return;
            }
        };
        let labels = GridLabels {
            x_title: x.title().into(),
            columns: x.values.clone(),
            y_title: y.title().into(),
            rows: y.values.clone(),
        };
        let settings = crate::engine::grid::grid_settings_json(&x, &y, &requests);
        self.start_cells(GridRun::new(labels, settings, base, requests));
    }

    /// Generate in interpolation mode: the strip's images one after the other, filled in as they finish.
    pub fn start_interpolation(&mut self) {
        let base = self.settings.request();
        let (labels, requests) = self.compare.strip_requests(&base);
        let settings = serde_json::json!({ "interpolation": requests });
        // The strip's PNG restores as its far end's settings: A's seed and class, and where u = 1 goes.
        let base = GenerateRequest { interpolate: requests.last().and_then(|r| r.interpolate), ..base };
        self.start_cells(GridRun::new(labels, settings, base, requests));
    }

    fn start_cells(&mut self, run: GridRun) {
        self.cancel();
        self.compare.clear_queue();
        self.compare.queue = run.requests.iter().cloned().enumerate().map(|(i, r)| (Target::Cell(i), r)).collect();
        self.compare.grid = Some(run);
        self.compare.running = None;
        self.status = None;
        self.start_next_queued();
    }

    /// Why the comparison of the current mode cannot run, if it cannot (A's own reasons come first).
    pub fn compare_blocker(&self) -> Option<String> {
        match self.compare.mode {
            Mode::Single => None,
            Mode::AB => {
                let Some(model) = self.models.iter().find(|m| m.name == self.compare.b.model) else {
                    return Some(format!("B's model {} is not loaded", self.compare.b.model));
                };
                let request = self.compare.request_b(&self.settings.request());
                request.validate(model.config.num_classes).err().map(|e| format!("B: {e}"))
            }
            Mode::Grid => self.compare.axes().err(),
            Mode::Interpolate => {
                let model = self.model_info()?;
                let (_, requests) = self.compare.strip_requests(&self.settings.request());
                requests.iter().find_map(|r| r.validate(model.config.num_classes).err()).map(|e| e.to_string())
            }
        }
    }

    /// The frame of B nearest in noise level to A's frame on screen.
    pub fn current_frame_b(&self) -> Option<&Frame> {
        let a = self.current_frame()?;
        let b = self.compare.trajectory_b.as_ref()?;
        let position = b.nearest_noise_level(a.log_snr)?;
        b.frames.get(b.display_position(position, self.settings.view))
    }
}

fn schedule_kind_ui(ui: &mut egui::Ui, label: &str, schedule: &mut BetaSchedule) {
    egui::ComboBox::from_label(label).selected_text(schedule.kind.name()).show_ui(ui, |ui| {
        for kind in ScheduleKind::ALL {
            if ui.selectable_label(schedule.kind == kind, kind.name()).clicked() && schedule.kind != kind {
                *schedule = BetaSchedule::default_for(kind, schedule.steps);
            }
        }
    });
}

/// The comparison controls in the Generate panel: the mode, then B's settings or the grid's axes.
pub fn compare_panel_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.label("Compare:");
        ui.selectable_value(&mut app.compare.mode, Mode::Single, "Off");
        ui.selectable_value(&mut app.compare.mode, Mode::AB, "A/B");
        ui.selectable_value(&mut app.compare.mode, Mode::Grid, "X/Y grid");
        ui.selectable_value(&mut app.compare.mode, Mode::Interpolate, "Interpolate");
    });
    match app.compare.mode {
        Mode::Single => {}
        Mode::AB => {
            ui.label("B starts from A's x_T (seed, batch, class); it changes:");
            let names: Vec<String> = app.models.iter().map(|m| m.name.clone()).collect();
            egui::ComboBox::from_label("B: model").selected_text(&app.compare.b.model).show_ui(ui, |ui| {
                for name in names {
                    ui.selectable_value(&mut app.compare.b.model, name.clone(), name);
                }
            });
            let steps = app.compare.b.schedule.steps;
            super::generate_ui::sampler_ui(ui, "B: ", &mut app.compare.b.sampler, steps);
            ui.add(egui::Slider::new(&mut app.compare.b.guidance, 0.0..=10.0).step_by(0.1).text("B: guidance"));
            schedule_kind_ui(ui, "B: schedule", &mut app.compare.b.schedule);
            if ui.button("B = A").on_hover_text("Copy A's model, sampler, guidance and schedule into B").clicked() {
                app.compare.b = BSettings {
                    model: app.settings.model.clone(),
                    sampler: app.settings.sampler,
                    guidance: app.settings.guidance,
                    schedule: app.settings.schedule,
                };
            }
        }
        Mode::Interpolate => {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut app.compare.between, Between::Seeds, "Between seeds");
                ui.selectable_value(&mut app.compare.between, Between::Classes, "Between classes");
            });
            match app.compare.between {
                Between::Seeds => {
                    ui.add(egui::DragValue::new(&mut app.compare.seed_b).prefix("to seed "))
                        .on_hover_text("Seed B: x_T moves from A's seed's noise to this one's, on the sphere");
                }
                Between::Classes => {
                    let classes = app.model_info().map_or(10, |m| m.config.num_classes);
                    ui.add(egui::Slider::new(&mut app.compare.class_b, 0..=classes.saturating_sub(1)).text("to class"))
                        .on_hover_text("τ_θ(y) moves from A's class to this one; the noise stays");
                }
            }
            ui.add(egui::Slider::new(&mut app.compare.frames, 2..=32).text("Frames"));
            grid_progress_ui(app, ui);
            let done = app
                .compare
                .grid
                .as_ref()
                .is_some_and(|g| g.finished_cells() == g.cells.len() && g.cells.iter().all(Option::is_some));
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(done, egui::Button::new("Save strip…"))
                    .on_disabled_hover_text("run the strip to the end first")
                    .clicked()
                {
                    super::export::save_grid_in_background(app, ui.ctx().clone());
                }
                if ui
                    .add_enabled(done, egui::Button::new("Save strip GIF…"))
                    .on_disabled_hover_text("run the strip to the end first")
                    .clicked()
                {
                    super::export::save_strip_gif_in_background(app, ui.ctx().clone());
                }
            });
        }
        Mode::Grid => {
            for (axis, setting, values) in [
                ("X", &mut app.compare.x_setting, &mut app.compare.x_values),
                ("Y", &mut app.compare.y_setting, &mut app.compare.y_values),
            ] {
                ui.horizontal(|ui| {
                    egui::ComboBox::from_label(format!("{axis} setting")).selected_text(setting.name()).show_ui(
                        ui,
                        |ui| {
                            for s in GridSetting::ALL {
                                ui.selectable_value(setting, s, s.name());
                            }
                        },
                    );
                });
                ui.add(egui::TextEdit::singleline(values).hint_text("values, comma-separated"))
                    .labelled_by(ui.label(format!("{axis} values")).id);
            }
            grid_progress_ui(app, ui);
            let done = app
                .compare
                .grid
                .as_ref()
                .is_some_and(|g| g.finished_cells() == g.cells.len() && g.cells.iter().any(Option::is_some));
            if ui
                .add_enabled(done, egui::Button::new("Save grid…"))
                .on_disabled_hover_text("run the grid to the end first")
                .clicked()
            {
                super::export::save_grid_in_background(app, ui.ctx().clone());
            }
        }
    }
}

/// How many cells of the grid or strip are done, and why any failed.
fn grid_progress_ui(app: &LabApp, ui: &mut egui::Ui) {
    if let Some(grid) = &app.compare.grid {
        ui.label(format!("{} of {} cells done", grid.finished_cells(), grid.cells.len()));
        for (i, error) in grid.errors.iter().enumerate().filter_map(|(i, e)| e.as_ref().map(|e| (i, e))) {
            ui.colored_label(ui.visuals().warn_fg_color, format!("cell {}: {error}", i + 1));
        }
    }
}

/// The middle of the window in A/B mode: A and B side by side, each labelled with what it is.
pub fn ab_view_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let (view, map, zoom) = (app.settings.view, app.settings.color_map, app.settings.zoom);
    let label_of = |request: &GenerateRequest| {
        format!(
            "{} · {} · w = {} · {} schedule",
            request.model,
            request.sampler.label(),
            request.guidance,
            request.schedule.kind
        )
    };
    let a_label = app.trajectory.as_ref().map(|t| label_of(&t.request)).unwrap_or_default();
    let b_label = app.compare.trajectory_b.as_ref().map(|t| label_of(&t.request)).unwrap_or_default();
    let a_level = app.current_frame().map(|f| (f.t, f.log_snr));
    let b_level = app.current_frame_b().map(|f| (f.t, f.log_snr, f.index));
    let a_texture = app.frame_texture(ui.ctx());
    // B's texture is rebuilt only when the frame to show, the view or the colours change.
    let b_texture = match b_level {
        Some((_, _, index)) => {
            let key = (app.compare.b_job.unwrap_or(0), index, view, map);
            match &app.compare.texture_b {
                Some((texture, k)) if *k == key => Some(texture.clone()),
                _ => {
                    let image = app.current_frame_b().map(|f| super::view::color_image(f, view, map));
                    image.map(|image| {
                        let texture = ui.ctx().load_texture("frame-b", image, TextureOptions::NEAREST);
                        app.compare.texture_b = Some((texture.clone(), key));
                        texture
                    })
                }
            }
        }
        None => None,
    };
    let waiting_b = if app.compare.trajectory_b.is_some() { "waiting for A to finish…" } else { "not run yet" };
    // Both halves in view: shrink the zoom until two grids fit side by side (never below 1).
    let widest =
        [&a_texture, &b_texture].iter().filter_map(|t| t.as_ref().map(|t| t.size_vec2().x)).fold(1.0f32, f32::max);
    let half = (ui.available_width() - 24.0) / 2.0;
    let zoom = zoom.min((half / widest).floor()).max(1.0);
    egui::ScrollArea::both().show(ui, |ui| {
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.strong(format!("A: {a_label}"));
                match (a_level, a_texture) {
                    (Some((t, log_snr)), Some(texture)) => {
                        ui.label(format!("t = {t}, λ = {log_snr:.2}"));
                        ui.add(egui::Image::new((texture.id(), texture.size_vec2() * zoom)).alt_text("A images"));
                    }
                    _ => {
                        ui.label("Press Generate: A runs first, then B.");
                    }
                }
            });
            ui.separator();
            ui.vertical(|ui| {
                ui.strong(format!("B: {b_label}"));
                match (b_level, b_texture) {
                    (Some((t, log_snr, _)), Some(texture)) => {
                        ui.label(format!("t = {t}, λ = {log_snr:.2} (nearest noise level to A's)"));
                        ui.add(egui::Image::new((texture.id(), texture.size_vec2() * zoom)).alt_text("B images"));
                    }
                    _ => {
                        ui.label(waiting_b);
                    }
                }
            });
        });
    });
}

/// The middle of the window in grid mode: the labelled grid, cells appearing as they finish.
pub fn grid_view_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let Some(grid) = &app.compare.grid else {
        ui.centered_and_justified(|ui| {
            ui.label("Pick two settings and their values on the left, then press Generate: one image per pair.");
        });
        return;
    };
    let serial = grid.serial;
    let zoom = app.settings.zoom.round().max(1.0) as usize;
    let texture = match &app.compare.grid_texture {
        Some((texture, s)) if *s == serial => texture.clone(),
        _ => {
            let cells: Vec<Option<Picture>> =
                grid.cells.iter().map(|c| c.as_ref().map(|p| crate::images::scaled(p, zoom))).collect();
            let picture = crate::images::labelled_grid(&cells, &grid.labels(), 4);
            let image = egui_image_from_picture(&picture);
            let texture = ui.ctx().load_texture("grid", image, TextureOptions::NEAREST);
            app.compare.grid_texture = Some((texture.clone(), serial));
            texture
        }
    };
    egui::ScrollArea::both().show(ui, |ui| {
        ui.add(egui::Image::new((texture.id(), texture.size_vec2())).alt_text("X/Y grid"));
    });
}

fn egui_image_from_picture(picture: &Picture) -> egui::ColorImage {
    let pixels = match picture.channels {
        3 => picture.pixels.chunks_exact(3).map(|p| egui::Color32::from_rgb(p[0], p[1], p[2])).collect(),
        _ => picture.pixels.iter().map(|v| egui::Color32::from_gray(*v)).collect(),
    };
    egui::ColorImage::new([picture.width, picture.height], pixels)
}
