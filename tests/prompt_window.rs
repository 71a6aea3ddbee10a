//! Text prompts in the window, through egui_kittest by accessible labels (issue 25): type a prompt, Generate,
//! click a word and see its attention overlay; an unknown word is named and Generate still works.

mod common;

use std::time::{Duration, Instant};

use common::texts_starting_with;
use diffusion_lab::app::LabApp;
use diffusion_lab::app::state::{Overlay, RunStatus, Settings};
use diffusion_lab::diffusion::Sampler;
use diffusion_lab::engine::{DeviceChoice, Engine};
use diffusion_lab::model::ModelId;
use eframe::egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

const TEXT_MODEL: &str = "Fashion-MNIST (text, latent UNet)";

fn step_until(harness: &mut Harness<'static, LabApp>, what: &str, done: impl Fn(&LabApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done(harness.state()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: run {:?}, status {:?}",
            harness.state().generate.run,
            harness.state().ctx.status
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.step();
}

fn finished(app: &LabApp) -> bool {
    matches!(app.generate.run, RunStatus::Finished { .. } | RunStatus::Failed(_))
}

fn harness() -> Harness<'static, LabApp> {
    let settings = Settings {
        model: ModelId::BuiltIn(TEXT_MODEL.into()),
        batch: 2,
        sampler: Sampler::ddim(6, 0.0),
        seed: 3,
        ..Settings::default()
    };
    let app = LabApp::new(Engine::spawn(DeviceChoice::Cpu, || {}), settings);
    let mut harness =
        Harness::builder().with_size([1280.0, 1000.0]).build_ui_state(|ui, app: &mut LabApp| app.ui(ui), app);
    step_until(&mut harness, "the text model loads", |app| {
        app.model_info().is_some_and(|m| m.config.text.is_some()) && app.ctx.models.device.is_some()
    });
    harness
}

/// Types `text` into the Prompt box as a user would.
fn type_prompt(harness: &mut Harness<'static, LabApp>, text: &str) {
    let prompt = harness.get_by_role_and_label(Role::TextInput, "Prompt");
    prompt.focus();
    prompt.type_text(text);
    harness.run_steps(3);
}

#[test]
fn type_a_prompt_generate_and_see_where_each_word_looked() {
    let mut harness = harness();
    type_prompt(&mut harness, "dark ankle boot");
    assert_eq!(harness.state().ctx.settings.prompt, "dark ankle boot");
    assert!(texts_starting_with(&harness, "'").is_empty(), "every word is known");
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", finished);
    {
        let app = harness.state();
        assert!(matches!(app.generate.run, RunStatus::Finished { cancelled: false, .. }), "{:?}", app.generate.run);
        let request = &app.generate.viewer.trajectory.as_ref().unwrap().request;
        assert_eq!(request.prompt.as_ref().map(|p| p.text.as_str()), Some("dark ankle boot"));
    }

    // The attention overlay, then a word clicked: its share is shown and its map drawn.
    harness.get_by_label("cross-attention").click();
    step_until(&mut harness, "the attention arrives", |app| {
        app.generate.viewer.step.attention_ready(app.generate.viewer.serial)
            && app.generate.viewer.step.overlay_digest.is_some()
    });
    assert_eq!(harness.state().ctx.settings.overlay, Overlay::Attention);
    let shares: Vec<f64> = ["<start> ", "dark ", "ankle ", "boot ", "padding "]
        .iter()
        .map(|word| {
            let shown: Vec<String> =
                texts_starting_with(&harness, word).into_iter().filter(|t| t.ends_with(" %")).collect();
            assert_eq!(shown.len(), 1, "one button for {word:?}: {shown:?}");
            shown[0][word.len()..].trim_end_matches(" %").trim().parse::<f64>().unwrap()
        })
        .collect();
    let total: f64 = shares.iter().sum();
    assert!((total - 100.0).abs() <= 3.0, "the shares sum to 100 % (each rounded): {shares:?}");
    let before = harness.state().generate.viewer.step.overlay_digest;
    let button = |harness: &Harness<'static, LabApp>, word: &str| {
        texts_starting_with(harness, word).into_iter().find(|t| t.ends_with(" %")).expect("the word's button")
    };
    let dark = button(&harness, "dark ");
    harness.get_by_label(&dark).click();
    harness.run_steps(3);
    assert_eq!(harness.state().ctx.settings.attention.token, 1, "'dark' is the token after the start token");
    let dark_map = harness.state().generate.viewer.step.overlay_digest;
    assert_ne!(dark_map, before, "the word's own map");
    let boot = button(&harness, "boot ");
    harness.get_by_label(&boot).click();
    harness.run_steps(3);
    assert_eq!(harness.state().ctx.settings.attention.token, 3);
    assert_ne!(harness.state().generate.viewer.step.overlay_digest, dark_map, "another word, another map");
}

#[test]
fn an_unknown_word_is_named_and_generate_still_works() {
    let mut harness = harness();
    type_prompt(&mut harness, "velvet sandal");
    // (A wrapped label is also found as its first line's text run: the whole message is the longest.)
    let messages = texts_starting_with(&harness, "'velvet' is not a word this model knows");
    let message = messages.iter().max_by_key(|m| m.len()).expect("the unknown word is named");
    assert!(message.contains("(read as <unk>); it knows: a, dark, light, small, large"), "{message}");
    assert!(message.ends_with("ankle, boot"), "{message}");
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "the run finishes", finished);
    let app = harness.state();
    assert!(matches!(app.generate.run, RunStatus::Finished { cancelled: false, .. }), "{:?}", app.generate.run);
}

/// Every text of the window containing `needle`.
fn texts_containing(harness: &Harness<'static, LabApp>, needle: &str) -> Vec<String> {
    use egui_kittest::kittest::{By, NodeT};
    let text = |n: &egui_kittest::kittest::AccessKitNode<'_>| n.label().or_else(|| n.value()).unwrap_or_default();
    harness
        .query_all(By::new().predicate(move |n| text(n).contains(needle)).include_labels())
        .map(|node| text(&node.accesskit_node()))
        .collect()
}

/// A prompt run continued from one of its steps ("Continue from here", issue 34): the branch panel and A's
/// and B's titles name the prompt that conditioned both runs, never the class setting the text model ignores
/// ("class 0", "y = 0").
#[test]
fn a_branch_of_a_prompt_run_is_captioned_by_its_prompt() {
    let mut harness = harness();
    type_prompt(&mut harness, "a dark large sneaker");
    harness.get_by_role_and_label(Role::Button, "Generate").click();
    step_until(&mut harness, "A finishes", finished);
    harness.get_by_role_and_label(Role::Slider, "Timestep").set_value_accesskit(3.0);
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "Continue from here").click();
    step_until(&mut harness, "the branch finishes", |app| {
        !app.is_running()
            && app.compare.queue.is_empty()
            && app.compare.viewer_b.trajectory.as_ref().is_some_and(|t| t.is_complete())
    });
    let b = harness.state().compare.viewer_b.trajectory.as_ref().unwrap();
    assert_eq!(b.request.branch.as_ref().map(|b| b.at_step), Some(3));
    assert_eq!(b.request.prompt.as_ref().map(|p| p.text.as_str()), Some("a dark large sneaker"), "B keeps A's prompt");

    // (A wrapped or multi-line label is also found as its lines' text runs: the whole text is the longest.)
    let whole = |needle: &str| {
        let texts = texts_containing(&harness, needle);
        texts.into_iter().max_by_key(String::len).unwrap_or_else(|| panic!("no text contains {needle:?}"))
    };
    let quoted = "\"a dark large sneaker\"";
    let b_title = whole("continued from A's step 3");
    assert!(b_title.contains(quoted), "B's title: {b_title}");
    let a_title = whole("A: Fashion-MNIST (text, latent UNet)");
    assert!(a_title.contains(quoted), "A's title: {a_title}");
    let formula = whole("x_t(B) = x_t(A)");
    assert!(formula.contains(&format!("y = {quoted}")), "{formula}");
    let parent = whole("Everything up to step 3 is A's");
    assert!(parent.contains(&format!("y = {quoted}")), "{parent}");
    for wrong in ["class 0", "y = 0", "class any"] {
        let shown = texts_containing(&harness, wrong);
        assert!(shown.is_empty(), "{wrong:?} captions a prompt run: {shown:?}");
    }
}
