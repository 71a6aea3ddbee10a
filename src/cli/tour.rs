//! `tour`: the guided tour of the diffusion story (`tour::STEPS`) from the command line. `--list` prints
//! one line per step; `--export DIR` writes the tour as a printable page (Markdown or HTML) with each
//! step's formula, story, plain line, the formula's numbers at the window's starting settings, what to look
//! at, the task, and a picture made by the app's own code (tour_pictures.rs).

use std::path::Path;
use std::time::Instant;

use super::tour_pictures::{Studio, TourPicture};
use super::*;
use diffusion_lab::diffusion::equation::number_text;
use diffusion_lab::diffusion::guidance::Guidance;
use diffusion_lab::model::denoise::DEFAULT_SAMPLER;
use diffusion_lab::tour::{self, Live, STEPS, Step, StepId};

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["list", "export"])))]
pub struct TourArgs {
    /// Print the steps of the tour, one line each: its number, title and formula.
    #[arg(long)]
    pub list: bool,
    /// Write the tour as a printable page into this folder (created if missing): tour.md (or tour.html) and
    /// a picture per step, pictures/NN-name.png, each made by the app's own code on the CPU with the
    /// built-in models (about two minutes on two cores). Existing files of those names are replaced.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// The page's format: markdown (tour.md) or html (tour.html, one self-contained page, print-friendly).
    #[arg(long, value_enum, default_value_t = PageFormat::Markdown, requires = "export")]
    pub format: PageFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFormat {
    Markdown,
    Html,
}

impl PageFormat {
    fn file_name(self) -> &'static str {
        match self {
            PageFormat::Markdown => "tour.md",
            PageFormat::Html => "tour.html",
        }
    }
}

/// The Forward process panel's t when the window starts (app/forward_ui.rs `ForwardPanel::new`).
pub(super) const WINDOW_T: usize = 500;
/// The Sampling step's own sampler: DDIM with η = 1 (as DDPM), 20 steps (the step's story says so).
pub(super) const SAMPLING_STEP_SAMPLER: Sampler =
    Sampler { method: Method::Ddim, steps: 20, spacing: Spacing::Trailing, eta: 1.0, ..DEFAULT_SAMPLER };
/// Which step of that run the page takes apart (1 = the first, from x_T): the middle one.
pub(super) const SAMPLING_STEP_SHOWN: usize = 10;

pub(super) fn tour(args: &TourArgs) -> anyhow::Result<()> {
    match &args.export {
        None => {
            for (i, step) in STEPS.iter().enumerate() {
                println!("{}", tour::list_line(i + 1, step));
            }
            Ok(())
        }
        Some(dir) => export(dir, args.format),
    }
}

/// The settings the window starts from (app/state.rs `Settings::default`, the Forward panel's t), which
/// the page's numbers are computed from.
pub(super) fn window_live() -> Live {
    Live {
        schedule: BetaSchedule::cosine(1000),
        t: WINDOW_T,
        sampler: DEFAULT_SAMPLER,
        run_step: None,
        guidance: Guidance::from(DEFAULT_GUIDANCE),
    }
}

/// The settings at step `id`: the window's, except where the step sets its own (the Schedule step starts
/// from a linear schedule whose β_end is too small; the Sampling step runs DDIM η = 1, 20 steps, and the
/// page shows its middle step).
pub(super) fn live_at(id: StepId) -> Live {
    let live = window_live();
    match id {
        StepId::Schedule => Live {
            schedule: BetaSchedule { beta_end: tour::SCHEDULE_START_BETA_END, ..BetaSchedule::linear(1000) },
            ..live
        },
        StepId::SamplingStep => {
            Live { sampler: SAMPLING_STEP_SAMPLER, run_step: Some(SAMPLING_STEP_SHOWN - 1), ..live }
        }
        _ => live,
    }
}

/// The settings `live` in words, for the line above a step's numbers.
fn settings_line(live: &Live) -> String {
    let s = &live.schedule;
    let schedule = match s.kind {
        ScheduleKind::Linear => format!("linear schedule (β_end = {}), T = {}", number_text(s.beta_end), s.steps),
        kind => format!("{} schedule, T = {}", kind.name(), s.steps),
    };
    format!("{schedule}, t = {}, sampler {}, w = {}", live.t, live.sampler.label(), number_text(live.guidance.scale))
}

/// Checks DIR before anything slow runs: not a file, creatable, writable. Returns the pictures' folder.
fn prepare_folder(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() && !dir.is_dir() {
        bail!("--export {}: this is a file, not a folder", dir.display());
    }
    let pictures = dir.join("pictures");
    std::fs::create_dir_all(&pictures)
        .with_context(|| format!("--export {}: cannot create the folder", pictures.display()))?;
    let probe = pictures.join(".tour-write-check");
    std::fs::write(&probe, b"")
        .with_context(|| format!("--export {}: cannot write into the folder", pictures.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("cannot remove {}", probe.display()))?;
    Ok(pictures)
}

/// `--export DIR`: every step's picture (one line each as it is written), then the page.
fn export(dir: &Path, format: PageFormat) -> anyhow::Result<()> {
    let pictures_dir = prepare_folder(dir)?;
    let started = Instant::now();
    let mut studio = Studio::new()?;
    let mut pictures = Vec::with_capacity(STEPS.len());
    for (i, step) in STEPS.iter().enumerate() {
        let made = Instant::now();
        let picture = studio.picture(step.id).with_context(|| format!("the picture of step {}", i + 1))?;
        let path = pictures_dir.join(file_name(i + 1, &picture));
        images::save_png(&path, &picture.picture, &[("Title".into(), format!("{}. {}", i + 1, step.title))])?;
        println!("wrote {} ({:.1} s)", path.display(), made.elapsed().as_secs_f64());
        pictures.push(picture);
    }
    let page = match format {
        PageFormat::Markdown => markdown(&pictures),
        PageFormat::Html => html(&pictures),
    };
    let path = dir.join(format.file_name());
    output::write_file(&path, page.as_bytes())?;
    println!("wrote {} ({} steps, {:.0} s in all)", path.display(), STEPS.len(), started.elapsed().as_secs_f64());
    Ok(())
}

/// "NN-name.png" of step `number`'s picture.
fn file_name(number: usize, picture: &TourPicture) -> String {
    format!("{number:02}-{}.png", picture.name)
}

/// One step's text as the page shows it, in both formats' order.
struct StepText {
    number: usize,
    step: &'static Step,
    settings: String,
    numbers: Vec<String>,
}

fn step_texts() -> Vec<StepText> {
    STEPS
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let live = live_at(step.id);
            StepText { number: i + 1, step, settings: settings_line(&live), numbers: tour::numbers(step.id, &live) }
        })
        .collect()
}

const INTRO: &str = "The story of diffusion models in fifteen steps, as the window's Tour tells it. Each step has its \
                     formula, the story in words, the formula's numbers at the settings the window starts from, the \
                     control of the window it talks about, a small task to try there, and a picture the app made \
                     with its own code and built-in models.";

fn markdown(pictures: &[TourPicture]) -> String {
    let mut page = format!("# The diffusion story: a guided tour\n\n{INTRO}\n");
    for (text, picture) in step_texts().iter().zip(pictures) {
        let step = text.step;
        page.push_str(&format!("\n## {}. {}\n\n```text\n{}\n```\n\n", text.number, step.title, step.formula));
        page.push_str(&format!("{}\n\n*{}*\n\n", step.story, step.plain));
        if !text.numbers.is_empty() {
            page.push_str(&format!("Numbers ({}):\n\n```text\n{}\n```\n\n", text.settings, text.numbers.join("\n")));
        }
        page.push_str(&format!("**Look at:** {}\n\n", step.look_at));
        if let Some(task) = &step.task {
            page.push_str(&format!("**Try this:** {} *Hint:* {}\n\n", task.ask, task.hint));
        }
        page.push_str(&format!(
            "![{}](pictures/{})\n\n*{}*\n",
            step.title,
            file_name(text.number, picture),
            picture.caption
        ));
    }
    page
}

/// `text` with HTML's special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:Georgia,serif;max-width:50em;margin:2em auto;padding:0 1em;line-height:1.45;\
                     color:#111}pre{background:#f4f4f4;padding:.6em;white-space:pre-wrap;font-size:.9em}\
                     img{max-width:100%;image-rendering:pixelated;display:block;margin:.5em 0}\
                     figcaption{font-style:italic;font-size:.9em}.plain{font-style:italic}\
                     @media print{body{margin:0;max-width:none}section{break-inside:avoid-page}pre{background:none;\
                     border:1px solid #999}}";

fn html(pictures: &[TourPicture]) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>The diffusion story: a guided \
         tour</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>The diffusion story: a guided tour</h1>\n<p>{}</p>\n",
        escape(INTRO)
    );
    for (text, picture) in step_texts().iter().zip(pictures) {
        let step = text.step;
        page.push_str(&format!(
            "<section>\n<h2>{}. {}</h2>\n<pre><code>{}</code></pre>\n<p>{}</p>\n<p class=\"plain\">{}</p>\n",
            text.number,
            escape(step.title),
            escape(step.formula),
            escape(step.story),
            escape(step.plain)
        ));
        if !text.numbers.is_empty() {
            page.push_str(&format!(
                "<p>Numbers ({}):</p>\n<pre><code>{}</code></pre>\n",
                escape(&text.settings),
                escape(&text.numbers.join("\n"))
            ));
        }
        page.push_str(&format!("<p><b>Look at:</b> {}</p>\n", escape(step.look_at)));
        if let Some(task) = &step.task {
            page.push_str(&format!(
                "<p><b>Try this:</b> {} <i>Hint:</i> {}</p>\n",
                escape(task.ask),
                escape(task.hint)
            ));
        }
        page.push_str(&format!(
            "<figure><img src=\"pictures/{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n",
            file_name(text.number, picture),
            escape(step.title),
            escape(&picture.caption)
        ));
        page.push_str("</section>\n");
    }
    page.push_str("</body>\n</html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page's numbers are `tour::numbers` of the settings the pictures use: the Schedule step's own
    /// linear start, the Sampling step's DDIM η = 1 middle step.
    #[test]
    fn each_step_has_its_own_settings() {
        let schedule = tour::numbers(StepId::Schedule, &live_at(StepId::Schedule));
        assert!(schedule[0].starts_with("linear schedule, T = 1000"), "{schedule:?}");
        let sampling = tour::numbers(StepId::SamplingStep, &live_at(StepId::SamplingStep));
        assert!(sampling[0].starts_with("step 10 of 20"), "{sampling:?}");
        let forward = tour::numbers(StepId::Forward, &live_at(StepId::Forward));
        assert!(forward[0].starts_with("t = 500"), "{forward:?}");
    }

    #[test]
    fn html_escapes_the_formulas() {
        assert_eq!(escape("a < b & c > \"d\""), "a &lt; b &amp; c &gt; &quot;d&quot;");
    }
}
