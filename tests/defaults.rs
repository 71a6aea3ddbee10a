//! One source for each default: `train --help`, the Train view's settings and `TrainConfig` read the same
//! training defaults (src/train/defaults.rs), the Train view differing only by its named overrides; the
//! sampler flags of every subcommand that samples default to `DEFAULT_SAMPLER`.

use std::collections::BTreeMap;
use std::process::Command;
use std::str::FromStr;

use diffusion_lab::app::state::Settings;
use diffusion_lab::app::train_ui::TrainSettings;
use diffusion_lab::model::denoise::DEFAULT_SAMPLER;
use diffusion_lab::train::ddpm::TrainConfig;
use diffusion_lab::train::defaults::{TRAIN_DEFAULTS, WINDOW_DEFAULTS};
use diffusion_lab::train::training::TrainingOptions;

/// The `[default: …]` of each flag of `diffusion-lab SUBCOMMAND --help`, by the flag's name without `--`.
fn help_defaults(subcommand: &str) -> BTreeMap<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_diffusion-lab")).args([subcommand, "--help"]).output().unwrap();
    assert!(output.status.success(), "{subcommand} --help: {}", String::from_utf8_lossy(&output.stderr));
    let help = String::from_utf8(output.stdout).unwrap();
    let mut defaults = BTreeMap::new();
    let mut flag = None;
    for line in help.lines() {
        // A flag's line (`  -o, --out <OUT>`) is indented less than its description's lines.
        let indent = line.len() - line.trim_start().len();
        if indent <= 6 && line.trim_start().starts_with('-') {
            flag =
                line.split_whitespace().find(|w| w.starts_with("--")).map(|w| w[2..].trim_end_matches(',').to_string());
        }
        if let (Some(flag), Some(at)) = (&flag, line.find("[default: ")) {
            let value = &line[at + "[default: ".len()..];
            defaults.insert(flag.clone(), value[..value.find(']').expect("a default ends with ]")].to_string());
        }
    }
    defaults
}

/// The default of `--flag`, parsed.
fn default_of<T: FromStr>(defaults: &BTreeMap<String, String>, flag: &str) -> T {
    let text = defaults.get(flag).unwrap_or_else(|| panic!("--{flag} shows no default in {defaults:?}"));
    text.parse().unwrap_or_else(|_| panic!("--{flag}'s default {text:?} does not parse"))
}

fn list(channels: Vec<usize>) -> String {
    channels.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

#[test]
fn train_help_the_train_view_and_train_config_read_the_same_defaults() {
    let help = help_defaults("train");
    let cli = TrainingOptions {
        out: default_of::<String>(&help, "out").into(),
        steps: default_of(&help, "steps"),
        batch_size: default_of(&help, "batch-size"),
        learning_rate: default_of(&help, "learning-rate"),
        channels: None,
        autoencoder: None,
        seed: default_of(&help, "seed"),
        checkpoint_every: default_of(&help, "checkpoint-every"),
        preview_every: default_of(&help, "preview-every"),
        export: None,
        captions: false,
        objective: None,
        weighting: None,
        quality_every: default_of(&help, "quality-every"),
        quality_samples: default_of(&help, "quality-samples"),
    };
    let d = TRAIN_DEFAULTS;
    assert_eq!(
        (cli.steps, cli.batch_size, cli.learning_rate, cli.seed, cli.checkpoint_every, cli.preview_every),
        (d.steps, d.batch_size, d.learning_rate, d.seed, d.checkpoint_every, d.preview_every),
        "train --help against TRAIN_DEFAULTS"
    );
    let channels = format!("{} on pixels, {} on latents", list(d.size.channels(false)), list(d.size.channels(true)));
    assert_eq!(help["channels"], channels, "train --help's channels against TRAIN_DEFAULTS.size");

    // TrainConfig's defaults are the same, and a run of `train`'s defaults trains with exactly them (the
    // EMA, the warm-up and the rest that no flag sets included).
    let config = TrainConfig::new();
    assert_eq!(
        (config.steps, config.batch_size, config.learning_rate, config.seed),
        (cli.steps, cli.batch_size, cli.learning_rate, cli.seed),
        "TrainConfig::new() against train --help"
    );
    assert_eq!(
        (config.ema_decay, config.weight_decay, config.grad_clip, config.label_dropout),
        (d.ema_decay, d.weight_decay, d.grad_clip, d.label_dropout),
        "TrainConfig::new() against TRAIN_DEFAULTS"
    );
    assert_eq!((config.log_snr_min, config.log_snr_max), (d.log_snr_min, d.log_snr_max));
    assert_eq!(config.warmup_steps, TrainConfig::warmup_for(config.steps), "the default warm-up follows the rule");
    assert_eq!(cli.train_config(), config, "a run of train's defaults trains with TrainConfig's defaults");

    // The Train view: the window starts from `Settings::default()`; what it shares with `train` is the same,
    // what it overrides is WINDOW_DEFAULTS.
    let window = Settings::default().train;
    assert_eq!(window, TrainSettings::default());
    let w = WINDOW_DEFAULTS;
    assert_eq!((window.batch_size, window.seed), (cli.batch_size, cli.seed), "the Train view against train --help");
    assert_eq!(
        (window.steps, window.learning_rate, window.preset, window.checkpoint_every, window.preview_every),
        (w.steps, w.learning_rate, w.size, w.checkpoint_every, w.preview_every),
        "the Train view against its overrides (WINDOW_DEFAULTS)"
    );
    let options = window.run_options();
    assert_eq!(options.channels, Some(w.size.channels(false)));
    assert_eq!(
        options.train_config(),
        TrainConfig::new().with_run_steps(w.steps).with_learning_rate(w.learning_rate),
        "the Train view's run trains with TrainConfig's defaults but for its overrides"
    );
    assert_eq!(options.train_config().warmup_steps, w.steps / 10, "a 2000-step run warms up over its first tenth");
}

#[test]
fn train_autoencoder_help_reads_the_autoencoder_configs_defaults() {
    use diffusion_lab::model::autoencoder::AutoencoderConfig;
    use diffusion_lab::train::autoencoder::AutoencoderTrainConfig;
    let help = help_defaults("train-autoencoder");
    let config = AutoencoderTrainConfig::new();
    assert_eq!(default_of::<u64>(&help, "steps"), config.steps);
    assert_eq!(default_of::<usize>(&help, "batch-size"), config.batch_size);
    assert_eq!(default_of::<u64>(&help, "adversarial-start"), config.adversarial_start);
    assert_eq!(default_of::<usize>(&help, "latent-channels"), AutoencoderConfig::new().latent_channels);
}

/// `decided` is left out on purpose: it needs a sampler that draws noise (DDIM with η = 1 by default).
#[test]
fn every_subcommand_that_samples_defaults_to_the_default_sampler() {
    for subcommand in ["sample", "grid", "explain", "interpolate", "lab2d", "bench"] {
        let help = help_defaults(subcommand);
        let sampler = format!("{}, with {} spacing", DEFAULT_SAMPLER.method.name(), DEFAULT_SAMPLER.spacing.name());
        assert!(help["sampler"].starts_with(&sampler), "{subcommand} --sampler: {}", help["sampler"]);
        let spacing = format!("{} for the default sampler", DEFAULT_SAMPLER.spacing.name());
        assert!(help["spacing"].starts_with(&spacing), "{subcommand} --spacing: {}", help["spacing"]);
        assert_eq!(
            default_of::<usize>(&help, "sampling-steps"),
            DEFAULT_SAMPLER.steps,
            "{subcommand} --sampling-steps"
        );
        assert_eq!(default_of::<f64>(&help, "eta"), DEFAULT_SAMPLER.eta, "{subcommand} --eta");
    }
}
