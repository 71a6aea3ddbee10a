//! A seeded monkey test: thousands of random actions on both pages of the window, as a user could do them
//! (clicks on whatever widget it finds by role and label, combo box items, sliders set, nudged and dragged,
//! text and numbers typed, keys, page switches, Generate and Cancel at random moments, the Compare modes,
//! the Forward process panel and its mask, exports, training started, paused, resumed and stopped on small
//! data), with checks after every [`CHECK_EVERY`] actions and at the end: nothing panicked on any thread
//! (the engine's own caught panics included), the engine still runs a Generate to its end, and, measured at
//! quiet points (nothing running, the panels' kept runs dropped), the live heap and egui's textures stay
//! flat. Throughout: no UI update takes over [`SLOW_STEP`], and at the end at least [`MIN_ACTIVE_SHARE`] of
//! the actions did something. A watchdog reports a window that stops making frames (a hang panics nowhere).
//!
//! The seed comes from `MONKEY_SEED` (else [`DEFAULT_SEED`]), the number of actions from `MONKEY_ACTIONS`
//! (else [`DEFAULT_ACTIONS`]); `MONKEY_DUMP=1` prints each action as it is done (2: also the widgets the
//! monkey sees). A failure prints the seed, the action's index, the actions before it and the replay:
//!
//! ```text
//! MONKEY_SEED=7 MONKEY_ACTIONS=1234 cargo test --release --test monkey -- --nocapture
//! ```
//!
//! The seed fixes every choice the monkey makes; the engine runs on its own thread, so which widgets exist
//! at a given action (Cancel enabled, a run's buttons, training's) can differ with timing, and a replay
//! follows the same script as far as the window looks the same.
//!
//! The test runs in a process of its own, in a fresh folder that is also its HOME and current directory:
//! the window's defaults land there, every path the monkey types is relative and holds no `.`, file
//! dialogs are off (exports go to a folder there), the engine runs on the CPU, and the monkey never picks
//! another device. It does not press Start / Resume training with settings that would take minutes per
//! step ([`costly_training`]); its training macro makes them cheap through their widgets first.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diffusion_lab::app::LabApp;
use diffusion_lab::app::compare::ComparePanel;
use diffusion_lab::app::forward_ui::ForwardPanel;
use diffusion_lab::app::generate_ui::GeneratePanel;
use diffusion_lab::app::lab2d::Lab2dPanel;
use diffusion_lab::app::state::{RunStatus, Settings};
use diffusion_lab::app::train_ui::{DataKind, SizePreset, TrainPanel, TrainSettings};
use diffusion_lab::diffusion::Sampler;
use diffusion_lab::engine::lab2d::Lab2dCommand;
use diffusion_lab::engine::{DeviceChoice, Engine, Measurement};
use eframe::egui::accesskit::Role;
use eframe::egui::{self, Key, Modifiers, Pos2, Rect};
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::{Harness, Node, TestRenderer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DEFAULT_SEED: u64 = 1;
/// About 70-90 s here (2 cores, `cargo test --release --test monkey`), about 150 s while another build or
/// test runs beside it.
const DEFAULT_ACTIONS: usize = 6000;
/// Checks run after every this many actions, and at the end.
const CHECK_EVERY: usize = 500;
/// Actions shown before a failure.
const SHOWN_ACTIONS: usize = 20;
const WINDOW: [f32; 2] = [1280.0, 860.0];
/// The share of actions that must do something (the rest found nothing to act on, or skipped: see
/// [`did_nothing`]); a monkey that sees no widgets, or only disabled ones, would pass every other check.
const MIN_ACTIVE_SHARE: f64 = 0.6;
/// The longest one UI update (one harness step: a frame of the window's code) may take. A frame is drawn in
/// milliseconds; seconds mean that the UI thread did the engine's work or waited for it.
const SLOW_STEP: Duration = Duration::from_secs(5);
/// How much the live heap may grow from the first quiet point to the last (see [`Monkey::quiet`]).
const LIVE_GROWTH_MIB: f64 = 64.0;
/// egui's allocated textures at a quiet point: at most this many, and at most [`TEXTURE_GROWTH`] more at the
/// last quiet point than at the first (the window's own textures there: the font atlas and a few icons).
const MAX_QUIET_TEXTURES: usize = 64;
const TEXTURE_GROWTH: usize = 8;
/// Threads the last quiet point may have beyond the first's (a device's driver may start one late).
const THREAD_GROWTH: usize = 2;
/// The batch parts' runners' thread names begin so (src/model/cpu/parts.rs).
const RUNNER_NAME: &str = "batch-part";
/// Memory each run's recorded frames may take (the window's default is 768 MiB): keeps what the window
/// legitimately holds small next to the memory bound (see [`MEMORY_GROWTH_MIB`]).
const TRAJECTORY_BUDGET: usize = 16 << 20;

// --- The test's only reach into the window's fields. (panels own their state; `ctx` is what they share) ---

/// File dialogs off (Save / Export then write into `exports`, Open / Choose say there is no dialog), and
/// a small budget for recorded frames.
fn sandbox(app: &mut LabApp, exports: &Path) {
    app.ctx.dialogs.available = false;
    app.ctx.dialogs.export_dir = exports.to_path_buf();
    app.ctx.trajectory_budget = TRAJECTORY_BUDGET;
}

/// How the last Generate ended: `None` while it runs, `Some(Err(..))` when it failed or was cancelled.
fn run_outcome(app: &LabApp) -> Option<Result<(), String>> {
    match &app.generate.run {
        RunStatus::Finished { cancelled: false, .. } => Some(Ok(())),
        RunStatus::Running { .. } => None,
        other => Some(Err(format!("{other:?}, status {:?}", app.ctx.status))),
    }
}

/// Pauses the 2-D lab's training (and its comparison of recipes) and drops what the panels keep of earlier
/// work (recorded runs, grids, images, sample grids, particles, with their textures) for fresh panels; the
/// settings stay.
fn drop_kept_work(app: &mut LabApp) {
    app.ctx.engine.lab2d(Lab2dCommand::SetTraining(false));
    app.ctx.engine.lab2d(Lab2dCommand::StopRecipes);
    for kind in [Measurement::SolverBench, Measurement::Likelihood, Measurement::Guidance] {
        app.ctx.engine.lab2d(Lab2dCommand::StopMeasurement(kind));
    }
    app.generate = GeneratePanel::new();
    app.compare = ComparePanel::new(&app.ctx.settings);
    app.forward = ForwardPanel::new();
    app.train = TrainPanel::new();
    app.lab2d = Lab2dPanel::default();
    app.ctx.status = None;
}

/// Why training with the Train view's settings would be too slow or large for this test, if it would.
/// The monkey does not press Start / Resume then (the window would train; it is the test's budget).
fn costly_training(app: &LabApp) -> Option<String> {
    let t = &app.ctx.settings.train;
    let folder = t.data == DataKind::ImageFolder && !t.latent;
    let (size, channels) = if folder { (t.image_size, t.image_channels) } else { (28, 1) };
    if t.batch_size > 32 {
        Some(format!("batch size {}", t.batch_size))
    } else if size > 32 || channels > 1 && size > 16 {
        Some(format!("{channels}x{size}x{size} images"))
    } else if t.preset == SizePreset::Large {
        Some("the Large model".into())
    } else if t.preview_every < 5 && t.preset != SizePreset::Tiny {
        Some(format!("samples every {} steps", t.preview_every))
    } else if t.quality && t.data != DataKind::ImageFolder && (t.quality_samples > 50 || t.quality_every < 10) {
        // A reading samples that many images through the whole sampler: minutes of the engine between steps.
        Some(format!("{} quality samples every {} steps", t.quality_samples, t.quality_every))
    } else {
        None
    }
}

// --- Set-up ---

/// What the window starts with: cheap runs (batch 2, 5 DDIM steps), the CPU, and a Train view pointed at
/// the small pictures folder, with relative run folders (the current directory is the sandbox).
fn start_settings() -> Settings {
    Settings {
        batch: 2,
        sampler: Sampler::ddim(5, 0.0),
        seed: 7,
        device: DeviceChoice::Cpu,
        train: TrainSettings {
            data: DataKind::ImageFolder,
            idx_dir: "idx".into(),
            image_dir: "pictures".into(),
            image_size: 16,
            image_channels: 1,
            preset: SizePreset::Tiny,
            steps: 200,
            batch_size: 8,
            out: "runs/first".into(),
            checkpoint_every: 10,
            preview_every: 20,
            ..TrainSettings::default()
        },
        ..Settings::default()
    }
}

/// The sandbox's data: `fashion-mnist` and `idx` hold the fixture's 500 test images under both splits'
/// names; `pictures` holds 12 small PNGs in two classes and one broken file; `a file` is a file (a run
/// folder under it cannot be made).
fn fill_sandbox(dir: &Path) {
    for folder in ["fashion-mnist", "idx"] {
        common::fixture_as_both_splits(&dir.join(folder));
    }
    let pictures = dir.join("pictures");
    for i in 0..12u32 {
        let class = if i % 2 == 0 { "left" } else { "right" };
        std::fs::create_dir_all(pictures.join(class)).unwrap();
        let image = image::GrayImage::from_fn(24, 24, |x, y| {
            let bright = (x < 12) == (class == "left");
            image::Luma([if bright { 200 } else { 30 } + ((x * 7 + y * 13 + i * 5) % 23) as u8])
        });
        image.save(pictures.join(class).join(format!("{i:02}.png"))).unwrap();
    }
    std::fs::write(pictures.join("left").join("broken.png"), b"not a png").unwrap();
    std::fs::write(dir.join("a file"), b"x").unwrap();
}

/// The harness's default renderer keeps every texture upload until its first render, which a test that
/// never renders would see as a leak; this one drops them.
struct NoRenderer;

impl TestRenderer for NoRenderer {
    fn handle_delta(&mut self, _delta: &mut egui::TexturesDelta) {}

    fn render(&mut self, _ctx: &egui::Context, _output: &egui::FullOutput) -> Result<image::RgbaImage, String> {
        Err("the monkey test does not render".into())
    }
}

/// Every panic on any thread (the engine catches its own and reports a failed job: it is still a bug).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
        let backtrace = std::backtrace::Backtrace::force_capture();
        PANICS.lock().unwrap_or_else(|e| e.into_inner()).push(format!("thread '{thread}': {info}\n{backtrace}"));
        default(info);
    }));
}

fn panics() -> Vec<String> {
    PANICS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Bytes the process has allocated and not freed (the allocator's own slack and freed pages it keeps are
/// not in it, unlike the RSS).
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

struct Counting;

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = unsafe { std::alloc::System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = unsafe { std::alloc::System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The process's memory at a checkpoint.
struct Memory {
    /// After how many actions.
    actions: usize,
    /// Resident memory, MiB, after the allocator has handed its free pages back (`malloc_trim`).
    rss: f64,
    /// Allocated and not freed, MiB.
    live: f64,
    /// egui's allocated textures, and their size in MiB.
    textures: usize,
    texture_mib: f64,
    /// Threads alive, and the models in Generate's picker (each trained run folder adds one, for good).
    threads: usize,
    models: usize,
    /// Of `threads`, the batch parts' runners: started by the first training step of a batch of 32 or more
    /// and kept for the process's life (src/model/cpu/parts.rs), at most one per thread of rayon's pool.
    runners: usize,
}

impl Memory {
    fn now(actions: usize, app: &LabApp, ctx: &egui::Context) -> Self {
        // glibc keeps the pages of freed memory in each thread's arena at that arena's high-water mark;
        // without this the RSS follows the largest transient allocation so far (a batch of 64 through
        // the UNet), not what is held.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            unsafe extern "C" {
                fn malloc_trim(pad: usize) -> i32;
            }
            // SAFETY: glibc's malloc_trim only returns free memory to the system; any thread may call it.
            unsafe { malloc_trim(0) };
        }
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status is readable");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("/proc/self/status has VmRSS");
        let kib: f64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS is a number of kB");
        let live = LIVE_BYTES.load(Ordering::Relaxed) as f64 / (1 << 20) as f64;
        let (textures, texture_bytes) = {
            let manager = ctx.tex_manager();
            let manager = manager.read();
            (manager.num_allocated(), manager.allocated().map(|(_, meta)| meta.bytes_used()).sum::<usize>())
        };
        let names = common::thread_names();
        Self {
            actions,
            rss: kib / 1024.0,
            live,
            textures,
            texture_mib: texture_bytes as f64 / (1 << 20) as f64,
            threads: names.len(),
            models: app.ctx.models.loaded.len(),
            runners: names.iter().filter(|name| name.starts_with(RUNNER_NAME)).count(),
        }
    }
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "after {} actions: RSS {:.0} MiB, live {:.1} MiB, {} textures ({:.1} MiB), {} threads ({} batch-part \
             runners), {} models",
            self.actions, self.rss, self.live, self.textures, self.texture_mib, self.threads, self.runners, self.models
        )
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

// --- What the monkey sees ---

/// A widget of the accessibility tree, as the monkey picks among them.
#[derive(Clone, Debug)]
struct Widget {
    role: Role,
    label: String,
    disabled: bool,
    rect: Rect,
    value: Option<f64>,
    range: (Option<f64>, Option<f64>),
    text: Option<String>,
    /// For an input: the text to its left on its row, which a user reads as its label.
    beside: Option<String>,
}

impl Widget {
    fn of(node: &Node<'_>) -> Option<Self> {
        let n = node.accesskit_node();
        if n.is_hidden() {
            return None;
        }
        let rect = n.bounding_box().map(|_| node.rect())?;
        Some(Self {
            role: n.role(),
            label: n.label().unwrap_or_default(),
            disabled: n.is_disabled(),
            rect,
            value: n.numeric_value(),
            range: (n.min_numeric_value(), n.max_numeric_value()),
            text: n.value(),
            beside: None,
        })
    }

    fn name(&self) -> String {
        match &self.beside {
            Some(beside) if self.unnamed() => format!("{:?} beside {beside:?}", self.role),
            _ => format!("{:?} {:?}", self.role, self.label),
        }
    }

    fn input(&self) -> bool {
        self.numeric() || self.text_input() || self.clickable()
    }

    /// An input without an accessible name: neither a screen reader nor a test reaches it by label.
    fn unnamed(&self) -> bool {
        self.input() && self.label.trim().is_empty()
    }

    /// Whether a pointer click at its centre lands on it (it is on screen); else the monkey clicks it
    /// through AccessKit.
    fn on_screen(&self) -> bool {
        Rect::from_min_size(Pos2::ZERO, WINDOW.into()).contains(self.rect.center()) && self.rect.area() > 0.0
    }

    fn clickable(&self) -> bool {
        matches!(
            self.role,
            Role::Button
                | Role::CheckBox
                | Role::RadioButton
                | Role::ComboBox
                | Role::Tab
                | Role::ListBoxOption
                | Role::MenuItem
                | Role::Switch
                | Role::Link
                | Role::DisclosureTriangle
        )
    }

    fn numeric(&self) -> bool {
        matches!(self.role, Role::Slider | Role::SpinButton)
    }

    fn text_input(&self) -> bool {
        matches!(self.role, Role::TextInput | Role::MultilineTextInput | Role::SearchInput)
    }

    /// The Train view's path fields: the monkey writes only relative paths into them.
    fn path_field(&self) -> bool {
        self.text_input() && !matches!(self.label.as_str(), "X values" | "Y values")
    }
}

/// What the monkey reached, from one widget on screen (for the summary: coverage, not a check).
fn sight(widget: &Widget) -> Option<&'static str> {
    let text = widget.text.as_deref().unwrap_or_default();
    Some(match (widget.role, widget.label.as_str()) {
        (Role::Button, "Cancel") if !widget.disabled => "Generate running",
        (Role::Slider, "Timestep") => "timeline",
        (Role::Image, "B images") => "A/B result",
        (Role::Image, "X/Y grid") => "grid or strip",
        (Role::Slider, "Forward t") => "Forward process panel",
        (Role::Image, "training images") => "training data preview",
        (Role::Image, "samples during training") => "training samples",
        (Role::Button, "Pause training") => "training running",
        (Role::Button, "Stop training") => "training running or paused",
        (Role::Button, label) if label.starts_with("Resume training (step") => "a run folder to resume",
        (Role::Label, _) if text.starts_with("done in ") => "Generate finished",
        (Role::Label, _) if text.contains("saved to the default folder") => "export written",
        (Role::Label, _) if text.starts_with("training finished at") || text.starts_with("training stopped at") => {
            "training stopped or finished"
        }
        (Role::Label, _) if text.starts_with("memory budget") => "recording thinned (memory budget)",
        _ => return None,
    })
}

/// Items that would leave the CPU: another device (a GPU, or a software one that takes minutes).
fn excluded(widget: &Widget) -> bool {
    matches!(widget.label.as_str(), "auto (GPU if there is one)" | "wgpu (any adapter)")
}

/// Typed text never holds `.` or `/`: typed into a path field (wherever the focus is) it cannot climb out
/// of the sandbox.
const SAFE_CHARS: &[char] = &['a', 'b', 'z', 'é', ' ', '0', '1', '2', '5', '9', ',', '-', '_', 'x'];

/// Paths the monkey writes into the path fields (relative: the current directory is the sandbox).
const PATHS: &[&str] = &[
    "pictures",
    "pictures/left",
    "idx",
    "fashion-mnist",
    "runs/first",
    "runs/second",
    "runs/third",
    "nowhere",
    "a file/run",
    "runs/first/autoencoder.dlab",
    "",
];

/// Whether an action's log line says that it did nothing: it found nothing to act on ("set: no slider",
/// "click: nothing clickable", "none of [..] here"), its widget was gone when it came to act, it skipped a
/// disabled widget or costly training, it clicked a disabled widget (which must do nothing), or a training
/// run was already going.
fn did_nothing(line: &str) -> bool {
    line.starts_with("skip ")
        || line.starts_with("none of ")
        || line.ends_with(" (disabled)")
        || line.ends_with(" is gone")
        || line.ends_with(": nothing")
        || line.ends_with(": nothing clickable")
        || line == "train: a run is going"
        || line.split_once(": no ").is_some_and(|(action, _)| !action.contains(' ') || action == "type number")
}

/// The actions done, each with its index (a check carries the index of the action it follows).
#[derive(Clone, Default)]
struct Log(std::sync::Arc<Mutex<Vec<(usize, String)>>>);

impl Log {
    fn push(&self, index: usize, line: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push((index, line));
    }

    fn last_index(&self) -> Option<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).last().map(|(index, _)| *index)
    }

    /// The last [`SHOWN_ACTIONS`] lines.
    fn tail(&self) -> Vec<String> {
        let log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        log[log.len().saturating_sub(SHOWN_ACTIONS)..].iter().map(|(i, line)| format!("  #{i} {line}")).collect()
    }
}

/// What a failure prints: where, why, the actions before it, and how to replay them.
fn report(seed: u64, actions: usize, index: usize, log: &Log, what: &str) -> String {
    format!(
        "monkey failed at action #{index} of {actions} (seed {seed}): {what}\nthe last actions:\n{}\nreplay: \
         MONKEY_SEED={seed} MONKEY_ACTIONS={} cargo test --release --test monkey -- --nocapture",
        log.tail().join("\n"),
        index + 1
    )
}

/// The action being done, and when the window last made a frame (ms since [`START`]), for the watchdog.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static LAST_FRAME: AtomicU64 = AtomicU64::new(0);
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
/// A frame that takes this long is a hang (every wait of the test steps the window while it waits).
const HANG: Duration = Duration::from_secs(120);

fn since_start_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Reports a hang of the window's thread (a deadlock panics nowhere) with the actions before it, and ends
/// the process.
fn watchdog(seed: u64, actions: usize, log: Log) {
    LAST_FRAME.store(since_start_ms(), Ordering::Relaxed);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let idle = since_start_ms().saturating_sub(LAST_FRAME.load(Ordering::Relaxed));
            if idle > HANG.as_millis() as u64 {
                let what = format!("the window made no frame for {} s (a hang)", idle / 1000);
                eprintln!("{}", report(seed, actions, CURRENT.load(Ordering::Relaxed), &log, &what));
                std::process::exit(1);
            }
        }
    });
}

/// The panic of a failed check (its report is printed already).
struct MonkeyFailed;

struct Monkey {
    harness: Harness<'static, LabApp>,
    rng: ChaCha8Rng,
    seed: u64,
    actions: usize,
    /// The index of the action being done.
    current: usize,
    /// Each action (and check) with the index of its action; shared with the watchdog.
    log: Log,
    /// Input widgets seen without an accessible name (role, and the text beside them), each once.
    unnamed: Vec<String>,
    /// For how many actions each [`sight`] was on screen.
    sights: std::collections::BTreeMap<&'static str, usize>,
    /// Actions that did nothing ([`did_nothing`]).
    idle_actions: usize,
    /// The longest UI update so far, and the action it came in.
    slowest_step: (Duration, usize),
}

impl Monkey {
    fn new(seed: u64, actions: usize, dir: &Path) -> Self {
        let mut app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), start_settings());
        sandbox(&mut app, &dir.join("exports"));
        let harness = Harness::builder()
            .with_size(WINDOW)
            .renderer(NoRenderer)
            .build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
        let log = Log::default();
        watchdog(seed, actions, log.clone());
        let mut monkey = Self {
            harness,
            rng: ChaCha8Rng::seed_from_u64(seed),
            seed,
            actions,
            current: 0,
            log,
            unnamed: Vec::new(),
            sights: Default::default(),
            idle_actions: 0,
            slowest_step: (Duration::ZERO, 0),
        };
        monkey.wait_until("the model loads", Duration::from_secs(300), |app| app.generate_blocker().is_none());
        monkey
    }

    fn widgets(&self) -> Vec<Widget> {
        let mut widgets: Vec<Widget> =
            self.harness.root().children_recursive().filter_map(|n| Widget::of(&n)).collect();
        for i in 0..widgets.len() {
            if widgets[i].input() {
                let r = widgets[i].rect;
                let beside = widgets
                    .iter()
                    .filter(|w| w.role == Role::Label && (r.top()..=r.bottom()).contains(&w.rect.center().y))
                    .filter(|w| w.rect.right() <= r.left() + 1.0)
                    .max_by(|a, b| a.rect.right().total_cmp(&b.rect.right()))
                    .and_then(|w| w.text.clone());
                widgets[i].beside = Some(beside.unwrap_or_default());
            }
        }
        widgets
    }

    /// The input beside the text `label` (the Train view's run settings have no names, or all "steps").
    fn beside(&self, role: Role, label: &str) -> Option<Widget> {
        self.widgets().into_iter().find(|w| w.role == role && w.beside.as_deref() == Some(label))
    }

    /// Prints where the monkey was, and fails the test.
    fn fail(&self, what: &str) -> ! {
        eprintln!("{}", report(self.seed, self.actions, self.current, &self.log, what));
        std::panic::panic_any(MonkeyFailed);
    }

    /// One UI update; one that takes longer than [`SLOW_STEP`] fails the test.
    fn step(&mut self) {
        let started = Instant::now();
        self.harness.step();
        let took = started.elapsed();
        LAST_FRAME.store(since_start_ms(), Ordering::Relaxed);
        if took > self.slowest_step.0 {
            self.slowest_step = (took, self.current);
        }
        if took > SLOW_STEP {
            self.fail(&format!("one UI update took {:.1} s (at most {SLOW_STEP:?})", took.as_secs_f64()));
        }
    }

    /// Steps the window until `done` holds, or fails after `limit`.
    fn wait_until(&mut self, what: &str, limit: Duration, done: impl Fn(&LabApp) -> bool) {
        self.wait_for(what, limit, |monkey| done(monkey.harness.state()));
    }

    /// Steps the window until `done` holds (of what is on screen), or fails after `limit`.
    fn wait_for(&mut self, what: &str, limit: Duration, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            if Instant::now() > deadline {
                let state = run_outcome(self.harness.state());
                self.fail(&format!("timed out after {limit:?} waiting until {what} (run: {state:?})"));
            }
            self.step();
            std::thread::sleep(Duration::from_millis(5));
        }
        self.step();
    }

    fn find(&self, role: Role, label: &str) -> Option<Widget> {
        self.widgets().into_iter().find(|w| w.role == role && w.label == label)
    }

    /// Clicks the widget `label` of `role` if there is one; whether it was there.
    fn click_label(&mut self, role: Role, label: &str) -> bool {
        let clicked = match self.harness.query_by_role_and_label(role, label) {
            Some(node) => {
                node.click_accesskit();
                true
            }
            None => false,
        };
        self.step();
        self.step();
        clicked
    }

    /// Picks `item` in the combo box `combo` (opening it unless it is open).
    fn choose(&mut self, combo: &str, item: &str) {
        for _ in 0..2 {
            if self.click_label(Role::Button, item) {
                return;
            }
            self.click_label(Role::ComboBox, combo);
        }
        self.fail(&format!("no {item:?} in the combo box {combo:?}"));
    }

    // --- Actions. Each returns its log line; the window is stepped after it. ---

    fn act(&mut self) -> String {
        let widgets = self.widgets();
        let roll = self.rng.random_range(0..100);
        match roll {
            0..30 => self.click_any(&widgets),
            30..40 => self.set_number(&widgets),
            40..45 => self.drag_slider(&widgets),
            45..48 => self.nudge(&widgets),
            48..55 => self.type_text(&widgets),
            55..58 => self.type_number(&widgets),
            58..61 => self.set_path(&widgets),
            61..66 => self.key(),
            66..70 => self.click_one_of(&widgets, &["Generate view", "Train view"]),
            70..77 => self.click_one_of(&widgets, &["Generate", "Denoise from here"]),
            77..80 => self.click_one_of(&widgets, &["Cancel"]),
            80..84 => self.click_one_of(&widgets, &["Off", "A/B", "X/Y grid", "Interpolate", "B = A"]),
            84..87 => self.train_control(&widgets),
            87..88 => self.train(),
            88..90 => self.scrub(&widgets),
            90..92 => self.paint(&widgets),
            92..94 => self.scroll(&widgets),
            _ => self.wait(),
        }
    }

    /// Clicks a random clickable widget: by pointer where it is on screen, else through AccessKit; an
    /// open popup's items are favoured (a user who opens a combo box usually picks from it). Disabled
    /// widgets are mostly skipped and sometimes clicked (which must do nothing).
    fn click_any(&mut self, widgets: &[Widget]) -> String {
        let mut candidates: Vec<&Widget> = widgets.iter().filter(|w| w.clickable() && !excluded(w)).collect();
        if candidates.is_empty() {
            return "click: nothing clickable".into();
        }
        let open_popup: Vec<&Widget> = widgets
            .iter()
            .filter(|w| w.role == Role::ListBoxOption || w.role == Role::MenuItem)
            .filter(|w| !excluded(w))
            .collect();
        if !open_popup.is_empty() && self.rng.random_bool(0.6) {
            candidates = open_popup;
        }
        let widget = candidates[self.rng.random_range(0..candidates.len())].clone();
        if widget.disabled && self.rng.random_bool(0.7) {
            return format!("skip disabled {}", widget.name());
        }
        self.click(&widget)
    }

    fn click(&mut self, widget: &Widget) -> String {
        if self.is_start(widget)
            && let Some(reason) = costly_training(self.harness.state())
        {
            return format!("skip {} ({reason})", widget.name());
        }
        self.click_now(widget)
    }

    fn click_now(&mut self, widget: &Widget) -> String {
        let by_pointer = widget.on_screen() && self.rng.random_bool(0.8);
        let Some(node) = self.node(widget) else { return format!("click: {} is gone", widget.name()) };
        if by_pointer {
            node.click();
        } else {
            node.click_accesskit();
        }
        let how = if by_pointer { "click" } else { "ak-click" };
        format!("{how} {}{}", widget.name(), if widget.disabled { " (disabled)" } else { "" })
    }

    fn is_start(&self, widget: &Widget) -> bool {
        widget.role == Role::Button
            && (widget.label == "Start training" || widget.label.starts_with("Resume training ("))
    }

    /// The node of `widget` in the current tree (same role, label and place).
    fn node(&self, widget: &Widget) -> Option<Node<'_>> {
        self.harness.root().children_recursive().find(|n| {
            let a = n.accesskit_node();
            a.role() == widget.role
                && a.label().unwrap_or_default() == widget.label
                && a.bounding_box().is_some()
                && n.rect() == widget.rect
        })
    }

    /// Clicks one of the widgets `labels` that are there (a disabled one half of the time).
    fn click_one_of(&mut self, widgets: &[Widget], labels: &[&str]) -> String {
        let Some(widget) = self.pick(widgets, |w| w.clickable() && labels.contains(&w.label.as_str())).cloned() else {
            return format!("none of {labels:?} here");
        };
        if widget.disabled && self.rng.random_bool(0.5) {
            return format!("skip disabled {}", widget.name());
        }
        self.click(&widget)
    }

    fn pick<'w>(&mut self, widgets: &'w [Widget], keep: impl Fn(&Widget) -> bool) -> Option<&'w Widget> {
        let candidates: Vec<&Widget> = widgets.iter().filter(|w| keep(w)).collect();
        (!candidates.is_empty()).then(|| candidates[self.rng.random_range(0..candidates.len())])
    }

    /// A value for a slider or drag value: its ends, a step from where it is, or a value in its range
    /// biased towards the small end (batch, steps and sizes are cheap there).
    fn number(&mut self, widget: &Widget) -> f64 {
        let current = widget.value.unwrap_or(0.0);
        match widget.range {
            (Some(lo), Some(hi)) if hi > lo => match self.rng.random_range(0..10) {
                0 => lo,
                1 => hi,
                2..4 => (current + (hi - lo) * self.rng.random_range(-0.05..0.05)).clamp(lo, hi),
                4..8 => lo + (hi - lo) * self.rng.random::<f64>().powi(4),
                _ => self.rng.random_range(lo..=hi),
            },
            _ => match self.rng.random_range(0..4) {
                0 => current + self.rng.random_range(-3.0..3.0_f64).round(),
                1 => 0.0,
                _ => self.rng.random_range(0.0..100_000.0_f64).round(),
            },
        }
    }

    fn set_number(&mut self, widgets: &[Widget]) -> String {
        let Some(widget) = self.pick(widgets, Widget::numeric).cloned() else { return "set: no slider".into() };
        let value = self.number(&widget);
        let Some(node) = self.node(&widget) else { return format!("set: {} is gone", widget.name()) };
        node.set_value_accesskit(value);
        format!("set {} = {value}", widget.name())
    }

    /// Drags a slider's handle by pointer from a random place to another along it.
    fn drag_slider(&mut self, widgets: &[Widget]) -> String {
        let Some(widget) = self.pick(widgets, |w| w.role == Role::Slider && w.on_screen()).cloned() else {
            return "drag: no slider on screen".into();
        };
        let r = widget.rect;
        let at = |f: f32| Pos2::new(r.left() + r.width() * f, r.center().y);
        let (from, to) = (self.rng.random_range(0.0..1.0), self.rng.random_range(-0.1..1.1));
        self.harness.hover_at(at(from));
        self.harness.drag_at(at(from));
        for k in 1..=3 {
            self.harness.hover_at(at(from + (to - from) * k as f32 / 3.0));
        }
        self.harness.drop_at(at(to));
        format!("drag {} {from:.2} -> {to:.2}", widget.name())
    }

    fn nudge(&mut self, widgets: &[Widget]) -> String {
        let Some(widget) = self.pick(widgets, Widget::numeric).cloned() else { return "nudge: no slider".into() };
        let up = self.rng.random_bool(0.5);
        let Some(node) = self.node(&widget) else { return format!("nudge: {} is gone", widget.name()) };
        if up {
            node.increment_accesskit();
        } else {
            node.decrement_accesskit();
        }
        format!("{} {}", if up { "increment" } else { "decrement" }, widget.name())
    }

    fn safe_text(&mut self) -> String {
        match self.rng.random_range(0..3) {
            0 => {
                let n = self.rng.random_range(1..4);
                (0..n).map(|_| self.rng.random_range(0..12).to_string()).collect::<Vec<_>>().join(", ")
            }
            _ => (0..self.rng.random_range(1..8))
                .map(|_| SAFE_CHARS[self.rng.random_range(0..SAFE_CHARS.len())])
                .collect(),
        }
    }

    /// Clicks a text field, maybe selects all, types, maybe presses Enter. X and Y values sometimes get
    /// a whole list through AccessKit instead (with decimals: typed keys hold no `.`).
    fn type_text(&mut self, widgets: &[Widget]) -> String {
        let Some(widget) = self.pick(widgets, Widget::text_input).cloned() else { return "type: no text field".into() };
        if !widget.path_field() && self.rng.random_bool(0.4) {
            let n = self.rng.random_range(1..5);
            let list: Vec<String> =
                (0..n).map(|_| format!("{}", (self.rng.random_range(0.0..12.0_f64) * 2.0).round() / 2.0)).collect();
            let text = list.join(", ");
            let Some(node) = self.node(&widget) else { return format!("type: {} is gone", widget.name()) };
            node.set_text_value_accesskit(&text);
            return format!("set text {} = {text:?}", widget.name());
        }
        let text = self.safe_text();
        let (select_all, enter) = (self.rng.random_bool(0.5), self.rng.random_bool(0.3));
        let Some(node) = self.node(&widget) else { return format!("type: {} is gone", widget.name()) };
        if widget.on_screen() {
            node.click();
        } else {
            node.focus();
        }
        if select_all {
            self.harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
        }
        self.harness.event(egui::Event::Text(text.clone()));
        if enter {
            self.harness.key_press(Key::Enter);
        }
        format!(
            "type {} {text:?}{}{}",
            widget.name(),
            if select_all { " over all" } else { "" },
            if enter { " + Enter" } else { "" }
        )
    }

    /// Clicks a drag value (which then edits as text) and types a number, then Enter or a click away.
    fn type_number(&mut self, widgets: &[Widget]) -> String {
        let Some(widget) = self.pick(widgets, |w| w.role == Role::SpinButton && w.on_screen()).cloned() else {
            return "type number: no drag value on screen".into();
        };
        let number = self.number(&widget).round();
        let text = if self.rng.random_bool(0.1) { self.safe_text() } else { format!("{number}") };
        let Some(node) = self.node(&widget) else { return format!("type number: {} is gone", widget.name()) };
        node.click();
        self.harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
        self.harness.event(egui::Event::Text(text.clone()));
        self.harness.key_press(Key::Enter);
        format!("type number {} {text:?}", widget.name())
    }

    /// One of the sandbox's paths (or a missing one) into a path field, through AccessKit.
    fn set_path(&mut self, widgets: &[Widget]) -> String {
        let Some(widget) = self.pick(widgets, Widget::path_field).cloned() else { return "path: no path field".into() };
        let path = PATHS[self.rng.random_range(0..PATHS.len())];
        let load = self.rng.random_bool(0.5);
        let Some(node) = self.node(&widget) else { return format!("path: {} is gone", widget.name()) };
        node.set_text_value_accesskit(path);
        if load && let Some(button) = self.harness.query_by_role_and_label(Role::Button, "Load data") {
            button.click_accesskit();
        }
        format!("path {} = {path:?}{}", widget.name(), if load { " + Load data" } else { "" })
    }

    fn key(&mut self) -> String {
        const KEYS: &[(Modifiers, Key)] = &[
            (Modifiers::NONE, Key::Escape),
            (Modifiers::NONE, Key::Space),
            (Modifiers::NONE, Key::ArrowLeft),
            (Modifiers::NONE, Key::ArrowRight),
            (Modifiers::NONE, Key::Enter),
            (Modifiers::NONE, Key::Tab),
            (Modifiers::NONE, Key::Backspace),
            (Modifiers::NONE, Key::Delete),
            (Modifiers::COMMAND, Key::Enter),
            (Modifiers::COMMAND, Key::A),
        ];
        let (modifiers, key) = KEYS[self.rng.random_range(0..KEYS.len())];
        self.harness.key_press_modifiers(modifiers, key);
        format!("key {}{key:?}", if modifiers.command { "Ctrl+" } else { "" })
    }

    /// Start (when cheap enough), Pause, Resume, Stop, Load data, or a data source / model kind.
    fn train_control(&mut self, widgets: &[Widget]) -> String {
        let labels: Vec<&Widget> = widgets
            .iter()
            .filter(|w| {
                w.clickable()
                    && (w.label.contains("training")
                        || matches!(
                            w.label.as_str(),
                            "Load data" | "Fashion-MNIST" | "IDX folder" | "Your images" | "pixel" | "latent"
                        ))
            })
            .collect();
        if labels.is_empty() {
            return "train: no training control here".into();
        }
        let widget = labels[self.rng.random_range(0..labels.len())].clone();
        self.click(&widget)
    }

    /// A training run, as a user sets one up: the Train view, a data source that loads, one of three run
    /// folders, the settings that make the run too costly for this test made cheap through their widgets,
    /// then Start (or Resume, where the folder holds a run).
    fn train(&mut self) -> String {
        let mut done = vec!["train:".to_string()];
        self.click_label(Role::Button, "Train view");
        if self.find(Role::Button, "Stop training").is_some() {
            return "train: a run is going".into();
        }
        let (source, path) = [("Fashion-MNIST", None), ("IDX folder", Some("idx")), ("Your images", Some("pictures"))]
            [self.rng.random_range(0..3)];
        self.click_label(Role::RadioButton, source);
        if let Some(path) = path {
            let label = if source == "IDX folder" { "IDX folder path" } else { "Image folder" };
            if let Some(node) = self.harness.query_by_role_and_label(Role::TextInput, label) {
                node.set_text_value_accesskit(path);
            }
            self.step();
        }
        self.click_label(Role::Button, "Load data");
        let out = ["runs/first", "runs/second", "runs/third"][self.rng.random_range(0..3)];
        if let Some(node) = self.harness.query_by_role_and_label(Role::TextInput, "Run folder") {
            node.set_text_value_accesskit(out);
        }
        done.push(format!("{source} {path:?}, run folder {out:?}"));
        // The data loads and the run folder is read on the engine's thread.
        for _ in 0..20 {
            self.step();
            std::thread::sleep(Duration::from_millis(5));
        }
        while let Some(reason) = costly_training(self.harness.state()) {
            if !self.tame() {
                done.push(format!("still costly ({reason})"));
                return done.join(" ");
            }
            done.push(format!("made cheap ({reason})"));
        }
        let start = self
            .widgets()
            .into_iter()
            .find(|w| self.is_start(w) && !w.disabled)
            .or_else(|| self.find(Role::Button, "Start training"));
        match start {
            Some(start) => done.push(self.click_now(&start)),
            None => done.push("no Start".into()),
        }
        done.join(" ")
    }

    /// Makes the costliest of the Train view's settings cheap through its widget; whether it found one.
    fn tame(&mut self) -> bool {
        let Some(reason) = costly_training(self.harness.state()) else { return true };
        let (widget, value) = if reason.starts_with("batch size") {
            (self.beside(Role::SpinButton, "Batch size"), 8.0)
        } else if reason.starts_with("samples every") {
            (self.beside(Role::SpinButton, "Samples every"), 20.0)
        } else if reason.contains("quality samples") {
            let samples = self.find(Role::SpinButton, "Quality samples");
            if let Some(node) = samples.as_ref().and_then(|w| self.node(w)) {
                node.set_value_accesskit(20.0);
            }
            self.step();
            (self.find(Role::SpinButton, "Quality every"), 20.0)
        } else if reason.contains("images") {
            (self.find(Role::SpinButton, "size px"), 16.0)
        } else {
            if self.click_label(Role::ComboBox, "Size") {
                let tiny = self.widgets().into_iter().find(|w| w.role == Role::Button && w.label.starts_with("Tiny "));
                if let Some(tiny) = tiny {
                    self.click_now(&tiny);
                    self.step();
                    self.step();
                }
            }
            return costly_training(self.harness.state()).as_deref() != Some(reason.as_str());
        };
        let Some(widget) = widget else { return false };
        if let Some(node) = self.node(&widget) {
            node.set_value_accesskit(value);
        }
        self.step();
        self.step();
        costly_training(self.harness.state()).as_deref() != Some(reason.as_str())
    }

    /// The timeline: the Timestep slider (or the Train view's), set or stepped by the arrow keys.
    fn scrub(&mut self, widgets: &[Widget]) -> String {
        let scrubbers = ["Timestep", "Samples over training", "Denoising step", "Forward t"];
        let Some(widget) =
            self.pick(widgets, |w| w.role == Role::Slider && scrubbers.contains(&w.label.as_str())).cloned()
        else {
            return "scrub: no timeline".into();
        };
        if self.rng.random_bool(0.3) {
            let key = if self.rng.random_bool(0.5) { Key::ArrowLeft } else { Key::ArrowRight };
            self.harness.key_press(key);
            return format!("scrub key {key:?}");
        }
        let value = self.number(&widget).round();
        let Some(node) = self.node(&widget) else { return format!("scrub: {} is gone", widget.name()) };
        node.set_value_accesskit(value);
        format!("scrub {} = {value}", widget.name())
    }

    /// A pointer stroke across an image (paints the inpainting mask on x_0; elsewhere does nothing).
    fn paint(&mut self, widgets: &[Widget]) -> String {
        let Some(widget) = self.pick(widgets, |w| w.role == Role::Image && w.on_screen()).cloned() else {
            return "paint: no image on screen".into();
        };
        let r = widget.rect;
        let mut point =
            || Pos2::new(self.rng.random_range(r.left()..=r.right()), self.rng.random_range(r.top()..=r.bottom()));
        let (from, via, to) = (point(), point(), point());
        self.harness.hover_at(from);
        self.harness.drag_at(from);
        self.harness.hover_at(via);
        self.harness.hover_at(to);
        self.harness.drop_at(to);
        format!("paint {} ({:.0},{:.0}) -> ({:.0},{:.0})", widget.name(), from.x, from.y, to.x, to.y)
    }

    fn scroll(&mut self, widgets: &[Widget]) -> String {
        let Some(widget) = self.pick(widgets, |w| w.role != Role::Window && w.on_screen()).cloned() else {
            return "scroll: nothing".into();
        };
        let down = self.rng.random_bool(0.6);
        let Some(node) = self.node(&widget) else { return format!("scroll: {} is gone", widget.name()) };
        if down {
            node.scroll_down();
        } else {
            node.scroll_up();
        }
        format!("scroll {} at {}", if down { "down" } else { "up" }, widget.name())
    }

    /// Lets the engine work for a few frames (5 ms apart).
    fn wait(&mut self) -> String {
        let frames = self.rng.random_range(1..40);
        for _ in 0..frames {
            self.step();
            std::thread::sleep(Duration::from_millis(5));
        }
        format!("wait {frames} frames")
    }

    // --- Checks ---

    fn check_panics(&self) {
        let panics = panics();
        if !panics.is_empty() {
            self.fail(&format!("{} panic(s); the first:\n{}", panics.len(), panics[0]));
        }
    }

    /// After each action: notes input widgets without an accessible name (a screen reader cannot reach
    /// them, nor a test by label), and counts what the monkey reached, for the summary.
    fn observe(&mut self) {
        let widgets = self.widgets();
        let mut seen: Vec<&'static str> = widgets.iter().filter_map(sight).collect();
        seen.sort();
        seen.dedup();
        for sight in seen {
            *self.sights.entry(sight).or_default() += 1;
        }
        for widget in widgets.iter().filter(|w| w.unnamed()) {
            let place = widget.name();
            if !self.unnamed.contains(&place) {
                eprintln!(
                    "monkey: after action #{}: an input widget without an accessible name: {place}",
                    self.current
                );
                self.unnamed.push(place);
            }
        }
    }

    /// The engine still answers: everything is cancelled, a cheap single run is set up through the
    /// labels, and Generate runs it to its end.
    fn check_engine_answers(&mut self) {
        self.log.push(self.current, "check: the engine answers".into());
        // Close popups and leave text fields, then the Generate view.
        self.harness.key_press(Key::Escape);
        self.step();
        self.harness.remove_cursor();
        self.step();
        self.click_label(Role::Button, "Generate view");
        self.click_label(Role::Button, "Cancel");
        self.wait_until("what runs stops after Cancel", Duration::from_secs(120), |app| !app.is_running());
        // The engine takes training commands between Generate runs, so Stop comes after Cancel.
        self.stop_training();
        self.click_label(Role::Button, "Generate view");
        self.click_label(Role::Button, "Off");
        if self.find(Role::Button, "Reset to the model's schedule").is_some_and(|w| !w.disabled) {
            self.click_label(Role::Button, "Reset to the model's schedule");
        }
        // The built-in pixel model, unconditional (a model picked from the list keeps the class chosen
        // before, which a model with fewer classes does not have), DDIM.
        self.choose("Model", "Fashion-MNIST (pixel UNet)");
        self.choose("Class", "any (unconditional)");
        self.choose("Sampler", "DDIM");
        for (label, value) in [("Batch", 1.0), ("Steps", 3.0)] {
            if let Some(node) = self.harness.query_by_role_and_label(Role::Slider, label) {
                node.set_value_accesskit(value);
            }
            self.step();
        }
        self.step();
        match self.find(Role::Button, "Generate") {
            Some(generate) if !generate.disabled => {}
            _ => {
                let reason = self.harness.state().generate_blocker();
                self.fail(&format!("Generate is off after resetting the settings: {reason:?}"));
            }
        }
        self.click_label(Role::Button, "Generate");
        self.wait_until("the check's run finishes", Duration::from_secs(240), |app| !app.is_running());
        if let Some(Err(why)) = run_outcome(self.harness.state()) {
            self.fail(&format!("the check's run did not finish: {why}"));
        }
    }

    /// Stops a training run (running, paused or starting) from the Train view, and waits until it has.
    fn stop_training(&mut self) {
        let training = |monkey: &Self| {
            monkey.widgets().iter().any(|w| w.text.as_deref().is_some_and(|t| t.starts_with("training: step")))
        };
        if !training(self) {
            return;
        }
        self.click_label(Role::Button, "Train view");
        let limit = Duration::from_secs(120);
        self.wait_for("training starts (or fails)", limit, |m| {
            !m.widgets().iter().any(|w| w.text.as_deref() == Some("starting…"))
        });
        self.click_label(Role::Button, "Stop training");
        self.wait_for("training stops", limit, |m| !training(m));
    }

    fn checkpoint(&mut self, memory: &mut Vec<Memory>) {
        self.check_panics();
        self.check_engine_answers();
        self.quiet();
        self.check_panics();
        let now = Memory::now(self.current + 1, self.harness.state(), &self.harness.ctx);
        eprintln!("monkey: {now:?}");
        if now.textures > MAX_QUIET_TEXTURES {
            self.fail(&format!("{} textures at a quiet point: {}", now.textures, self.texture_names()));
        }
        memory.push(now);
    }

    /// Makes the window quiet, for the memory and textures measured at each checkpoint to compare: nothing
    /// runs (the check's run has finished and training is stopped; the 2-D lab's training, the engine's idle
    /// work, is paused here), and what the window legitimately keeps of earlier work is dropped with its
    /// textures: the panels' recorded runs, B, the grid or strip, the Forward process panel's images, the
    /// Train view's data preview and sample grids, the 2-D lab's particles and field (fresh panels replace
    /// them, as a user who closes them would see; the settings stay). What is left is what the window holds
    /// for good (the settings, the models in the picker, egui's memory of widgets) and what the engine keeps
    /// (its models, the data sets it has loaded, the 2-D lab's session): nothing that grows per run.
    fn quiet(&mut self) {
        self.log.push(self.current, "check: quiet point".into());
        drop_kept_work(self.harness.state_mut());
        // Frames for the engine to take the pause (and any event in flight to arrive and be dropped).
        for _ in 0..20 {
            self.step();
            std::thread::sleep(Duration::from_millis(5));
        }
        // The 2-D lab's measurements run on threads of their own and stop at their next question; what
        // one holds while it runs (hundreds of MiB for a solver bench) is not what the window keeps.
        let started = Instant::now();
        while common::thread_names().iter().any(|name| name.starts_with("lab2d-")) {
            if started.elapsed() > Duration::from_secs(60) {
                self.fail(&format!(
                    "a 2-D lab measurement still runs 60 s after its Stop: {:?}",
                    common::thread_names()
                ));
            }
            self.step();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// egui's allocated textures by name and count, for a failure's message.
    fn texture_names(&self) -> String {
        let manager = self.harness.ctx.tex_manager();
        let manager = manager.read();
        let mut names = std::collections::BTreeMap::<String, usize>::new();
        for (_, meta) in manager.allocated() {
            *names.entry(meta.name.clone()).or_default() += 1;
        }
        format!("{names:?}")
    }

    fn run(&mut self) {
        let mut memory = Vec::new();
        let started = Instant::now();
        // MONKEY_DUMP=1 prints each action as it is done, MONKEY_DUMP=2 also the widgets it sees after it.
        let dump = env_number("MONKEY_DUMP", 0u8);
        for i in 0..self.actions {
            self.current = i;
            CURRENT.store(i, Ordering::Relaxed);
            let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let line = self.act();
                if dump > 0 {
                    eprintln!("#{i} {line}");
                }
                if did_nothing(&line) {
                    self.idle_actions += 1;
                }
                self.log.push(i, line);
                self.step();
                if self.rng.random_bool(0.3) {
                    self.step();
                }
            }));
            if let Err(payload) = stepped {
                if payload.is::<MonkeyFailed>() {
                    std::panic::resume_unwind(payload);
                }
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                if self.log.last_index() != Some(i) {
                    self.log.push(i, "(the action itself panicked)".into());
                }
                self.fail(&format!("the window panicked: {message}\n{}", panics().join("\n")));
            }
            self.check_panics();
            self.observe();
            if dump > 1 {
                for w in self.widgets() {
                    eprintln!(
                        "    {:?} {:?} disabled {} value {:?} {:?} text {:?} at {:?}",
                        w.role, w.label, w.disabled, w.value, w.range, w.text, w.rect
                    );
                }
            }
            if (i + 1).is_multiple_of(CHECK_EVERY) {
                self.checkpoint(&mut memory);
            }
        }
        if !self.actions.is_multiple_of(CHECK_EVERY) || self.actions == 0 {
            self.checkpoint(&mut memory);
        }
        eprintln!(
            "monkey: seed {}, {} actions in {:.0} s; memory at the checkpoints: {memory:?}",
            self.seed,
            self.actions,
            started.elapsed().as_secs_f64()
        );
        let active = self.actions - self.idle_actions;
        let share = active as f64 / self.actions.max(1) as f64;
        eprintln!(
            "monkey: {active} of {} actions did something ({:.0} %); the slowest UI update took {:.0} ms (action #{})",
            self.actions,
            100.0 * share,
            self.slowest_step.0.as_secs_f64() * 1000.0,
            self.slowest_step.1
        );
        if share < MIN_ACTIVE_SHARE {
            self.fail(&format!(
                "only {active} of {} actions did something ({:.0} %, at least {:.0} % asked)",
                self.actions,
                100.0 * share,
                100.0 * MIN_ACTIVE_SHARE
            ));
        }
        // The live heap at the quiet points (see `quiet`): what the window and the engine hold for good,
        // measured exactly (no allocator slack). A run's frames or textures, a data set or a model kept per
        // run or per training start would add megabytes each, hundreds of times.
        if let (Some(first), Some(last)) = (memory.first(), memory.last())
            && last.live - first.live >= LIVE_GROWTH_MIB
        {
            self.fail(&format!(
                "the live heap grows by {:.1} MiB from the first quiet point to the last (less than \
                 {LIVE_GROWTH_MIB} MiB asked): {memory:?}",
                last.live - first.live
            ));
        }
        // Threads at the quiet points: the window's, the engine's and rayon's pool, the same number each
        // time (a thread started per run or per training start that never ends would add one each).
        // The batch parts' runners are a fixed set, kept once started (at most one per thread of the pool):
        // bounded on their own, and left out of the growth between quiet points.
        if let Some(most) = memory.iter().map(|m| m.runners).max()
            && most > rayon::current_num_threads()
        {
            self.fail(&format!(
                "{most} batch-part runners, more than the {} threads of the pool: {:?}",
                rayon::current_num_threads(),
                common::thread_names()
            ));
        }
        if let (Some(first), Some(last)) = (memory.first(), memory.last())
            && last.threads - last.runners > first.threads - first.runners + THREAD_GROWTH
        {
            self.fail(&format!(
                "threads (not counting the batch parts' runners) grow from {} at the first quiet point to {} at \
                 the last: {:?}",
                first.threads - first.runners,
                last.threads - last.runners,
                common::thread_names()
            ));
        }
        if let (Some(first), Some(last)) = (memory.first(), memory.last())
            && last.textures > first.textures + TEXTURE_GROWTH
        {
            self.fail(&format!(
                "egui's textures grow from {} at the first quiet point to {} at the last: {}",
                first.textures,
                last.textures,
                self.texture_names()
            ));
        }
        // The RSS, from the first checkpoint to the last, each measured at a quiet point (see `quiet`) after
        // malloc_trim. Beside the live heap's exact bound above it adds the allocator's fragmentation, which
        // malloc_trim cannot return, and memory outside Rust's allocator (glibc's arenas of the rayon and
        // engine threads): a loose bound that catches what grows per run or per training start, hundreds
        // of times per test. The end is the lowest of the last three checkpoints (1500 actions), so that
        // one checkpoint's fragmentation is not a leak (a leak stays).
        let end = memory.iter().rev().take(3).map(|m| m.rss).fold(f64::INFINITY, f64::min);
        if let Some(first) = memory.first()
            && end - first.rss > MEMORY_GROWTH_MIB
        {
            // The live heap tells a leak (it grows too) from the allocator's fragmentation (it does not).
            self.fail(&format!("the RSS grows by more than {MEMORY_GROWTH_MIB} MiB: {memory:?}"));
        }
        eprintln!("monkey: actions during which each was on screen: {:?}", self.sights);
        if !self.unnamed.is_empty() {
            // Reported, not failed: a finding for the window's code (tests/ui.rs's harnesses check names
            // only where they call `run`).
            eprintln!("monkey: input widgets without an accessible name:\n  {}", self.unnamed.join("\n  "));
        }
    }
}

/// How much the RSS may grow from the first checkpoint to the end (see the comment where it is checked).
const MEMORY_GROWTH_MIB: f64 = 300.0;

const SANDBOX: &str = "DIFFUSION_LAB_MONKEY_SANDBOX";

#[test]
fn monkey() {
    let Some(dir) = std::env::var_os(SANDBOX).map(PathBuf::from) else {
        // In a process of its own: its memory is its own, and its HOME and current directory are a fresh
        // folder, where anything the window writes lands.
        let sandbox = tempfile::tempdir().unwrap();
        fill_sandbox(sandbox.path());
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "monkey", "--nocapture", "--test-threads", "1"])
            .env(SANDBOX, sandbox.path())
            .env("HOME", sandbox.path())
            .env(diffusion_lab::data::FASHION_MNIST_DIR_ENV, sandbox.path().join("fashion-mnist"))
            // As the app's main() does: burn's implicit default device (where a resumed run's optimizer
            // state first lands) is the CPU backend, not a wgpu adapter.
            .env("BURN_DEVICE", "flex")
            // glibc's default of eight arenas per core fragments each on its own: over a long monkey the
            // RSS crept up by 100-300 MiB with a flat live heap (a CI run failed the bound on it). Two
            // arenas keep the RSS a measure of what is held (flat within 50 MiB over 6000 actions).
            .env("MALLOC_ARENA_MAX", "2")
            .current_dir(sandbox.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Its stdout is passed on line by line as it comes (to this process's own stdout, past the test
        // harness's capture, as when the child wrote there itself) and kept: the harness's summary line says
        // how many tests the child ran. Its stderr, where the monkey reports, goes straight through.
        let mut passed = None;
        if let Some(stdout) = child.stdout.take() {
            use std::io::{BufRead, Write};
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let _ = writeln!(std::io::stdout(), "{line}");
                if let Some(rest) = line.strip_prefix("test result: ok. ") {
                    passed = rest.split(' ').next().and_then(|n| n.parse::<usize>().ok());
                }
            }
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "the monkey failed (its output, with the seed and the actions, is above)");
        // A renamed test or a filter that matches nothing passes with 0 tests run.
        assert_eq!(passed, Some(1), "the monkey's process must run exactly one test (its output is above)");
        return;
    };
    record_panics();
    let seed = env_number("MONKEY_SEED", DEFAULT_SEED);
    let actions = env_number("MONKEY_ACTIONS", DEFAULT_ACTIONS);
    eprintln!("monkey: seed {seed}, {actions} actions (MONKEY_SEED, MONKEY_ACTIONS)");
    Monkey::new(seed, actions, &dir).run();
}
