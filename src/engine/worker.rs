//! The UI's handle on the engine's background thread, and what goes in (commands) and comes out (events).
//! The UI never waits on the thread; [`super::thread::Worker`] says how the thread serves them.
//!
//! Cancellation: every Generate gets a fresh job id, stored in `current_job`. The running loop checks it
//! before each step, so a newer Generate or a Cancel stops the old run within one step, and the UI drops
//! any event whose job is not the current one.

use crate::model::ModelId;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use super::device::DeviceChoice;
use super::thread::Worker;
use super::train::{TrainCommand, TrainEvent};
use crate::run::generate::{Frame, GenerateRequest, RunSummary};

/// Where a model comes from.
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// Checkpoint bytes compiled into the binary.
    Embedded(&'static [u8]),
    /// A checkpoint file the user chose.
    File(std::path::PathBuf),
}

/// Where the forward-process panel's clean image x_0 comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ForwardSource {
    /// Image `index` of the Fashion-MNIST test split in `dir` (the Debian package's folder by default).
    TestImage { dir: std::path::PathBuf, index: usize },
    /// An image file of the user's, converted to the model's size and channels.
    File(std::path::PathBuf),
    /// Pixels in [-1, 1] the window already has (a frame of the last run), at the model's size.
    Pixels { values: Vec<f32>, label: String },
}

pub enum Command {
    Generate {
        job: u64,
        request: GenerateRequest,
        stream: bool,
    },
    /// Load x_0 for the forward process, as `channels` x `size` x `size`.
    /// For a latent model (`model`), x_0 is the image at its autoencoder's size, encoded: the forward
    /// process then noises the latent z_0 and each x_t comes back decoded, D(z_t).
    LoadForwardImage {
        source: ForwardSource,
        size: usize,
        channels: usize,
        model: Option<ModelId>,
    },
    /// x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε of the loaded x_0, with ε drawn from `seed`.
    Forward {
        schedule: crate::diffusion::BetaSchedule,
        t: usize,
        seed: u64,
    },
    /// The posterior q(x_{t-1} | x_t, x_0) of the loaded x_0 at `t` beside model `model`'s step, and (with
    /// `curve`) the bound's L_{t-1} across the noise scale.
    Posterior {
        model: ModelId,
        schedule: crate::diffusion::BetaSchedule,
        t: usize,
        seed: u64,
        curve: bool,
    },
    /// Load a UNet under `name`; a latent UNet comes with the autoencoder that decodes its latents.
    LoadModel {
        id: ModelId,
        source: ModelSource,
        autoencoder: Option<ModelSource>,
    },
    /// Decode frame `index` of run `job` (a latent model's) next, before the rest of that run's frames.
    Decode {
        job: u64,
        index: usize,
    },
    /// Cross-attention weights of a run's steps (the conditional branch re-run on recorded inputs), for
    /// the viewer whose run is `key`.
    Attention {
        key: u64,
        request: GenerateRequest,
        inputs: Vec<crate::run::explain::AttentionInput>,
    },
    /// When is it decided: the first image of `request`'s run continued from `points` of its steps,
    /// `continuations` times each with fresh noise (a stochastic sampler: the request's, or its sibling).
    /// The run up to each step is the request's own; the continuations ask for `branch_class` (`None`: the
    /// request's class). Every end is judged by the embedded Fashion-MNIST classifier where it reads the
    /// model's pictures (10 classes, 28x28).
    Decided {
        job: u64,
        request: GenerateRequest,
        continuations: usize,
        points: usize,
        branch_class: Option<usize>,
    },
    /// Move the engine (and its models) to another device.
    SetDevice(DeviceChoice),
    /// Panics inside the worker as job `job`: lets tests prove that a panicking job fails with a message
    /// and the worker keeps serving.
    #[doc(hidden)]
    InjectPanic {
        job: u64,
    },
    /// The Train view's commands (see [`super::train`]).
    Train(TrainCommand),
    /// The 2-D lab's commands (see [`super::lab2d`]).
    Lab2d(super::lab2d::Lab2dCommand),
    Shutdown,
}

/// What the model behind a name looks like, for the UI.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub id: ModelId,
    pub header: crate::model::checkpoint::CheckpointHeader,
    pub config: crate::model::UNetConfig,
    pub parameters: usize,
    /// Whether it works in an autoencoder's latent space (the views then show decoded images).
    pub is_latent: bool,
}

#[derive(Clone, Debug)]
pub enum Event {
    /// The device is open; `description` belongs in the status bar.
    Ready {
        device: String,
        is_gpu: bool,
    },
    /// The device asked for could not be opened; the engine stays where it was.
    DeviceFailed {
        message: String,
    },
    /// A model is being prepared on the GPU (kernels compiled and tuned before the first Generate).
    Preparing {
        id: ModelId,
    },
    ModelLoaded(Box<ModelInfo>),
    ModelFailed {
        id: ModelId,
        message: String,
    },
    Frame {
        job: u64,
        frame: Frame,
        total_steps: usize,
    },
    Done {
        job: u64,
        summary: RunSummary,
    },
    Failed {
        job: u64,
        message: String,
    },
    /// The answer to [`Command::Attention`] for run `key`.
    Attention {
        key: u64,
        attention: Result<Arc<Vec<crate::run::explain::StepAttention>>, String>,
    },
    /// The answer to [`Command::Decided`]: a row per step continued from, its ends judged, and the judged
    /// class of the run's own end.
    Decided {
        job: u64,
        rows: Result<Arc<crate::eval::decided::DecidedRows>, CommandFailure>,
    },
    /// A latent frame that the run left undecoded, decoded after the run (or on request).
    Decoded {
        job: u64,
        index: usize,
        decoded: crate::run::generate::Decoded,
    },
    ForwardImage {
        x0: Arc<Vec<f32>>,
        shape: [usize; 4],
        label: String,
    },
    /// x_t, and the ε it was noised with: pure noise, what sampling starts from (both decoded for a latent
    /// model).
    ForwardFrame {
        t: usize,
        x_t: Arc<Vec<f32>>,
        noise: Arc<Vec<f32>>,
        shape: [usize; 4],
    },
    /// The answer to [`Command::Posterior`].
    Posterior(Arc<super::PosteriorView>),
    /// A forward-process command that could not be done (bad file, no data set, bad schedule).
    ForwardFailed {
        message: String,
    },
    Train(TrainEvent),
    Lab2d(super::lab2d::Lab2dEvent),
}

/// The UI's handle on the engine thread.
pub struct Engine {
    commands: Sender<Command>,
    events: Receiver<Event>,
    current_job: Arc<AtomicU64>,
    next_job: u64,
    /// Set with Pause and Stop training, for the worker to end a long quality reading early (engine/train.rs).
    train_stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the thread; `notify` is called after every event (the app passes `ctx.request_repaint`).
    pub fn spawn(device: DeviceChoice, notify: impl Fn() + Send + 'static) -> Self {
        let (commands, command_rx) = channel();
        let (event_tx, events) = channel();
        let current_job = Arc::new(AtomicU64::new(0));
        let job = current_job.clone();
        let train_stop = Arc::new(AtomicBool::new(false));
        let stop = train_stop.clone();
        let thread = std::thread::Builder::new()
            .name("diffusion-engine".into())
            .spawn(move || Worker::start(device, event_tx, job, stop, Box::new(notify)).run(command_rx))
            .ok();
        Self { commands, events, current_job, next_job: 1, train_stop, thread }
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

    pub fn load_forward_image(&self, source: ForwardSource, size: usize, channels: usize, model: Option<ModelId>) {
        let _ = self.commands.send(Command::LoadForwardImage { source, size, channels, model });
    }

    pub fn forward(&self, schedule: crate::diffusion::BetaSchedule, t: usize, seed: u64) {
        let _ = self.commands.send(Command::Forward { schedule, t, seed });
    }

    /// Asks for the posterior view of the forward panel's x_0 at `t` ([`Event::Posterior`] answers).
    pub fn posterior(
        &self,
        model: ModelId,
        schedule: crate::diffusion::BetaSchedule,
        t: usize,
        seed: u64,
        curve: bool,
    ) {
        let _ = self.commands.send(Command::Posterior { model, schedule, t, seed, curve });
    }

    /// Sends a job that panics in the worker (for tests); returns its job id.
    #[doc(hidden)]
    pub fn inject_panic(&mut self) -> u64 {
        let job = self.next_job;
        self.next_job += 1;
        self.current_job.store(job, Ordering::SeqCst);
        let _ = self.commands.send(Command::InjectPanic { job });
        job
    }

    /// Asks for frame `index` of `job` to be decoded before the other undecoded frames of that run.
    /// Asks for the cross-attention of run `key`'s steps at `inputs` ([`Event::Attention`] answers).
    pub fn attention(&self, key: u64, request: GenerateRequest, inputs: Vec<crate::run::explain::AttentionInput>) {
        let _ = self.commands.send(Command::Attention { key, request, inputs });
    }

    /// Starts [`Command::Decided`] (continuations asking for `branch_class`, `None`: the run's class); its
    /// rows come back as [`Event::Decided`] with the job returned.
    pub fn decided(
        &mut self,
        request: GenerateRequest,
        continuations: usize,
        points: usize,
        branch_class: Option<usize>,
    ) -> u64 {
        let job = self.next_job;
        self.next_job += 1;
        // Like a run: Cancel or the next job stops it.
        self.current_job.store(job, Ordering::SeqCst);
        let _ = self.commands.send(Command::Decided { job, request, continuations, points, branch_class });
        job
    }

    pub fn decode(&self, job: u64, index: usize) {
        let _ = self.commands.send(Command::Decode { job, index });
    }

    pub fn set_device(&self, choice: DeviceChoice) {
        let _ = self.commands.send(Command::SetDevice(choice));
    }

    pub fn load_model(&self, id: ModelId, source: ModelSource, autoencoder: Option<ModelSource>) {
        let _ = self.commands.send(Command::LoadModel { id, source, autoencoder });
    }

    pub fn train(&self, command: TrainCommand) {
        if matches!(command, TrainCommand::Pause | TrainCommand::Stop) {
            // Before the command: a quality reading running now ends early and the command is served.
            self.train_stop.store(true, Ordering::SeqCst);
        }
        let _ = self.commands.send(Command::Train(command));
    }

    /// A command for the 2-D lab ([`Event::Lab2d`] answers).
    pub fn lab2d(&self, command: super::lab2d::Lab2dCommand) {
        let _ = self.commands.send(Command::Lab2d(command));
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

/// Why a command ended without its answer, as a kind the window can act on (not text to recognise).
#[derive(Clone, Debug, PartialEq)]
pub enum CommandFailure {
    /// Stopped by Cancel or by a newer job.
    Cancelled,
    /// Failed; the message says why, for the status line.
    Failed(String),
}

impl std::fmt::Display for CommandFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandFailure::Cancelled => f.write_str("cancelled"),
            CommandFailure::Failed(message) => f.write_str(message),
        }
    }
}
