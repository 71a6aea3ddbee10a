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

use burn::module::Module;

use super::device::{ComputeDevice, DeviceChoice, open_device};
use super::generate::{Frame, GenerateRequest, RunHooks, RunSummary, decode_frame, run_generate};
use super::train::{Publish, TrainCommand, TrainEvent, TrainerState};
use crate::model::checkpoint::Checkpoint;
use crate::model::{LoadedAutoencoder, LoadedUnet};

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
        model: Option<String>,
    },
    /// x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε of the loaded x_0, with ε drawn from `seed`.
    Forward {
        schedule: crate::diffusion::BetaSchedule,
        t: usize,
        seed: u64,
    },
    /// Load a UNet under `name`; a latent UNet comes with the autoencoder that decodes its latents.
    LoadModel {
        name: String,
        source: ModelSource,
        autoencoder: Option<ModelSource>,
    },
    /// Decode frame `index` of run `job` (a latent model's) next, before the rest of that run's frames.
    Decode {
        job: u64,
        index: usize,
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
    Shutdown,
}

/// What the model behind a name looks like, for the UI.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub name: String,
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
        name: String,
    },
    ModelLoaded(ModelInfo),
    ModelFailed {
        name: String,
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
    /// A latent frame that the run left undecoded, decoded after the run (or on request).
    Decoded {
        job: u64,
        index: usize,
        decoded: super::generate::Decoded,
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
    /// A forward-process command that could not be done (bad file, no data set, bad schedule).
    ForwardFailed {
        message: String,
    },
    Train(TrainEvent),
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

    pub fn load_forward_image(&self, source: ForwardSource, size: usize, channels: usize, model: Option<String>) {
        let _ = self.commands.send(Command::LoadForwardImage { source, size, channels, model });
    }

    pub fn forward(&self, schedule: crate::diffusion::BetaSchedule, t: usize, seed: u64) {
        let _ = self.commands.send(Command::Forward { schedule, t, seed });
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
    pub fn decode(&self, job: u64, index: usize) {
        let _ = self.commands.send(Command::Decode { job, index });
    }

    pub fn set_device(&self, choice: DeviceChoice) {
        let _ = self.commands.send(Command::SetDevice(choice));
    }

    pub fn load_model(&self, name: &str, source: ModelSource, autoencoder: Option<ModelSource>) {
        let _ = self.commands.send(Command::LoadModel { name: name.to_owned(), source, autoencoder });
    }

    pub fn train(&self, command: TrainCommand) {
        let _ = self.commands.send(Command::Train(command));
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
    let mut device = open_device(choice).unwrap_or_else(|_| ComputeDevice::cpu());
    send(Event::Ready { device: device.description.clone(), is_gpu: device.is_gpu });
    let mut models: BTreeMap<String, (LoadedUnet, Option<LoadedAutoencoder>)> = BTreeMap::new();
    let mut forward_x0: Option<ForwardX0> = None;
    let mut test_set: Option<(std::path::PathBuf, crate::data::Dataset)> = None;
    let mut backlog: Option<DecodeBacklog> = None;

    let mut trainer = TrainerState::default();
    let train_send = |event: TrainEvent| send(Event::Train(event));
    let publish = |published: Option<Publish>,
                   models: &mut BTreeMap<String, (LoadedUnet, Option<LoadedAutoencoder>)>| {
        if let Some((name, unet, ae)) = published {
            send(Event::ModelLoaded(model_info(&name, &unet)));
            models.insert(name, (unet, ae));
        }
    };

    loop {
        // Between commands, decode the last run's undecoded latent frames one at a time, then train one
        // step at a time, so that a new command waits for at most one decode or one training step.
        let command = match backlog.as_mut().and_then(|b| b.pending.last().copied().map(|index| (b, index))) {
            None if trainer.is_training() => match commands.try_recv() {
                Ok(command) => command,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        trainer.step(&device.device, &train_send)
                    }));
                    match stepped {
                        Ok(published) => publish(published, &mut models),
                        Err(payload) => {
                            trainer.session = None;
                            train_send(TrainEvent::Failed {
                                message: format!(
                                    "training failed with an internal error: {}",
                                    panic_message(payload.as_ref())
                                ),
                            });
                        }
                    }
                    continue;
                }
            },
            None => match commands.recv() {
                Ok(command) => command,
                Err(_) => break,
            },
            Some((b, index)) => match commands.try_recv() {
                Ok(command) => command,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    b.pending.pop();
                    if let (Some(frame), Some((_, Some(ae)))) =
                        (b.frames.iter().find(|f| f.index == index), models.get(&b.model))
                    {
                        match decode_frame(ae, frame, &device.device) {
                            Ok(decoded) => send(Event::Decoded { job: b.job, index, decoded }),
                            Err(e) => {
                                send(Event::Failed { job: b.job, message: format!("decoding step {index}: {e}") });
                                backlog = None;
                            }
                        }
                    }
                    continue;
                }
            },
        };
        if matches!(command, Command::Shutdown) {
            // Closing the window mid-run keeps every step done: the run resumes from here.
            trainer.save_on_exit();
            break;
        }
        // A panic inside a job (a bug, or a model that burn cannot run) fails that job with a message; the
        // worker keeps serving the next command instead of dying silently.
        let on_panic = panic_event(&command);
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match command {
                Command::Shutdown => {}
                Command::SetDevice(choice) => match open_device(choice) {
                    Ok(opened) => {
                        for (unet, autoencoder) in models.values_mut() {
                            unet.model = unet.model.clone().to_device(&opened.device);
                            if let Some(ae) = autoencoder {
                                ae.model = ae.model.clone().to_device(&opened.device);
                            }
                        }
                        device = opened;
                        if device.is_gpu {
                            for (name, (unet, autoencoder)) in &models {
                                send(Event::Preparing { name: name.clone() });
                                warm_up(unet, autoencoder.as_ref(), &device.device);
                            }
                        }
                        send(Event::Ready { device: device.description.clone(), is_gpu: device.is_gpu });
                    }
                    Err(e) => send(Event::DeviceFailed { message: e.to_string() }),
                },
                Command::LoadForwardImage { source, size, channels, model } => {
                    let latent =
                        model.filter(|m| models.get(m).is_some_and(|(unet, ae)| unet.is_latent() && ae.is_some()));
                    let autoencoder = latent.as_ref().and_then(|m| models.get(m)).and_then(|(_, ae)| ae.as_ref());
                    let (size, channels) =
                        autoencoder.map_or((size, channels), |ae| (ae.config.image_size, ae.config.image_channels));
                    let loaded = forward_image(&source, size, channels, &mut test_set).and_then(|(x0, label)| {
                        let shape = [1, channels, size, size];
                        let values = match autoencoder {
                            Some(ae) => encode_scaled(ae, &x0, shape, &device.device)?,
                            None => (x0.clone(), shape),
                        };
                        Ok((x0, shape, label, values))
                    });
                    match loaded {
                        Ok((x0, shape, label, (values, value_shape))) => {
                            send(Event::ForwardImage { x0: Arc::new(x0), shape, label });
                            forward_x0 = Some(ForwardX0 { values, shape: value_shape, latent_model: latent });
                        }
                        Err(message) => send(Event::ForwardFailed { message }),
                    }
                }
                Command::Forward { schedule, t, seed } => {
                    let Some(x0) = &forward_x0 else {
                        send(Event::ForwardFailed { message: "no image loaded for the forward process".into() });
                        return;
                    };
                    let autoencoder =
                        x0.latent_model.as_ref().and_then(|m| models.get(m)).and_then(|(_, ae)| ae.as_ref());
                    let noised = forward_step(&x0.values, x0.shape, schedule, t, seed, &device.device).and_then(
                        |(x_t, noise)| match autoencoder {
                            Some(ae) => {
                                let (x_t, shape) = decode_scaled_values(ae, x_t, x0.shape, &device.device)?;
                                let (noise, _) = decode_scaled_values(ae, noise, x0.shape, &device.device)?;
                                Ok((x_t, noise, shape))
                            }
                            None => Ok((x_t, noise, x0.shape)),
                        },
                    );
                    match noised {
                        Ok((x_t, noise, shape)) => {
                            send(Event::ForwardFrame { t, x_t: Arc::new(x_t), noise: Arc::new(noise), shape })
                        }
                        Err(message) => send(Event::ForwardFailed { message }),
                    }
                }
                Command::LoadModel { name, source, autoencoder } => {
                    let loaded = checkpoint_of(&source)
                        .and_then(|checkpoint| LoadedUnet::from_checkpoint(&checkpoint, &device.device))
                        .and_then(|unet| {
                            // A latent checkpoint names the autoencoder it was trained with; use that file when
                            // no autoencoder was given.
                            let recorded = unet
                                .header
                                .extra
                                .get("autoencoder")
                                .and_then(|a| a.as_str())
                                .map(|path| ModelSource::File(path.into()));
                            let source = autoencoder.clone().or(recorded.filter(|_| unet.is_latent()));
                            let ae = match &source {
                                Some(source) => {
                                    Some(LoadedAutoencoder::from_checkpoint(&checkpoint_of(source)?, &device.device)?)
                                }
                                None => None,
                            };
                            Ok((unet, ae))
                        });
                    match loaded {
                        Ok((unet, None)) if unet.is_latent() => {
                            send(Event::ModelFailed { name, message: "a latent model needs its autoencoder".into() })
                        }
                        Ok((unet, ae)) => {
                            if device.is_gpu {
                                send(Event::Preparing { name: name.clone() });
                                warm_up(&unet, ae.as_ref(), &device.device);
                            }
                            send(Event::ModelLoaded(model_info(&name, &unet)));
                            models.insert(name, (unet, ae));
                        }
                        Err(e) => send(Event::ModelFailed { name, message: e.to_string() }),
                    }
                }
                Command::InjectPanic { job } => panic!("injected panic in job {job}"),
                Command::Train(command) => {
                    let published = trainer.handle(command, &device.device, &train_send);
                    publish(published, &mut models);
                }
                Command::Decode { job, index } => {
                    if let Some(b) = backlog.as_mut().filter(|b| b.job == job) {
                        // Move it to the end of the stack: decoded next.
                        if let Some(position) = b.pending.iter().position(|i| *i == index) {
                            b.pending.remove(position);
                            b.pending.push(index);
                        }
                    }
                }
                Command::Generate { job, request, stream } => {
                    backlog = None;
                    if current_job.load(Ordering::SeqCst) != job {
                        // Cancelled or superseded before it started: say so, so that nobody waits for it.
                        send(Event::Done { job, summary: RunSummary { steps_done: 0, cancelled: true, seconds: 0.0 } });
                        return;
                    }
                    let Some((model, autoencoder)) = models.get(&request.model) else {
                        send(Event::Failed { job, message: format!("model `{}` is not loaded", request.model) });
                        return;
                    };
                    let total_steps =
                        request.schedule.build().ok().and_then(|s| request.plan(&s).ok()).map_or(0, |(p, _)| p.len());
                    let keep_going = || current_job.load(Ordering::SeqCst) == job;
                    let mut recorded = DecodeBacklog {
                        job,
                        model: request.model.clone(),
                        frames: Vec::new(),
                        stride: 1,
                        first: None,
                        pending: Vec::new(),
                    };
                    let mut emit = |frame: Frame| {
                        if model.is_latent() {
                            if frame.decoded.is_none() {
                                recorded.pending.push(frame.index);
                            }
                            // The values are shared with the event, not copied.
                            let bytes = super::generate::frame_budget_bytes(&frame, recorded.first.as_ref());
                            if frame.index == 0 {
                                recorded.first = Some(frame.clone());
                            }
                            let undecoded = Frame { decoded: None, ..frame.clone() };
                            super::generate::push_within_budget(
                                &mut recorded.frames,
                                undecoded,
                                &mut recorded.stride,
                                super::generate::TRAJECTORY_BUDGET_BYTES,
                                bytes,
                            );
                        }
                        send(Event::Frame { job, frame, total_steps });
                    };
                    let hooks = RunHooks { keep_going: &keep_going, stream, emit: &mut emit };
                    match run_generate(model, autoencoder.as_ref(), &request, &device.device, hooks) {
                        Ok(summary) => send(Event::Done { job, summary }),
                        Err(e) => send(Event::Failed { job, message: e.to_string() }),
                    }
                    // Frames are decoded from the last popped: the newest first, where the cursor usually is.
                    backlog = Some(recorded).filter(|b| !b.pending.is_empty());
                }
            }
        }));
        if let Err(payload) = handled {
            send(on_panic(panic_message(payload.as_ref())));
        }
    }
}

/// The event that reports a panic while handling `command`, given the panic's message.
fn panic_event(command: &Command) -> Box<dyn FnOnce(String) -> Event> {
    let internal = |what: &str, message: String| format!("{what} failed with an internal error: {message}");
    match command {
        Command::Generate { job, .. } | Command::Decode { job, .. } | Command::InjectPanic { job } => {
            let job = *job;
            Box::new(move |m| Event::Failed { job, message: internal("the run", m) })
        }
        Command::LoadModel { name, .. } => {
            let name = name.clone();
            Box::new(move |m| Event::ModelFailed { name, message: internal("loading the model", m) })
        }
        Command::LoadForwardImage { .. } | Command::Forward { .. } => {
            Box::new(move |m| Event::ForwardFailed { message: internal("the forward process", m) })
        }
        Command::Train(_) => Box::new(move |m| Event::Train(TrainEvent::Failed { message: internal("training", m) })),
        Command::SetDevice(_) | Command::Shutdown => {
            Box::new(move |m| Event::DeviceFailed { message: internal("switching the device", m) })
        }
    }
}

fn model_info(name: &str, unet: &LoadedUnet) -> ModelInfo {
    ModelInfo {
        name: name.to_owned(),
        header: unet.header.clone(),
        config: unet.config.clone(),
        parameters: unet.model.parameter_count(),
        is_latent: unet.is_latent(),
    }
}

/// The text of a panic's payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The batch a Generate click usually runs (the window's default), guided: burn's GPU backend compiles and
/// autotunes its kernels per shape at their first use, which would otherwise stall the first run.
const WARM_UP_BATCH: usize = 16;

/// Runs a short guided run (and a decode, for a latent model) so that the first Generate on a GPU does not
/// pay for shader compilation and autotuning. A failure here is not reported: the real run will report it.
fn warm_up(unet: &LoadedUnet, autoencoder: Option<&LoadedAutoencoder>, device: &burn::prelude::Device) {
    let request = GenerateRequest {
        model: String::new(),
        schedule: unet.header.training_schedule.unwrap_or_default(),
        sampler: crate::diffusion::Sampler::ddim(2, 0.0),
        seed: 0,
        batch: WARM_UP_BATCH,
        class: Some(0),
        guidance: crate::model::denoise::DEFAULT_GUIDANCE,
        init: None,
        interpolate: None,
    };
    let keep_going = || true;
    let mut emit = |_frame: Frame| {};
    let hooks = RunHooks { keep_going: &keep_going, stream: true, emit: &mut emit };
    let _ = run_generate(unet, autoencoder, &request, device, hooks);
}

/// The forward process's clean x_0: pixels, or for a latent model the scaled latent E(x_0) of `latent_model`.
struct ForwardX0 {
    values: Vec<f32>,
    shape: [usize; 4],
    latent_model: Option<String>,
}

/// E(x) · scale: an image to the latent a latent model diffuses.
fn encode_scaled(
    ae: &LoadedAutoencoder,
    x: &[f32],
    shape: [usize; 4],
    device: &burn::prelude::Device,
) -> Result<(Vec<f32>, [usize; 4]), String> {
    use burn::prelude::*;
    let z = ae.encode_scaled(Tensor::<4>::from_data(TensorData::new(x.to_vec(), shape), device));
    let z_shape = z.dims();
    crate::model::read_f32(z).map(|values| (values, z_shape)).map_err(|e| e.to_string())
}

/// D(z / scale): a latent back to pixels.
fn decode_scaled_values(
    ae: &LoadedAutoencoder,
    z: Vec<f32>,
    shape: [usize; 4],
    device: &burn::prelude::Device,
) -> Result<(Vec<f32>, [usize; 4]), String> {
    use burn::prelude::*;
    let pixels = ae.decode_scaled(Tensor::<4>::from_data(TensorData::new(z, shape), device));
    let pixel_shape = pixels.dims();
    crate::model::read_f32(pixels).map(|values| (values, pixel_shape)).map_err(|e| e.to_string())
}

/// The latent frames of the last run that were handed out without pixels, to decode while idle.
struct DecodeBacklog {
    job: u64,
    model: String,
    /// The frames of the run within the memory budget, thinned as the window thins them (values shared
    /// with the window's copies).
    frames: Vec<Frame>,
    stride: usize,
    /// x_T's frame as it came, decoded: its pixels size every frame's share of the budget.
    first: Option<Frame>,
    /// Indices still to decode; the last is decoded first.
    pending: Vec<usize>,
}

fn checkpoint_of(source: &ModelSource) -> Result<Checkpoint, crate::model::checkpoint::CheckpointError> {
    match source {
        ModelSource::Embedded(bytes) => Checkpoint::from_bytes(bytes),
        ModelSource::File(path) => Checkpoint::read(path),
    }
}

/// x_0 for the forward process, and a label saying what it is.
fn forward_image(
    source: &ForwardSource,
    size: usize,
    channels: usize,
    test_set: &mut Option<(std::path::PathBuf, crate::data::Dataset)>,
) -> Result<(Vec<f32>, String), String> {
    use crate::data::{Dataset, FASHION_MNIST_CLASSES, Split, folder::load_image};
    match source {
        ForwardSource::Pixels { values, label } if values.len() == channels * size * size => {
            Ok((values.clone(), label.clone()))
        }
        ForwardSource::Pixels { values, .. } => {
            Err(format!("{} values are not a {channels}x{size}x{size} picture", values.len()))
        }
        ForwardSource::File(path) => {
            let x0 = load_image(path, size, size, channels).map_err(|e| e.to_string())?;
            Ok((x0, path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())))
        }
        ForwardSource::TestImage { dir, index } => {
            if test_set.as_ref().is_none_or(|(loaded, _)| loaded != dir) {
                let data = Dataset::fashion_mnist(dir, Split::Test).map_err(|e| e.to_string())?;
                *test_set = Some((dir.clone(), data));
            }
            let data = &test_set.as_ref().ok_or("no test set")?.1;
            if data.channels != channels || data.height != size || data.width != size {
                return Err(format!(
                    "the model works on {channels}x{size}x{size} images, Fashion-MNIST is {}x{}x{}: open an image file instead",
                    data.channels, data.height, data.width
                ));
            }
            let index = (*index).min(data.count.saturating_sub(1));
            let label = data.label(index).and_then(|l| FASHION_MNIST_CLASSES.get(l)).copied().unwrap_or("unlabelled");
            Ok((data.image(index).to_vec(), format!("test image {index} ({label})")))
        }
    }
}

fn forward_step(
    x0: &[f32],
    shape: [usize; 4],
    schedule: crate::diffusion::BetaSchedule,
    t: usize,
    seed: u64,
    device: &burn::prelude::Device,
) -> Result<(Vec<f32>, Vec<f32>), String> {
    use burn::prelude::*;
    let schedule = schedule.build().map_err(|e| format!("invalid schedule: {e}"))?;
    let t = t.clamp(1, schedule.steps());
    let x0 = Tensor::<4>::from_data(TensorData::new(x0.to_vec(), shape), device);
    let noise = crate::diffusion::NoiseSource::new(seed).values(shape.iter().product());
    let eps = Tensor::<4>::from_data(TensorData::new(noise.clone(), shape), device);
    let x_t = crate::diffusion::q_sample(&schedule, x0, t, eps);
    Ok((super::generate::values_from_tensor(&x_t).map_err(|e| e.to_string())?, noise))
}
