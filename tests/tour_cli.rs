//! `diffusion-lab tour`, end to end through the built binary: the list of steps, the exported page (every
//! step's title, every picture it references a real PNG), and one clear line for bad input. Bare-machine
//! safe: Fashion-MNIST is pointed away, so the forward process starts from a sample of the built-in model.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use diffusion_lab::tour::STEPS;

/// Far beyond the export's measured half minute on two cores: a hung binary fails the test instead.
const COMMAND_LIMIT: Duration = Duration::from_secs(900);

fn tour(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_diffusion-lab"));
    command.arg("tour").args(args).env("DIFFUSION_LAB_FASHION_MNIST_DIR", "/nonexistent/fashion-mnist");
    common::output_within(&mut command, COMMAND_LIMIT, &format!("diffusion-lab tour {}", args.join(" ")))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

/// What each topic of the story looks like in its step's list line (title or formula).
const TOPICS: [(&str, &str); 12] = [
    ("forward process", "the forward process"),
    ("schedule", "schedule"),
    ("posterior", "q(x_{t-1} | x_t, x_0)"),
    ("loss", "l = e_{t, x_0, ε}"),
    ("sampling step", "one sampling step"),
    ("sampler", "the sampler"),
    ("cross-attention", "cross-attention"),
    ("guidance", "guidance"),
    ("decided", "decided"),
    ("latent", "latent diffusion"),
    ("prompts", "text prompts"),
    ("2-D lab", "the 2-d lab"),
];

#[test]
fn list_prints_one_numbered_line_per_step_covering_the_story() {
    let out = tour(&["--list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 15, "{stdout}");
    for (i, (line, step)) in lines.iter().zip(STEPS.iter()).enumerate() {
        assert!(line.trim_start().starts_with(&format!("{}.", i + 1)), "{line}");
        assert!(line.contains(step.title) && line.contains(step.formula), "{line}");
    }
    let lower = stdout.to_lowercase();
    for (topic, marker) in TOPICS {
        assert!(lower.contains(marker), "the list does not cover {topic}:\n{stdout}");
    }
}

/// Every `pictures/NN-name.png` the page names, checked to exist and to decode as a PNG.
fn check_pictures(dir: &Path, page: &str, opening: &str, closing: char) -> usize {
    let mut count = 0;
    for part in page.split(opening).skip(1) {
        let name = &part[..part.find(closing).expect("a closed reference")];
        assert!(name.starts_with("pictures/") && name.ends_with(".png"), "{name}");
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let picture = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .unwrap_or_else(|e| panic!("{name} is not a valid PNG: {e}"));
        assert!(picture.width() > 20 && picture.height() > 20, "{name}");
        count += 1;
    }
    count
}

#[test]
fn export_writes_a_page_with_every_step_and_its_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tour");
    let out = tour(&["--export", folder.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // One line per picture written, then the page.
    assert_eq!(stdout.lines().filter(|l| l.starts_with("wrote ") && l.contains(".png")).count(), 15, "{stdout}");
    let page = std::fs::read_to_string(folder.join("tour.md")).unwrap();
    for (i, step) in STEPS.iter().enumerate() {
        assert!(page.contains(&format!("## {}. {}", i + 1, step.title)), "{}", step.title);
        assert!(page.contains(step.formula) && page.contains(step.plain), "{}", step.title);
        if let Some(task) = &step.task {
            assert!(page.contains(task.hint), "{}", step.title);
        }
    }
    assert_eq!(check_pictures(&folder, &page, "](", ')'), 15);
    // No data set here: the forward process says where its x_0 came from.
    assert!(page.contains("a sample of the built-in pixel model"), "{page}");
    // The numbers are the window's starting settings' (cosine, t = 500), the schedule step's own start.
    assert!(page.contains("t = 500:  ᾱ_t = 0.4938"), "{page}");
    assert!(page.contains("linear schedule, T = 1000:  β_1 = 1.000e-4,  β_T = 0.0040"), "{page}");
}

#[test]
fn export_as_html_is_one_page_with_its_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let out = tour(&["--export", dir.path().to_str().unwrap(), "--format", "html"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(dir.path().join("tour.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("@media print"), "{page}");
    assert_eq!(check_pictures(dir.path(), &page, "<img src=\"", '"'), 15);
    assert!(!dir.path().join("tour.md").exists());
    // Formulas are escaped text, not markup.
    assert!(page.contains("E_{t, x_0, ε} || ε - ε_θ"), "{page}");
}

/// A failure: non-zero, and one line on stderr that says `what`.
fn assert_one_line_error(out: &Output, what: &str) {
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains(what), "{stderr}");
    assert!(stderr.lines().filter(|l| l.starts_with("error")).count() == 1, "{stderr}");
}

#[test]
fn bad_input_is_one_clear_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    assert_one_line_error(&tour(&["--export", file.to_str().unwrap()]), "is a file, not a folder");
    // A folder that cannot be made (below a file).
    let below = file.join("tour");
    assert_one_line_error(&tour(&["--export", below.to_str().unwrap()]), "cannot create the folder");
    let folder = dir.path().join("out");
    let out = tour(&["--export", folder.to_str().unwrap(), "--format", "pdf"]);
    assert_one_line_error(&out, "invalid value 'pdf'");
    // Neither a list nor an export asked for.
    assert_one_line_error(&tour(&[]), "--list");
    // Nothing was written anywhere: the file is untouched, no folder appeared.
    assert_eq!(std::fs::read(&file).unwrap(), b"not a folder");
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);
}
