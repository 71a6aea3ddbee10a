//! Where what arrives goes: each engine event to the panel whose job it is (the panel that started a run
//! handles its frames and its end; the Forward process panel its x_t; the Train view its training), model
//! and device events to the shared context, and file dialog results to the panel that opened the dialog.

use super::LabApp;
use super::dialogs::FileEvent;
use super::generate_ui::RunEnd;
use crate::engine::{Event, GenerateRequest};
use crate::model::ModelId;

impl LabApp {
    /// Applies every engine and file event that has arrived; events of stale jobs are dropped.
    pub fn handle_events(&mut self) {
        for event in self.ctx.engine.poll() {
            match event {
                Event::Frame { job, .. }
                | Event::Done { job, .. }
                | Event::Failed { job, .. }
                | Event::Decoded { job, .. } => self.on_run_event(job, event),
                Event::ForwardImage { .. }
                | Event::ForwardFrame { .. }
                | Event::ForwardFailed { .. }
                | Event::Posterior(_) => self.forward.on_event(event),
                Event::Train(event) => self.train.on_event(&mut self.ctx, event),
                Event::Lab2d(event) => self.lab2d.on_event(&mut self.ctx, event),
                // Attention belongs to the viewer showing that run (each checks the key).
                Event::Attention { key, attention } => {
                    for viewer in [&mut self.generate.viewer, &mut self.compare.viewer_b, &mut self.train.viewer] {
                        viewer.step.on_attention(key, attention.clone());
                    }
                }
                Event::Decided { job, rows } => self.compare.on_decided(&mut self.ctx, job, rows),
                event => self.on_model_event(event),
            }
        }
        for event in self.ctx.dialogs.drain() {
            self.on_file_event(event);
        }
    }

    /// A run's event, to the panel that started the run; when a run ends, the next queued one starts.
    fn on_run_event(&mut self, job: u64, event: Event) {
        let end = if self.generate.owns(job) {
            let end = self.generate.on_run_event(&mut self.ctx, event);
            // B runs after A only when A ran to its end.
            if end == Some(RunEnd::Stopped) {
                self.compare.drop_queued_b();
            }
            end
        } else if self.compare.owns(job) {
            self.compare.on_run_event(&mut self.ctx, event)
        } else {
            None // A superseded job.
        };
        if end.is_some() {
            self.compare.start_next_queued(&mut self.ctx, self.generate.is_running());
        }
    }

    /// The device and the models: what the status bar and the model pickers show.
    fn on_model_event(&mut self, event: Event) {
        match event {
            Event::Ready { device, .. } => {
                self.ctx.clear_preparing_status();
                self.ctx.models.device = Some(device);
            }
            Event::DeviceFailed { message } => self.ctx.set_status(format!("could not switch device: {message}"), true),
            Event::Preparing { id } => {
                self.ctx.set_preparing_status(format!(
                    "preparing the GPU for {id}… (compiling and tuning its kernels, once)"
                ));
            }
            Event::ModelLoaded(info) => {
                self.ctx.clear_preparing_status();
                self.ctx.models.loaded.retain(|m| m.id != info.id);
                let selected = info.id == self.ctx.settings.model;
                self.ctx.models.loaded.push(*info);
                if selected {
                    self.ctx.sanitize_settings();
                }
            }
            Event::ModelFailed { id: failed, message } => {
                self.ctx.set_status(format!("could not load {failed}: {message}"), true);
                if self.ctx.settings.model == failed {
                    self.ctx.settings.model = match self.ctx.models.before_open.take() {
                        Some((opened, previous)) if opened == failed && self.ctx.models.info(&previous).is_some() => {
                            previous
                        }
                        _ => ModelId::default_built_in(),
                    };
                }
            }
            _ => {}
        }
    }

    fn on_file_event(&mut self, event: FileEvent) {
        match event {
            FileEvent::Saved(path) => self.ctx.set_status(format!("saved {path}"), false),
            FileEvent::Failed(message) => self.ctx.set_status(message, true),
            FileEvent::ForwardImagePicked(path) => self.forward.load_file_image(&mut self.ctx, path),
            FileEvent::CheckpointPicked(path) => self.ctx.open_checkpoint(path),
            FileEvent::TrainFolderPicked(target, path) => self.train.on_folder_picked(&mut self.ctx, target, path),
            FileEvent::SettingsLoaded(request, path) => self.restore_settings(&request, &path),
        }
    }

    /// "Open settings from PNG…": the settings, the Forward panel's picture of an edit, a strip's far end, a
    /// branch (its own settings on the left, its parent and step in branch mode: Generate runs both).
    pub fn restore_settings(&mut self, request: &GenerateRequest, path: &str) {
        self.ctx.settings.apply_request(request);
        if let Some(branch) = &request.branch {
            self.compare.restore_branch(branch);
        }
        self.ctx.set_status(format!("settings restored from {path}"), false);
        if !self.ctx.settings.model.is_built_in() && self.model_info().is_none() {
            let model = std::mem::replace(&mut self.ctx.settings.model, ModelId::default_built_in());
            let text = format!(
                "settings restored from {path}, but its model `{model}` is not loaded: using {}",
                self.ctx.settings.model
            );
            self.ctx.set_status(text, true);
        }
        self.ctx.sanitize_settings();
        if let Some(init) = &request.init {
            self.forward.restore_init(&mut self.ctx, init);
        }
        if let Some(interpolate) = &request.interpolate {
            self.compare.restore_interpolation(interpolate);
        }
    }
}
