//! The engine's thread: the [`Worker`] that owns the device and the models and serves the commands.

use crate::model::ModelId;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};

use super::backlog::DecodeBacklog;
use super::device::{ComputeDevice, DeviceChoice, open_device};
use super::error::EngineError;
use super::forward::{ForwardX0, NoisedFrame, TestSetCache, encode_scaled, forward_frame, forward_image};
use super::lab2d::{Lab2dEvent, Lab2dState};
use super::lab2d_jobs::LabSink;
use super::models::LoadedModel;
use super::train::{Publish, TrainCommand, TrainEvent, TrainerState};
use super::worker::{Command, CommandFailure, Event, ForwardSource, ModelSource};
use crate::run::generate::{Frame, GenerateRequest, RunHooks, RunSummary, decode_frame, run_generate};

/// Where events go: the window's queue, and a nudge so that it looks (the app repaints). Shared with the
/// 2-D lab's jobs, which send from their own threads (the nudge behind a lock: it need not be `Sync`).
#[derive(Clone)]
struct Outbox {
    events: Sender<Event>,
    notify: Arc<Mutex<Box<dyn Fn() + Send>>>,
}

impl Outbox {
    fn send(&self, event: Event) {
        // The window is gone when this fails; the Shutdown it sent on its way out ends the loop.
        let _ = self.events.send(event);
        (self.notify.lock().unwrap_or_else(PoisonError::into_inner))();
    }

    /// The 2-D lab's events, from any thread.
    fn lab_sink(&self) -> LabSink {
        let outbox = self.clone();
        Arc::new(move |event| outbox.send(Event::Lab2d(event)))
    }
}

/// Everything the engine thread owns, and one method per [`Command`].
///
/// Threads: the UI thread (the window, or a test or the CLI) holds the [`super::Engine`] handle and never
/// waits on this; the worker runs on the one engine thread, the only thread with a device and models.
/// Commands come in over a channel, events go out over another, each followed by `notify`.
///
/// Cancellation is by job id: every Generate gets a fresh id, which the handle stores in `current_job`
/// before sending it. A run checks that atomic before each step, so a newer Generate or a Cancel stops
/// the old run within one step, without a command having to reach the worker; the UI drops any event whose
/// job is not the current one.
///
/// A latent run decodes only some of its frames to pixels while it runs (decoding is slow); the others
/// wait in the decode backlog, decoded one at a time between commands, the one the window asks for
/// ([`Command::Decode`]) first. Training is interleaved the same way: one optimizer step whenever no
/// command is waiting and the backlog is empty. Either way a new command waits for at most one decode or
/// one training step. The 2-D lab's long measurements run on threads of their own (engine/lab2d_jobs.rs)
/// and send their answers through the same channel.
///
/// A panic while serving a command (a bug, or a model that burn cannot run) becomes that command's failure
/// event, and the worker serves the next one.
pub(crate) struct Worker {
    device: ComputeDevice,
    models: BTreeMap<ModelId, LoadedModel>,
    forward_x0: Option<ForwardX0>,
    test_set: TestSetCache,
    backlog: Option<DecodeBacklog>,
    trainer: TrainerState,
    lab2d: Lab2dState,
    /// The judge of "When is it decided?" rows on the engine's device (loaded at its first use).
    judge: Option<Arc<crate::eval::Judge>>,
    /// The job allowed to run; 0 = none. Written by the handle, read here.
    current_job: Arc<AtomicU64>,
    outbox: Outbox,
    lab_sink: LabSink,
}

impl Worker {
    /// Opens the device asked for (the CPU if it cannot be opened) and says so with [`Event::Ready`].
    pub(crate) fn start(
        choice: DeviceChoice,
        events: Sender<Event>,
        current_job: Arc<AtomicU64>,
        train_stop: Arc<AtomicBool>,
        notify: Box<dyn Fn() + Send>,
    ) -> Self {
        let device = open_device(choice).unwrap_or_else(|_| ComputeDevice::cpu());
        let outbox = Outbox { events, notify: Arc::new(Mutex::new(notify)) };
        let worker = Self {
            device,
            models: BTreeMap::new(),
            forward_x0: None,
            test_set: TestSetCache::default(),
            backlog: None,
            trainer: TrainerState::new(train_stop),
            lab2d: Lab2dState::default(),
            judge: None,
            current_job,
            lab_sink: outbox.lab_sink(),
            outbox,
        };
        worker.send(Event::Ready { device: worker.device.description.clone(), is_gpu: worker.device.is_gpu });
        worker
    }

    /// Serves `commands` until Shutdown (or until the handle is gone).
    pub(crate) fn run(mut self, commands: Receiver<Command>) {
        loop {
            let command = if self.has_idle_work() {
                match commands.try_recv() {
                    Ok(command) => command,
                    Err(TryRecvError::Empty) => {
                        self.idle_step();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                match commands.recv() {
                    Ok(command) => command,
                    Err(_) => break,
                }
            };
            if matches!(command, Command::Shutdown) {
                // Closing the window mid-run keeps every step done: the run resumes from here.
                self.trainer.save_on_exit();
                self.lab2d.stop_jobs();
                break;
            }
            self.serve(command);
        }
    }

    fn send(&self, event: Event) {
        self.outbox.send(event);
    }

    /// Runs one command; a panic in it becomes its failure event.
    fn serve(&mut self, command: Command) {
        let on_panic = panic_event(&command);
        let served = catch_unwind(AssertUnwindSafe(|| match command {
            Command::Generate { job, request, stream } => self.generate(job, &request, stream),
            Command::Decode { job, index } => self.decode(job, index),
            Command::LoadModel { id, source, autoencoder } => self.load_model(id, &source, autoencoder.as_ref()),
            Command::LoadForwardImage { source, size, channels, model } => {
                self.load_forward_image(&source, size, channels, model)
            }
            Command::Forward { schedule, t, seed } => self.forward(schedule, t, seed),
            Command::Posterior { model, schedule, t, seed, curve } => self.posterior(&model, schedule, t, seed, curve),
            Command::Attention { key, request, inputs } => self.attention(key, &request, &inputs),
            Command::Decided { job, request, continuations, points, branch_class } => {
                self.decided(job, &request, continuations, points, branch_class)
            }
            Command::SetDevice(choice) => self.set_device(choice),
            Command::Train(command) => self.train(command),
            Command::Lab2d(command) => self.lab2d.handle(command, &self.lab_sink),
            Command::InjectPanic { job } => panic!("injected panic in job {job}"),
            // `run` ends the loop before it gets here.
            Command::Shutdown => {}
        }));
        if let Err(payload) = served {
            self.send(on_panic(panic_message(payload.as_ref())));
        }
    }

    fn has_idle_work(&self) -> bool {
        self.backlog.as_ref().is_some_and(DecodeBacklog::has_pending)
            || self.trainer.is_training()
            || self.lab2d.is_training()
    }

    /// One piece of the work done between commands: a frame of the backlog, else a training step of the
    /// Train view, else a burst of the 2-D lab's training.
    fn idle_step(&mut self) {
        if self.backlog.as_ref().is_some_and(DecodeBacklog::has_pending) {
            self.decode_next();
        } else if self.trainer.is_training() {
            self.train_step();
        } else {
            self.lab2d_burst();
        }
    }

    /// A burst of the 2-D lab's training; a panic in it ends the session's training with a message.
    fn lab2d_burst(&mut self) {
        let outbox = &self.outbox;
        let send = |event: Lab2dEvent| outbox.send(Event::Lab2d(event));
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.lab2d.train_burst(&send))) {
            self.lab2d = Lab2dState::default();
            let message = internal_error("2-D lab training", panic_message(payload.as_ref()));
            self.send(Event::Lab2d(Lab2dEvent::Failed { message, training_stopped: true }));
        }
    }

    /// Decodes the backlog's next frame. A failure (or a panic) ends the backlog: the run's other frames
    /// would most likely fail alike.
    fn decode_next(&mut self) {
        let Some(backlog) = self.backlog.as_mut() else { return };
        let job = backlog.job;
        let autoencoder = self.models.get(&backlog.model).and_then(|m| m.autoencoder.as_ref());
        // Thinned out of the budget, or its model was replaced since: nothing to decode.
        let Some((index, Some(frame))) = backlog.next() else { return };
        let Some(ae) = autoencoder else { return };
        let decoded = catch_unwind(AssertUnwindSafe(|| decode_frame(ae, frame, &self.device.device)));
        let message = match decoded {
            Ok(Ok(decoded)) => return self.send(Event::Decoded { job, index, decoded }),
            Ok(Err(source)) => EngineError::Decode { index, source }.to_string(),
            Err(payload) => internal_error("the run", panic_message(payload.as_ref())),
        };
        self.backlog = None;
        self.send(Event::Failed { job, message });
    }

    /// One optimizer step of the Train view's run.
    fn train_step(&mut self) {
        let outbox = &self.outbox;
        let send = |event: TrainEvent| outbox.send(Event::Train(event));
        let stepped = catch_unwind(AssertUnwindSafe(|| self.trainer.step(&self.device.device, &send)));
        match stepped {
            Ok(published) => self.publish(published),
            Err(payload) => {
                self.trainer.session = None;
                let message = internal_error("training", panic_message(payload.as_ref()));
                self.send(Event::Train(TrainEvent::Failed { message }));
            }
        }
    }

    /// Registers a model that training handed over (Generate's picker shows it at once).
    fn publish(&mut self, published: Option<Publish>) {
        if let Some((name, unet, autoencoder)) = published {
            let model = LoadedModel { unet, autoencoder };
            self.send(Event::ModelLoaded(Box::new(model.info(&name))));
            self.models.insert(name, model);
        }
    }

    fn attention(&mut self, key: u64, request: &GenerateRequest, inputs: &[crate::run::explain::AttentionInput]) {
        let attention = match self.models.get(&request.model) {
            None => Err(EngineError::ModelNotLoaded(request.model.label()).to_string()),
            Some(model) => crate::run::explain::attention_of_run(&model.unet, request, inputs, &self.device.device)
                .map(Arc::new)
                .map_err(|e| e.to_string()),
        };
        self.send(Event::Attention { key, attention });
    }

    fn decided(
        &mut self,
        job: u64,
        request: &GenerateRequest,
        continuations: usize,
        points: usize,
        branch_class: Option<usize>,
    ) {
        let judge = self.judge();
        let rows = match self.models.get(&request.model) {
            None => Err(CommandFailure::Failed(EngineError::ModelNotLoaded(request.model.label()).to_string())),
            Some(model) => {
                let options = crate::eval::decided::DecidedOptions {
                    runs: 1,
                    continuations,
                    sampler: crate::eval::decided::stochastic_sibling(request.sampler),
                    class: request.class,
                    branch_class,
                    guidance: request.guidance,
                    seed: request.seed,
                    points,
                };
                request
                    .schedule
                    .build()
                    .map_err(|e| CommandFailure::Failed(e.to_string()))
                    .and_then(|schedule| {
                        let (unet, ae, device) = (&model.unet, model.autoencoder.as_ref(), &self.device.device);
                        // Cancel, or any newer job, stops it within a step.
                        let keep_going = || self.current_job.load(Ordering::SeqCst) == job;
                        crate::eval::decided::continued_rows(
                            unet,
                            ae,
                            judge.as_deref(),
                            &schedule,
                            &options,
                            device,
                            &keep_going,
                        )
                        .map_err(|e| match e {
                            crate::eval::decided::DecidedError::Cancelled => CommandFailure::Cancelled,
                            other => CommandFailure::Failed(other.to_string()),
                        })
                    })
                    .map(Arc::new)
            }
        };
        self.send(Event::Decided { job, rows });
    }

    /// The embedded Fashion-MNIST classifier on the engine's device, loaded at its first use; `None` if it
    /// cannot be loaded (the rows then come unjudged).
    fn judge(&mut self) -> Option<Arc<crate::eval::Judge>> {
        if self.judge.is_none() {
            let checkpoint =
                crate::model::checkpoint::Checkpoint::from_bytes(crate::model::embedded::FASHION_CLASSIFIER);
            let judge = checkpoint.ok().and_then(|c| crate::eval::Judge::from_checkpoint(&c, &self.device.device).ok());
            self.judge = judge.map(Arc::new);
        }
        self.judge.clone()
    }

    fn generate(&mut self, job: u64, request: &GenerateRequest, stream: bool) {
        self.backlog = None;
        if self.current_job.load(Ordering::SeqCst) != job {
            // Cancelled or superseded before it started: say so, so that nobody waits for it.
            let summary = RunSummary { steps_done: 0, cancelled: true, seconds: 0.0 };
            self.send(Event::Done { job, summary });
            return;
        }
        let Some(model) = self.models.get(&request.model) else {
            let message = EngineError::ModelNotLoaded(request.model.label()).to_string();
            self.send(Event::Failed { job, message });
            return;
        };
        let total_steps =
            request.schedule.build().ok().and_then(|s| request.plan(&s).ok()).map_or(0, |(plan, _)| plan.len());
        let keep_going = || self.current_job.load(Ordering::SeqCst) == job;
        let mut backlog = DecodeBacklog::new(job, request.model.clone());
        let mut emit = |frame: Frame| {
            if model.unet.is_latent() {
                backlog.record(&frame);
            }
            self.outbox.send(Event::Frame { job, frame, total_steps });
        };
        let hooks = RunHooks { keep_going: &keep_going, stream, emit: &mut emit };
        match run_generate(&model.unet, model.autoencoder.as_ref(), request, &self.device.device, hooks) {
            Ok(summary) => self.send(Event::Done { job, summary }),
            Err(e) => self.send(Event::Failed { job, message: e.to_string() }),
        }
        self.backlog = Some(backlog).filter(DecodeBacklog::has_pending);
    }

    /// Frame `index` of run `job` is decoded next, if that run's frames are still being decoded.
    fn decode(&mut self, job: u64, index: usize) {
        if let Some(backlog) = self.backlog.as_mut().filter(|b| b.job == job) {
            backlog.prioritize(index);
        }
    }

    fn load_model(&mut self, name: ModelId, source: &ModelSource, autoencoder: Option<&ModelSource>) {
        match LoadedModel::load(source, autoencoder, &self.device.device) {
            Ok(model) => {
                if self.device.is_gpu {
                    self.send(Event::Preparing { id: name.clone() });
                    model.warm_up(&self.device.device);
                }
                self.send(Event::ModelLoaded(Box::new(model.info(&name))));
                self.models.insert(name, model);
            }
            Err(e) => self.send(Event::ModelFailed { id: name, message: e.to_string() }),
        }
    }

    /// Loads x_0; for a latent model (`model`, if it is one with its autoencoder) the image comes at the
    /// autoencoder's size and x_0 is its latent.
    fn load_forward_image(&mut self, source: &ForwardSource, size: usize, channels: usize, model: Option<ModelId>) {
        let latent =
            model.filter(|m| self.models.get(m).is_some_and(|m| m.unet.is_latent() && m.autoencoder.is_some()));
        let autoencoder = latent.as_ref().and_then(|m| self.models.get(m)).and_then(|m| m.autoencoder.as_ref());
        let (size, channels) =
            autoencoder.map_or((size, channels), |ae| (ae.config.image_size, ae.config.image_channels));
        let shape = [1, channels, size, size];
        let loaded = forward_image(source, size, channels, &mut self.test_set).and_then(|(x0, label)| {
            let values = match autoencoder {
                Some(ae) => encode_scaled(ae, &x0, shape, &self.device.device)?,
                None => (x0.clone(), shape),
            };
            Ok((x0, label, values))
        });
        match loaded {
            Ok((x0, label, (values, value_shape))) => {
                self.send(Event::ForwardImage { x0: Arc::new(x0), shape, label });
                self.forward_x0 = Some(ForwardX0 { values, shape: value_shape, latent_model: latent });
            }
            Err(e) => self.send(Event::ForwardFailed { message: e.to_string() }),
        }
    }

    fn forward(&self, schedule: crate::diffusion::BetaSchedule, t: usize, seed: u64) {
        let Some(x0) = &self.forward_x0 else {
            self.send(Event::ForwardFailed { message: EngineError::NoForwardImage.to_string() });
            return;
        };
        let autoencoder =
            x0.latent_model.as_ref().and_then(|m| self.models.get(m)).and_then(|m| m.autoencoder.as_ref());
        match forward_frame(x0, autoencoder, schedule, t, seed, &self.device.device) {
            Ok(NoisedFrame { x_t, noise, shape }) => {
                self.send(Event::ForwardFrame { t, x_t: Arc::new(x_t), noise: Arc::new(noise), shape })
            }
            Err(e) => self.send(Event::ForwardFailed { message: e.to_string() }),
        }
    }

    fn posterior(&self, model: &ModelId, schedule: crate::diffusion::BetaSchedule, t: usize, seed: u64, curve: bool) {
        let Some(x0) = &self.forward_x0 else {
            self.send(Event::ForwardFailed { message: EngineError::NoForwardImage.to_string() });
            return;
        };
        // A latent x_0 belongs to the latent model that encoded it.
        let id = x0.latent_model.as_ref().unwrap_or(model);
        let Some(loaded) = self.models.get(id) else {
            self.send(Event::ForwardFailed { message: EngineError::ModelNotLoaded(id.label()).to_string() });
            return;
        };
        match super::forward::posterior_view(x0, &loaded.unet, schedule, t, seed, curve, &self.device.device) {
            Ok(view) => self.send(Event::Posterior(Arc::new(view))),
            Err(e) => self.send(Event::ForwardFailed { message: format!("posterior: {e}") }),
        }
    }

    /// Moves every model to the device `choice` opens (and warms them up there, on a GPU); if it cannot
    /// be opened, everything stays where it is.
    fn set_device(&mut self, choice: DeviceChoice) {
        let opened = match open_device(choice) {
            Ok(opened) => opened,
            Err(e) => {
                self.send(Event::DeviceFailed { message: e.to_string() });
                return;
            }
        };
        for model in self.models.values_mut() {
            model.move_to(&opened.device);
        }
        self.device = opened;
        // The judge is loaded again on the new device when next needed.
        self.judge = None;
        if self.device.is_gpu {
            for (name, model) in &self.models {
                self.send(Event::Preparing { id: name.clone() });
                model.warm_up(&self.device.device);
            }
        }
        self.send(Event::Ready { device: self.device.description.clone(), is_gpu: self.device.is_gpu });
    }

    fn train(&mut self, command: TrainCommand) {
        let outbox = &self.outbox;
        let send = |event: TrainEvent| outbox.send(Event::Train(event));
        let published = self.trainer.handle(command, &self.device.device, &send);
        self.publish(published);
    }
}

/// "`what` failed with an internal error: `message`", the failure a panic becomes.
pub(super) fn internal_error(what: &str, message: String) -> String {
    format!("{what} failed with an internal error: {message}")
}

/// The event that reports a panic while handling `command`, given the panic's message.
fn panic_event(command: &Command) -> Box<dyn FnOnce(String) -> Event> {
    match command {
        Command::Generate { job, .. } | Command::Decode { job, .. } | Command::InjectPanic { job } => {
            let job = *job;
            Box::new(move |m| Event::Failed { job, message: internal_error("the run", m) })
        }
        Command::LoadModel { id, .. } => {
            let id = id.clone();
            Box::new(move |m| Event::ModelFailed { id, message: internal_error("loading the model", m) })
        }
        Command::LoadForwardImage { .. } | Command::Forward { .. } | Command::Posterior { .. } => {
            Box::new(move |m| Event::ForwardFailed { message: internal_error("the forward process", m) })
        }
        Command::Train(_) => {
            Box::new(move |m| Event::Train(TrainEvent::Failed { message: internal_error("training", m) }))
        }
        Command::Lab2d(_) => Box::new(move |m| {
            let message = internal_error("the 2-D lab", m);
            Event::Lab2d(Lab2dEvent::Failed { message, training_stopped: false })
        }),
        Command::Attention { key, .. } => {
            let key = *key;
            Box::new(move |m| Event::Attention { key, attention: Err(internal_error("reading attention", m)) })
        }
        Command::Decided { job, .. } => {
            let job = *job;
            Box::new(move |m| Event::Decided {
                job,
                rows: Err(CommandFailure::Failed(internal_error("continuing the run", m))),
            })
        }
        Command::SetDevice(_) | Command::Shutdown => {
            Box::new(move |m| Event::DeviceFailed { message: internal_error("switching the device", m) })
        }
    }
}

/// The text of a panic's payload (`panic!` with a literal or a formatted message).
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_fails_the_command_it_happened_in() {
        let payload = catch_unwind(|| panic!("boom {}", 7)).err().map(|p| panic_message(p.as_ref()));
        assert_eq!(payload.as_deref(), Some("boom 7"));
        let literal = catch_unwind(|| std::panic::panic_any("plain")).err().map(|p| panic_message(p.as_ref()));
        assert_eq!(literal.as_deref(), Some("plain"));

        let event = panic_event(&Command::InjectPanic { job: 4 })("boom".into());
        let expected = "the run failed with an internal error: boom";
        assert!(matches!(&event, Event::Failed { job: 4, message } if message == expected), "{event:?}");
        let event =
            panic_event(&Command::Forward { schedule: crate::diffusion::BetaSchedule::linear(10), t: 1, seed: 0 })(
                "boom".into(),
            );
        assert!(matches!(event, Event::ForwardFailed { .. }), "{event:?}");
    }
}
