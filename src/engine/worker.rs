//! The engine's background thread. Commands go in, events come out; the UI never waits on it.
//!
//! Cancellation: every Generate gets a fresh job id, stored in `current_job`. The running loop checks it
//! before each step, so a newer Generate or a Cancel stops the old run within one step, and the UI drops
//! any event whose job is not the current one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use super::device::{ComputeDevice, DeviceChoice, open_device};
use super::generate::{Frame, GenerateRequest, RunHooks, RunSummary, run_generate};
use crate::model::LoadedUnet;
use crate::model::checkpoint::Checkpoint;

/// Where a model comes from.
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// Checkpoint bytes compiled into the binary.
    Embedded(&'static [u8]),
    /// A checkpoint file the user chose.
    File(std::path::PathBuf),
}

pub enum Command {
    Generate { job: u64, request: GenerateRequest, stream: bool },
    LoadModel { name: String, source: ModelSource },
    Shutdown,
}

/// What the model behind a name looks like, for the UI.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub name: String,
    pub header: crate::model::checkpoint::CheckpointHeader,
    pub config: crate::model::UNetConfig,
    pub parameters: usize,
}

#[derive(Clone, Debug)]
pub enum Event {
    /// The device is open; `description` belongs in the status bar.
    Ready { device: String, is_gpu: bool },
    ModelLoaded(ModelInfo),
    ModelFailed { name: String, message: String },
    Frame { job: u64, frame: Frame, total_steps: usize },
    Done { job: u64, summary: RunSummary },
    Failed { job: u64, message: String },
}

/// The UI's handle on the engine thread.
pub struct Engine {
    commands: Sender<Command>,
    events: Receiver<Event>,
    current_job: Arc<AtomicU64>,
    next_job: u64,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the thread; `notify` is called after every event (the app passes `ctx.request_repaint`).
    pub fn spawn(device: DeviceChoice, notify: impl Fn() + Send + 'static) -> Self {
        let (commands, command_rx) = channel();
        let (event_tx, events) = channel();
        let current_job = Arc::new(AtomicU64::new(0));
        let job = current_job.clone();
        let thread = std::thread::Builder::new()
            .name("diffusion-engine".into())
            .spawn(move || worker(device, command_rx, event_tx, job, Box::new(notify)))
            .ok();
        Self { commands, events, current_job, next_job: 1, thread }
    }

    /// Starts a run; any run in progress is cancelled. Returns the new job id.
    pub fn generate(&mut self, request: GenerateRequest, stream: bool) -> u64 {
        let job = self.next_job;
        self.next_job += 1;
        self.current_job.store(job, Ordering::SeqCst);
        let _ = self.commands.send(Command::Generate { job, request, stream });
        job
    }

    pub fn cancel(&self) {
        self.current_job.store(0, Ordering::SeqCst);
    }

    pub fn load_model(&self, name: &str, source: ModelSource) {
        let _ = self.commands.send(Command::LoadModel { name: name.to_owned(), source });
    }

    /// Every event that has arrived, without waiting.
    pub fn poll(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }

    /// Waits for the next event (tests and headless use).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }

    pub fn is_current(&self, job: u64) -> bool {
        self.current_job.load(Ordering::SeqCst) == job
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.cancel();
        let _ = self.commands.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn worker(
    choice: DeviceChoice,
    commands: Receiver<Command>,
    events: Sender<Event>,
    current_job: Arc<AtomicU64>,
    notify: Box<dyn Fn() + Send>,
) {
    let send = |event: Event| {
        let _ = events.send(event);
        notify();
    };
    let device = open_device(choice).unwrap_or_else(|_| ComputeDevice::cpu());
    send(Event::Ready { device: device.description.clone(), is_gpu: device.is_gpu });
    let mut models: BTreeMap<String, LoadedUnet> = BTreeMap::new();

    while let Ok(command) = commands.recv() {
        match command {
            Command::Shutdown => break,
            Command::LoadModel { name, source } => {
                let loaded = match &source {
                    ModelSource::Embedded(bytes) => Checkpoint::from_bytes(bytes),
                    ModelSource::File(path) => Checkpoint::read(path),
                }
                .and_then(|checkpoint| LoadedUnet::from_checkpoint(&checkpoint, &device.device));
                match loaded {
                    Ok(model) => {
                        send(Event::ModelLoaded(ModelInfo {
                            name: name.clone(),
                            header: model.header.clone(),
                            config: model.config.clone(),
                            parameters: model.model.parameter_count(),
                        }));
                        models.insert(name, model);
                    }
                    Err(e) => send(Event::ModelFailed { name, message: e.to_string() }),
                }
            }
            Command::Generate { job, request, stream } => {
                if current_job.load(Ordering::SeqCst) != job {
                    // Cancelled or superseded before it started: say so, so that nobody waits for it.
                    send(Event::Done { job, summary: RunSummary { steps_done: 0, cancelled: true, seconds: 0.0 } });
                    continue;
                }
                let Some(model) = models.get(&request.model) else {
                    send(Event::Failed { job, message: format!("model `{}` is not loaded", request.model) });
                    continue;
                };
                let total_steps = request
                    .schedule
                    .build()
                    .ok()
                    .and_then(|s| request.sampler.plan(&s).ok())
                    .map_or(0, |p| p.len());
                let keep_going = || current_job.load(Ordering::SeqCst) == job;
                let mut emit = |frame: Frame| send(Event::Frame { job, frame, total_steps });
                let hooks = RunHooks { keep_going: &keep_going, stream, emit: &mut emit };
                match run_generate(model, &request, &device.device, hooks) {
                    Ok(summary) => send(Event::Done { job, summary }),
                    Err(e) => send(Event::Failed { job, message: e.to_string() }),
                }
            }
        }
    }
}
