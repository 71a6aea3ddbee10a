//! The command line, end to end: the real binary, its output and its exit codes.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

/// The longest any one command here may take, far beyond the slowest (`bench --json --quick`): a hung
/// binary fails the test instead of hanging it.
const COMMAND_LIMIT: Duration = Duration::from_secs(900);

fn diffusion_lab(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_diffusion-lab"));
    common::output_within(command.args(args), COMMAND_LIMIT, &format!("diffusion-lab {}", args.join(" ")))
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8 stderr")
}

#[test]
fn help_lists_the_subcommands() {
    let out = diffusion_lab(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("schedule"), "{text}");
    assert!(text.contains("Without a subcommand, diffusion-lab opens its window"), "{text}");
}

#[test]
fn schedule_json_alpha_bar_is_product_of_alphas() {
    let out = diffusion_lab(&["schedule", "--kind", "linear", "--timesteps", "1000", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    let alpha_bar: Vec<f64> = serde_json::from_value(json["alpha_bar"].clone()).unwrap();
    assert_eq!(alpha_bar.len(), 1000);
    let product: f64 = (0..1000).map(|i| 1.0 - (1e-4 + (0.02 - 1e-4) * i as f64 / 999.0)).product();
    let relative = (alpha_bar[999] - product).abs() / product;
    assert!(relative < 1e-6, "alpha_bar[999] = {} vs product {product}", alpha_bar[999]);
    assert_eq!(json["schedule"]["kind"], "linear");
    assert_eq!(json["t"][0], 1);
    for key in [
        "beta",
        "alpha",
        "sqrt_alpha_bar",
        "sqrt_one_minus_alpha_bar",
        "beta_tilde",
        "posterior_coef_x0",
        "posterior_coef_xt",
        "log_snr",
    ] {
        assert_eq!(json[key].as_array().map(|a| a.len()), Some(1000), "{key}");
    }
}

#[test]
fn schedule_prints_the_terminal_signal_and_warns_when_x_t_is_not_pure_noise() {
    let out = diffusion_lab(&["schedule", "--kind", "sigmoid", "--timesteps", "300"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("signal left at t = T: sqrt(ᾱ_T) = 0.219 (ᾱ_T = 0.0478), λ_T = -2.99"), "{stderr}");
    assert!(stderr.contains("warning: x_T is not pure noise") && stderr.contains("FD 56.1 with 78.0 %"), "{stderr}");
    assert!(stderr.contains("fix: --timesteps 477, or --beta-end 0.0317"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 301, "stdout stays the CSV table");

    let out = diffusion_lab(&["schedule", "--kind", "sigmoid", "--timesteps", "477"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("signal left at t = T") && !stderr.contains("warning"), "{stderr}");
}

#[test]
fn schedule_csv_has_a_row_per_timestep() {
    let out = diffusion_lab(&["schedule", "--kind", "cosine", "--timesteps", "50"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 51);
    assert!(lines[0].starts_with("t,beta,alpha,alpha_bar,"));
    let last: Vec<f64> = lines[50].split(',').map(|v| v.parse().unwrap()).collect();
    assert_eq!(last[0], 50.0);
    assert_eq!(last[1], 0.999, "cosine caps the last beta");
    // log-SNR is the last column and decreases.
    let log_snr: Vec<f64> = lines[1..].iter().map(|l| l.rsplit(',').next().unwrap().parse().unwrap()).collect();
    assert!(log_snr.windows(2).all(|w| w[1] < w[0]));
}

#[test]
fn bad_schedules_exit_non_zero_with_one_line() {
    for (args, needle) in [
        (
            vec!["schedule", "--kind", "linear", "--beta-start", "0.5", "--beta-end", "0.2"],
            "beta_start (0.5) must not be greater than beta_end (0.2)",
        ),
        (vec!["schedule", "--timesteps", "0"], "steps must be between 1 and 10000"),
        (vec!["schedule", "--beta-end", "1.5"], "beta_end must be in the open interval (0, 1)"),
        (vec!["schedule", "--beta-end", "NaN"], "beta_end must be a finite number"),
        (vec!["schedule", "--timesteps", "10000", "--beta-start", "0.3", "--beta-end", "0.9"], "terminal alpha_bar"),
    ] {
        let out = diffusion_lab(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn unknown_kind_is_rejected_by_the_parser() {
    let out = diffusion_lab(&["schedule", "--kind", "cubic"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("expected one of linear, cosine, quadratic, sigmoid"), "{}", stderr(&out));
}

#[test]
fn sample_with_the_built_in_model_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let out = dir.path().join(name);
        let args = [
            "sample",
            "--class",
            "7",
            "--n",
            "2",
            "--sampling-steps",
            "4",
            "--seed",
            "5",
            "--device",
            "cpu",
            "--out-dir",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(out.display().to_string());
        args.extend(["--grid".to_string(), dir.path().join(format!("{name}.png")).display().to_string()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = diffusion_lab(&refs);
        assert!(result.status.success(), "{}", stderr(&result));
        out
    };
    let (a, b) = (run("a"), run("b"));
    for name in ["00000-class7.png", "00001-class7.png"] {
        let (x, y) = (std::fs::read(a.join(name)).unwrap(), std::fs::read(b.join(name)).unwrap());
        assert_eq!(x, y, "{name}: same seed and settings, same pixels");
    }
    let grid = image::open(dir.path().join("a.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (2 * 28 + 2, 28), "two images side by side");
}

#[test]
fn sample_with_the_built_in_latent_model_decodes_to_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let grid_path = dir.path().join("latent.png");
    let grid = grid_path.display().to_string();
    let out = diffusion_lab(&[
        "sample",
        "--model",
        "latent",
        "--all-classes",
        "--n",
        "20",
        "--sampling-steps",
        "5",
        "--device",
        "cpu",
        "--grid",
        &grid,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let grid = image::open(&grid_path).unwrap();
    // Ten rows of two 28x28 images, 2-pixel gaps: pixels, not 7x7 latents.
    assert_eq!((grid.width(), grid.height()), (2 * 28 + 2, 10 * 28 + 9 * 2));
}

/// A latent checkpoint records the autoencoder it was trained with, and `sample` finds it there without
/// `--autoencoder`, as the window does; `--autoencoder` still overrides it, and where the recorded file is
/// gone the error names it and says what to pass.
#[test]
fn sample_finds_a_latent_checkpoints_autoencoder_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let autoencoder = dir.path().join("autoencoder.dlab");
    std::fs::write(&autoencoder, diffusion_lab::model::embedded::FASHION_AUTOENCODER).unwrap();
    let images = dir.path().join("images");
    for (class, level) in [("dark", 40u8), ("light", 210)] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        for i in 0..4u8 {
            image::GrayImage::from_pixel(28, 28, image::Luma([level + i]))
                .save(images.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let run = dir.path().join("run");
    let (ae, data, out) = (autoencoder.to_str().unwrap(), images.to_str().unwrap(), run.to_str().unwrap());
    let train = ["train", "--latent", "--autoencoder", ae, "--data", data, "--image-size", "28", "--out", out];
    let trained = diffusion_lab(&[&train[..], &["--channels", "16,32", "--batch-size", "4", "--steps", "2"]].concat());
    assert!(trained.status.success(), "{}", stderr(&trained));

    let model = run.join("checkpoint.dlab");
    let grid = dir.path().join("grid.png");
    let sample = |extra: &[&str]| {
        let args =
            ["sample", "--model", model.to_str().unwrap(), "--n", "2", "--sampling-steps", "2", "--device", "cpu"];
        diffusion_lab(&[&args[..], extra, &["--grid", grid.to_str().unwrap()]].concat())
    };
    let out = sample(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let picture = image::open(&grid).unwrap();
    assert_eq!((picture.width(), picture.height()), (2 * 28 + 2, 28), "decoded to pixels, not 7x7 latents");
    let from_header = std::fs::read(&grid).unwrap();

    // --autoencoder overrides the header: a file that is not there fails, named.
    let out = sample(&["--autoencoder", "/no/such/autoencoder.dlab"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot load the autoencoder /no/such/autoencoder.dlab"), "{}", stderr(&out));

    // The recorded file moved away: named, with what to do; given, it makes the same pictures.
    let moved = dir.path().join("moved.dlab");
    std::fs::rename(&autoencoder, &moved).unwrap();
    let out = sample(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(ae) && stderr(&out).contains("pass --autoencoder"), "{}", stderr(&out));
    let out = sample(&["--autoencoder", moved.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&grid).unwrap(), from_header);
}

#[test]
fn sample_rejects_bad_requests_with_one_line() {
    for (args, needle) in [
        (vec!["sample", "--class", "12", "--grid", "x.png"], "--class must be below 10"),
        (vec!["sample", "--n", "2"], "nothing to write"),
        (
            vec!["sample", "--model", "/no/such/model.dlab", "--grid", "x.png"],
            "cannot load the model /no/such/model.dlab",
        ),
        (
            vec!["sample", "--model", "latnet", "--grid", "x.png"],
            "no built-in model `latnet` (built in: fashion, latent, fashion-text)",
        ),
        (
            vec!["sample", "--model", "latent", "--prompt", "dark boot", "--grid", "x.png"],
            "this model is conditioned on classes, not prompts: use --class",
        ),
        (
            vec!["sample", "--model", "fashion-text", "--prompt", "a b c d e f g h i j k l", "--grid", "x.png"],
            "the prompt has 12 words; this model reads at most 11",
        ),
        (vec!["sample", "--sampling-steps", "0", "--grid", "x.png"], "DPM++ 2M steps must be between 1"),
        (
            vec!["sample", "--kind", "linear", "--beta-start", "0.5", "--beta-end", "0.1", "--grid", "x.png"],
            "beta_start (0.5)",
        ),
    ] {
        let out = diffusion_lab(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// The keys `bench --json` promises (README: Speed) and `benches/torch_reference.py` reads.
const BENCH_KEYS: [&str; 21] = [
    "schema",
    "device",
    "threads",
    "pixel_forward_b1_ms",
    "pixel_forward_b16_ms",
    "pixel_forward_b32_ms",
    "pixel_ddim50_w2_b16_plain_s",
    "pixel_ddim50_w2_b16_streamed_s",
    "pixel_ddim50_w2_b16_streaming_overhead_pct",
    "pixel_ddim50_w2_b16_gflop_per_s",
    "latent_ddim50_w2_b16_plain_s",
    "latent_ddim50_w2_b16_streamed_s",
    "latent_ddim50_w2_b16_streaming_overhead_pct",
    "latent_ddim50_w2_b16_gflop_per_s",
    "latent_ddpm1000_w2_b16_plain_s",
    "pixel_train_b64_images_per_s",
    "latent_train_b128_images_per_s",
    "pixel_parameters",
    "latent_parameters",
    "peak_rss_mib",
    "suite_seconds",
];

#[test]
fn bench_json_reports_every_key_without_a_data_set() {
    // One thread, as benches/torch_reference.py asks for a 1-thread PyTorch comparison.
    let out = diffusion_lab(&["bench", "--json", "--quick", "--device", "cpu", "--threads", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("stdout is one JSON object");
    assert_eq!(report["threads"], 1, "the suite ran on the pool --threads asked for");
    for key in BENCH_KEYS {
        assert!(report.get(key).is_some_and(|v| !v.is_null()), "missing {key}: {report}");
    }
    for key in BENCH_KEYS.iter().filter(|k| k.ends_with("_ms") || k.ends_with("_s") || k.ends_with("_per_s")) {
        let value = report[key].as_f64().unwrap();
        assert!(value.is_finite() && value > 0.0, "{key} = {value}");
    }
    assert_eq!(report["pixel_parameters"], 2_163_457);
    assert_eq!(report["latent_parameters"], 1_257_988);
}

#[test]
fn bench_refuses_zero_threads() {
    let out = diffusion_lab(&["bench", "--threads", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--threads must be at least 1"), "{}", stderr(&out));
}

#[test]
fn training_flags_that_would_divide_by_zero_or_panic_are_refused() {
    for args in [
        &["train", "--checkpoint-every", "0"][..],
        &["train", "--preview-every", "0"],
        &["train-autoencoder", "--checkpoint-every", "0"],
        &["train-autoencoder", "--preview-every", "0"],
    ] {
        let out = diffusion_lab(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("0 is not in 1.."), "{args:?}: {}", stderr(&out));
    }
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for i in 0..4 {
        image::GrayImage::from_pixel(8, 8, image::Luma([i * 60])).save(images.join(format!("{i}.png"))).unwrap();
    }
    let out_dir = dir.path().join("run");
    let out = diffusion_lab(&[
        "train",
        "--data",
        images.to_str().unwrap(),
        "--image-size",
        "8",
        "--channels",
        "30,60",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot be split into 8 GroupNorm groups"), "{}", stderr(&out));
}

#[test]
fn the_schedule_flag_is_timesteps_and_steps_is_not_misread() {
    let out = diffusion_lab(&["sample", "--steps", "20"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--steps"), "{}", stderr(&out));
    let out = diffusion_lab(&["schedule", "--timesteps", "20", "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 21, "a header and one row per timestep");
}

#[test]
fn sample_pngs_carry_settings_the_window_restores_to_the_same_pixels() {
    use diffusion_lab::run::generate::{RunHooks, run_generate};
    let dir = tempfile::tempdir().unwrap();
    let out = diffusion_lab(&[
        "sample",
        "--n",
        "3",
        "--class",
        "4",
        "--seed",
        "9",
        "--sampling-steps",
        "4",
        "--device",
        "cpu",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let path = dir.path().join("00001-class4.png");
    let request =
        diffusion_lab::run::png_settings::settings_from_png(&path).expect("the window reads sample's settings");
    assert_eq!((request.class, request.seed, request.batch), (Some(4), 9, 3));
    assert_eq!(request.model.label(), "Fashion-MNIST (pixel UNet)");

    // The restored request, run as the window runs it, gives the same image.
    let device = burn::prelude::Device::flex();
    let builtin = diffusion_lab::model::embedded::model_by_name(&request.model.label()).unwrap();
    let checkpoint = diffusion_lab::model::checkpoint::Checkpoint::from_bytes(builtin.unet).unwrap();
    let model = diffusion_lab::model::LoadedUnet::from_checkpoint(&checkpoint, &device).unwrap();
    let mut last = None;
    let mut emit = |frame: diffusion_lab::engine::Frame| last = Some(frame);
    let keep_going = || true;
    run_generate(&model, None, &request, &device, RunHooks { keep_going: &keep_going, stream: false, emit: &mut emit })
        .unwrap();
    let frame = last.unwrap();
    let pictures = diffusion_lab::images::pictures_from_batch(&frame.x_t, 3, 1, 28, 28);
    let written = image::open(&path).unwrap().to_luma8().into_raw();
    assert_eq!(pictures[1].pixels, written);
}

#[test]
fn a_cpu_run_without_a_runtime_dir_prints_no_alarming_noise() {
    let dir = tempfile::tempdir().unwrap();
    // Device auto: the GPU probe runs (Mesa's Vulkan drivers complain without XDG_RUNTIME_DIR).
    let mut command = Command::new(env!("CARGO_BIN_EXE_diffusion-lab"));
    command
        .args(["sample", "--n", "1", "--sampling-steps", "2", "--out-dir", dir.path().to_str().unwrap()])
        .env_remove("XDG_RUNTIME_DIR");
    let out = common::output_within(&mut command, COMMAND_LIMIT, "sample without XDG_RUNTIME_DIR");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(!text.to_lowercase().contains("error"), "{text}");
    assert!(text.contains("wrote 1 images"), "{text}");
}

/// `grid` writes one PNG: under the axis titles and value labels, each cell is exactly the image a plain
/// run of that cell's settings makes (same seed, so the same x_T), and the settings text lists every cell.
#[test]
fn grid_writes_labelled_cells_that_equal_plain_runs_of_their_settings() {
    use diffusion_lab::engine::{Frame, GenerateRequest};
    use diffusion_lab::images::{GridLabels, GridLayout, Picture, labelled_grid, scaled};
    use diffusion_lab::run::generate::{RunHooks, run_generate};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("grid.png");
    let args = [
        "grid",
        "--x",
        "guidance=0,1,4",
        "--y",
        "sampler=ddim,dpmpp-2m,euler-a",
        "--sampling-steps",
        "3",
        "--seed",
        "5",
        "--zoom",
        "2",
    ];
    let run = diffusion_lab(&[&args[..], &["--device", "cpu", "--out", out.to_str().unwrap()]].concat());
    assert!(run.status.success(), "{}", stderr(&run));

    let text = diffusion_lab::images::png_text(&out).unwrap();
    let settings: serde_json::Value = serde_json::from_str(&text[0].1).unwrap();
    let cells: Vec<GenerateRequest> = settings["grid"]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| serde_json::from_value(c["request"].clone()).unwrap())
        .collect();
    assert_eq!(cells.len(), 9);
    assert_eq!((cells[5].guidance, cells[5].sampler.method.name()), (4.0, "dpmpp-2m"));
    assert!(cells.iter().all(|c| c.seed == 5 && c.batch == 1 && c.sampler.steps == 3));

    // Each cell, run on its own through the engine's code.
    let checkpoint =
        diffusion_lab::model::checkpoint::Checkpoint::from_bytes(diffusion_lab::model::embedded::MODELS[0].unet)
            .unwrap();
    let device = burn::prelude::Device::flex();
    let model = diffusion_lab::model::LoadedUnet::from_checkpoint(&checkpoint, &device).unwrap();
    let expected: Vec<Option<Picture>> = cells
        .iter()
        .map(|request| {
            let mut last: Option<Frame> = None;
            let hooks = RunHooks { keep_going: &|| true, stream: false, emit: &mut |f| last = Some(f) };
            run_generate(&model, None, request, &device, hooks).unwrap();
            Some(scaled(&last.unwrap().pictures()[0], 2))
        })
        .collect();
    let labels = GridLabels {
        x_title: "guidance".into(),
        columns: vec!["0".into(), "1".into(), "4".into()],
        y_title: "sampler".into(),
        rows: vec!["ddim".into(), "dpmpp-2m".into(), "euler-a".into()],
    };
    let png = image::open(&out).unwrap().to_luma8();
    let layout = GridLayout::new(&expected, &labels, 4);
    assert_eq!((png.width() as usize, png.height() as usize), (layout.width, layout.height));
    let (w, h, _) = layout.cell;
    for (i, cell) in expected.iter().enumerate() {
        let (x0, y0) = layout.cell_origin(i);
        let got: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x0 + x, y0 + y)))
            .map(|(x, y)| png.get_pixel(x as u32, y as u32)[0])
            .collect();
        assert_eq!(got, cell.as_ref().unwrap().pixels, "cell {i}");
    }
    // Everything outside the cells is the labels: the same pixels as the labels drawn alone.
    let blank = Picture { width: w, height: h, channels: 1, pixels: vec![255; w * h] };
    let labels_only = labelled_grid(&vec![Some(blank); 9], &labels, 4);
    let inside = |x: usize, y: usize| {
        (0..9).any(|i| {
            let (x0, y0) = layout.cell_origin(i);
            (x0..x0 + w).contains(&x) && (y0..y0 + h).contains(&y)
        })
    };
    let mut ink = 0;
    for y in 0..layout.height {
        for x in (0..layout.width).filter(|x| !inside(*x, y)) {
            let want = labels_only.pixels[y * layout.width + x];
            assert_eq!(png.get_pixel(x as u32, y as u32)[0], want, "label pixel ({x}, {y})");
            ink += usize::from(want == 0);
        }
    }
    assert!(ink > 300, "the titles and eight value labels are drawn ({ink} dark pixels)");

    // A bad axis is refused before any cell runs, with the reason.
    let bad = diffusion_lab(&["grid", "--x", "guidance=0,-1", "--y", "steps=2", "--out", out.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("not a number of at least 0"), "{}", stderr(&bad));
    let same = diffusion_lab(&["grid", "--x", "steps=2,3", "--y", "steps=2", "--out", out.to_str().unwrap()]);
    assert!(stderr(&same).contains("pick two different settings"), "{}", stderr(&same));
}

/// `sample --init-image`: at strength 0 the picture comes back unchanged; with `--mask` the unmasked pixels
/// stay exactly; the PNG's settings carry the picture, so the window can restore the run.
#[test]
fn sample_from_an_init_image_and_a_mask() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let run = diffusion_lab(&[
        "sample",
        "--n",
        "1",
        "--class",
        "0",
        "--sampling-steps",
        "4",
        "--device",
        "cpu",
        "--out-dir",
        source.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let picture = source.join("00000-class0.png");
    let original = image::open(&picture).unwrap().to_luma8();

    let kept = dir.path().join("kept");
    let args = [
        "sample",
        "--init-image",
        picture.to_str().unwrap(),
        "--strength",
        "0",
        "--n",
        "1",
        "--class",
        "7",
        "--device",
        "cpu",
    ];
    let run = diffusion_lab(&[&args[..], &["--out-dir", kept.to_str().unwrap()]].concat());
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(image::open(kept.join("00000-class7.png")).unwrap().to_luma8(), original);

    let mask = dir.path().join("mask.png");
    image::GrayImage::from_fn(28, 28, |_, y| image::Luma([if y < 10 { 255 } else { 0 }])).save(&mask).unwrap();
    let painted = dir.path().join("painted");
    let args = [
        "sample",
        "--init-image",
        picture.to_str().unwrap(),
        "--mask",
        mask.to_str().unwrap(),
        "--strength",
        "1",
        "--n",
        "2",
        "--class",
        "7",
    ];
    let run = diffusion_lab(
        &[&args[..], &["--sampling-steps", "6", "--device", "cpu", "--out-dir", painted.to_str().unwrap()]].concat(),
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let result = image::open(painted.join("00001-class7.png")).unwrap().to_luma8();
    for (x, y, pixel) in result.enumerate_pixels() {
        if y >= 10 {
            assert_eq!(pixel, original.get_pixel(x, y), "({x}, {y}) is outside the mask");
        }
    }
    let request = diffusion_lab::run::png_settings::settings_from_png(&painted.join("00001-class7.png")).unwrap();
    let init = request.init.expect("the settings carry the picture");
    assert_eq!((init.strength, init.pixels.len(), init.mask.map(|m| m.len())), (1.0, 784, Some(784)));

    let bad = diffusion_lab(&["sample", "--init-image", "/no/such.png", "--grid", "x.png"]);
    assert!(!bad.status.success() && stderr(&bad).contains("/no/such.png"), "{}", stderr(&bad));
    let bad = diffusion_lab(&[
        "sample",
        "--init-image",
        picture.to_str().unwrap(),
        "--all-classes",
        "--n",
        "10",
        "--grid",
        "x.png",
    ]);
    assert!(stderr(&bad).contains("one class"), "{}", stderr(&bad));
}

/// `interpolate`: the strip's ends are the two plain runs (seeds: x_T slerped; classes: τ_θ mixed), and
/// the frames between differ from both.
#[test]
fn interpolation_strips_end_at_the_two_plain_runs() {
    use diffusion_lab::engine::GenerateRequest;
    use diffusion_lab::run::generate::{RunHooks, run_generate};
    let dir = tempfile::tempdir().unwrap();
    let checkpoint =
        diffusion_lab::model::checkpoint::Checkpoint::from_bytes(diffusion_lab::model::embedded::MODELS[0].unet)
            .unwrap();
    let device = burn::prelude::Device::flex();
    let model = diffusion_lab::model::LoadedUnet::from_checkpoint(&checkpoint, &device).unwrap();
    let plain = |request: &GenerateRequest| {
        let mut last = None;
        let hooks = RunHooks { keep_going: &|| true, stream: false, emit: &mut |f| last = Some(f) };
        run_generate(&model, None, request, &device, hooks).unwrap();
        last.unwrap().x_t.to_vec()
    };
    for (flag, value) in [("--seeds", "3,8"), ("--classes", "0,7")] {
        let out = dir.path().join("strip.png");
        let gif = dir.path().join("strip.gif");
        let args = [
            "interpolate",
            flag,
            value,
            "--frames",
            "4",
            "--sampling-steps",
            "5",
            "--seed",
            "3",
            "--class",
            "0",
            "--device",
            "cpu",
        ];
        let run =
            diffusion_lab(&[&args[..], &["--out", out.to_str().unwrap(), "--gif", gif.to_str().unwrap()]].concat());
        assert!(run.status.success(), "{}", stderr(&run));
        assert!(std::fs::read(&gif).unwrap().starts_with(b"GIF89a"));
        let text = diffusion_lab::images::png_text(&out).unwrap();
        let settings: serde_json::Value = serde_json::from_str(&text[0].1).unwrap();
        let frames: Vec<GenerateRequest> = serde_json::from_value(settings["interpolation"].clone()).unwrap();
        assert_eq!(frames.len(), 4);
        let results: Vec<Vec<f32>> = frames.iter().map(plain).collect();
        let (start, end) = (GenerateRequest { interpolate: None, ..frames[0].clone() }, frames[3].clone());
        let end = match flag {
            "--seeds" => GenerateRequest { seed: 8, interpolate: None, ..end },
            _ => GenerateRequest { class: Some(7), interpolate: None, ..end },
        };
        assert_eq!(results[0], plain(&start), "{flag}: u = 0 is the first plain run");
        assert_eq!(results[3], plain(&end), "{flag}: u = 1 is the second plain run");
        assert!(results[1] != results[0] && results[1] != results[3], "{flag}: in between differs from both");
    }
    let bad = diffusion_lab(&["interpolate", "--classes", "0,12", "--out", "x.png"]);
    assert!(stderr(&bad).contains("class 12"), "{}", stderr(&bad));
    let bad = diffusion_lab(&["interpolate", "--seeds", "3", "--out", "x.png"]);
    assert!(stderr(&bad).contains("two numbers"), "{}", stderr(&bad));
}

/// `eval --edits` on the shipped fixture: at strength 0 nothing moves; at strength 1 the results are plain
/// samples of the target class.
#[test]
fn eval_edits_measures_image_to_image_towards_another_class() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist");
    let out = diffusion_lab(&["eval", "--edits", "0,1", "--n", "6", "--fashion-mnist-dir", fixture.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with("| 0") || l.starts_with("| 1"))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!((rows[0][4].as_str(), rows[0][5].as_str()), ("0.000", "0.000"), "strength 0 keeps every pixel: {text}");
    assert_eq!(rows[0][2], "0.0 %", "unchanged images are not judged as the next class: {text}");
    assert!(rows[1][4].parse::<f64>().unwrap() > 0.2, "strength 1 replaces the image: {text}");
}

/// `eval --nll` on the shipped fixture, for both built-in models: the bound is its three terms' sum, the
/// table and the CSV hold every evaluated t, and a bad stride is refused with the reason.
#[test]
fn eval_nll_prints_the_bound_and_its_terms() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist");
    let dir = tempfile::tempdir().unwrap();
    for model in ["fashion", "latent"] {
        let csv = dir.path().join(format!("{model}.csv"));
        let out = diffusion_lab(&[
            "eval",
            "--nll",
            "--model",
            model,
            "--n",
            "4",
            "--stride",
            "100",
            "--fashion-mnist-dir",
            fixture.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let number_after = |line: &str, key: &str| -> f64 {
            let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
            rest.split_whitespace().next().unwrap().parse().unwrap()
        };
        let first = text.lines().next().unwrap();
        let total = number_after(first, " wide): ");
        let terms = text.lines().nth(1).unwrap();
        let sum = number_after(terms, "L_T (prior) ")
            + number_after(terms, "Σ L_(t-1) ")
            + number_after(terms, "L_0 (decoder) ");
        // Bits of 8-bit pixels are positive; a density of continuous latents can exceed 1 (negative bits).
        assert!(total.is_finite() && (model == "latent" || total > 0.0), "{model}: {text}");
        assert!((total - sum).abs() < 2e-3, "{model}: {total} is not the sum of its terms {sum}: {text}");
        let unit = if model == "fashion" { "bits per pixel" } else { "bits per latent dimension" };
        assert!(first.contains(unit), "{model}: {first}");
        let rows = std::fs::read_to_string(&csv).unwrap();
        // The header, t = 1 and one t per stratum of 2..=1000 (one wide near the ends, up to 100 between).
        let strata = diffusion_lab::eval::nll::evaluated_steps(1000, 100, 11).len();
        assert_eq!(rows.lines().count(), 1 + strata, "{model}: {rows}");
        assert!(first.contains(&format!("{strata} of the t evaluated")), "{first}");
        assert!(rows.lines().nth(1).unwrap().starts_with("1,"), "{rows}");
    }
    // The loss by noise level: a row per bin of λ, and near pure noise (x_t ≈ ε) far below nearly clean.
    let out = diffusion_lab(&["eval", "--loss-by-level", "--n", "4", "--fashion-mnist-dir", fixture.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            Some((cells.first()?.parse().ok()?, cells.get(2)?.parse().ok()?))
        })
        .collect();
    assert_eq!(rows.len(), 15, "{text}");
    assert!(rows[0].1 < rows[rows.len() - 1].1, "{text}");
    let out = diffusion_lab(&["eval", "--nll", "--stride", "0", "--fashion-mnist-dir", fixture.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--stride must be at least 1"), "{}", stderr(&out));
}

/// Resuming a run on data with more classes than its model learns is refused with the reason (it used to
/// panic inside the class embedding; found by tests/monkey.rs), and the run's checkpoint is left as it was.
#[test]
fn resuming_on_data_with_more_classes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Labelled folders: one sub-folder a class.
    let folder = |name: &str, classes: &[&str]| {
        let images = dir.path().join(name);
        for (k, class) in classes.iter().enumerate() {
            std::fs::create_dir_all(images.join(class)).unwrap();
            for i in 0..3 {
                let picture = image::GrayImage::from_pixel(16, 16, image::Luma([40 + 60 * k as u8 + i * 5]));
                picture.save(images.join(class).join(format!("{i}.png"))).unwrap();
            }
        }
        images
    };
    let (two, three) = (folder("two classes", &["a", "b"]), folder("three classes", &["a", "b", "c"]));
    let run = dir.path().join("run");
    let run_arg = run.to_str().unwrap();
    let train = |data: &std::path::Path, more: &[&str]| {
        let mut args = vec!["train", "--data", data.to_str().unwrap(), "--image-size", "16", "--out", run_arg];
        args.extend(["--channels", "16,32", "--batch-size", "4", "--steps", "4", "--checkpoint-every", "2"]);
        args.extend(more);
        diffusion_lab(&args)
    };
    let out = train(&two, &["--max-steps-now", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let checkpoint = std::fs::read(run.join("checkpoint.dlab")).unwrap();
    let out = train(&three, &["--resume"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("the data has 3 classes but the model learns 2"), "{}", stderr(&out));
    assert_eq!(std::fs::read(run.join("checkpoint.dlab")).unwrap(), checkpoint, "the run is left as it was");
    // The same data resumes.
    let out = train(&two, &["--resume"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn explain_writes_a_step_figure_and_prints_the_steps_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("step.png");
    let out = diffusion_lab(&[
        "explain",
        "--class",
        "9",
        "--seed",
        "3",
        "--step",
        "10",
        "--device",
        "cpu",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("Step 10 of 20: x_{t'} = (σ_{t'}/σ_t) x_t"), "DPM++ 2M's form: {text}");
    // The numbers are the schedule's at the step's t.
    let request = diffusion_lab::run::png_settings::settings_from_png(&path).expect("the figure carries its run");
    let schedule = request.schedule.build().unwrap();
    let t: usize = text.split("t = ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let shown: f64 = text.split("ᾱ_t = ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!((shown - schedule.alpha_bar[t - 1]).abs() < 1e-4, "ᾱ_t at t = {t}: {shown}");
    let figure = image::open(&path).unwrap();
    assert!(figure.width() > 11 * 28 * 4, "a row of term pictures: {}", figure.width());

    let out = diffusion_lab(&["explain", "--step", "21", "--device", "cpu", "--out", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--step must be between 1 and 20"), "{}", stderr(&out));
    let out =
        diffusion_lab(&["explain", "--guidance-interval", "2,-3", "--device", "cpu", "--out", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("from low to high"), "{}", stderr(&out));
}

#[test]
fn sample_from_a_png_continues_its_run_from_a_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let sampler = ["--sampler", "euler-a", "--sampling-steps", "6", "--seed", "4", "--class", "2"];
    let out = diffusion_lab(&[&["sample", "--n", "2", "--grid", &path("parent.png")][..], &sampler[..]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing changed (a stochastic sampler, the parent's seed): the parent's own images.
    let out = diffusion_lab(&["sample", "--from", &path("parent.png"), "--at-step", "3", "--grid", &path("same.png")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("from step 3"), "{}", stderr(&out));
    let pixels = |name: &str| image::open(dir.path().join(name)).unwrap().to_luma8().into_raw();
    assert_eq!(pixels("same.png"), pixels("parent.png"), "an unchanged branch reproduces its parent");
    // Another class from step 3, and the branch's settings (parent and step) in its PNG.
    let out = diffusion_lab(&[
        "sample",
        "--from",
        &path("parent.png"),
        "--at-step",
        "3",
        "--class",
        "7",
        "--grid",
        &path("boot.png"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(pixels("boot.png"), pixels("parent.png"));
    let branch = diffusion_lab::run::png_settings::settings_from_png(&dir.path().join("boot.png")).unwrap();
    let parent = diffusion_lab::run::png_settings::settings_from_png(&dir.path().join("parent.png")).unwrap();
    assert_eq!(branch.class, Some(7));
    let continued = branch.branch.expect("a branch");
    assert_eq!((continued.at_step, *continued.parent), (3, parent));
    // Bad steps and settings are refused with the reason.
    let out = diffusion_lab(&["sample", "--from", &path("parent.png"), "--at-step", "6", "--grid", &path("x.png")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not before the end of its run, which has 6 steps"), "{}", stderr(&out));
    let out = diffusion_lab(&["sample", "--at-step", "2", "--grid", &path("x.png")]);
    assert!(!out.status.success(), "--at-step needs --from");
}

#[test]
fn decided_measures_when_the_class_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("decided.csv");
    let rows = dir.path().join("rows.png");
    let out = diffusion_lab(&[
        "decided",
        "--model",
        "latent",
        "--runs",
        "3",
        "--continuations",
        "3",
        "--points",
        "3",
        "--sampling-steps",
        "6",
        "--csv",
        csv.to_str().unwrap(),
        "--rows",
        rows.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("step,t,log_snr,same_class,spread,from_original,deterministic\n"), "{text}");
    // The last column says whether any step after the row draws noise: DDIM's last step into the clean
    // image does not, so continuations from step 5 of 6 are the run's end by construction.
    let deterministic: Vec<&str> = text.lines().skip(1).filter_map(|l| l.rsplit(',').next()).collect();
    assert_eq!(deterministic, ["false", "false", "true"], "{text}");
    let table: Vec<Vec<f64>> =
        text.lines().skip(1).map(|l| l.split(',').take(6).map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(table.iter().map(|r| r[0]).collect::<Vec<_>>(), vec![0.0, 2.0, 5.0], "steps 0, 2 and 5 of 6");
    for row in &table {
        assert!((0.0..=1.0).contains(&row[3]) && (0.0..=1.0).contains(&row[4]), "{row:?}");
    }
    assert!(table[0][4] > table[2][4], "continuations from x_T spread more than from the last step: {table:?}");
    assert!(stdout(&out).contains("same class"), "{}", stdout(&out));
    assert!(stdout(&out).contains("deterministic: no noise after this step"), "{}", stdout(&out));
    assert!(image::open(&rows).unwrap().width() > 4 * 28);
    // A deterministic sampler cannot make different continuations: refused with the reason.
    let out = diffusion_lab(&["decided", "--model", "latent", "--eta", "0", "--runs", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is deterministic"), "{}", stderr(&out));
}

/// `decided --branch-class`: the runs keep their class (a pullover), the continuations ask for a sneaker;
/// from x_T none ends as the run's own pullover. A class the model lacks is refused in one line.
#[test]
fn decided_branches_ask_for_the_branch_class() {
    let args = ["decided", "--model", "fashion", "--class", "2", "--guidance", "3", "--runs", "2"];
    let rest = ["--continuations", "2", "--points", "2", "--sampling-steps", "6", "--branch-class"];
    let out = diffusion_lab(&[&args[..], &rest[..], &["7"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("asking for class 7"), "{}", stderr(&out));
    let first = stdout(&out).lines().nth(1).unwrap().to_string();
    let same: f64 = first.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(same, 0.0, "from x_T, continuations asking for a sneaker do not end as the pullover: {first}");
    let out = diffusion_lab(&[&args[..], &rest[..], &["10"]].concat());
    assert!(!out.status.success());
    assert_eq!(stderr(&out).trim(), "error: --branch-class must be below 10, got 10");
}

/// `train --captions` on a folder with a caption beside each image makes a text model whose vocabulary is the
/// captions' words; it samples from a prompt, naming a word it does not know; a folder without captions (and
/// not Fashion-MNIST) is refused with what to do.
#[test]
fn train_captions_from_a_folder_then_sample_a_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    for i in 0..6u8 {
        let dark = i % 2 == 0;
        let picture = image::GrayImage::from_pixel(16, 16, image::Luma([if dark { 30 } else { 220 } + i]));
        picture.save(images.join(format!("{i}.png"))).unwrap();
        let caption = if dark { "a dark square" } else { "a light square" };
        std::fs::write(images.join(format!("{i}.txt")), caption).unwrap();
    }
    let run = dir.path().join("run");
    let train = |data: &std::path::Path, out: &std::path::Path| {
        let mut args = vec!["train", "--captions", "--data", data.to_str().unwrap(), "--image-size", "16"];
        args.extend(["--out", out.to_str().unwrap(), "--channels", "16,32", "--batch-size", "4", "--steps", "4"]);
        diffusion_lab(&args)
    };
    let out = train(&images, &run);
    assert!(out.status.success(), "{}", stderr(&out));
    let checkpoint = diffusion_lab::model::checkpoint::Checkpoint::read(&run.join("checkpoint.dlab")).unwrap();
    let config: diffusion_lab::model::UNetConfig = serde_json::from_value(checkpoint.header.config.clone()).unwrap();
    let text = config.text.expect("a text model");
    assert_eq!(
        text.vocabulary(),
        Ok(diffusion_lab::text::tokenizer::Vocabulary::from_words(["a", "dark", "square", "light"]))
    );
    let grid = dir.path().join("dark.png");
    let model = run.join("checkpoint.dlab");
    let args = ["sample", "--model", model.to_str().unwrap(), "--prompt", "a dark velvet square", "--n", "2"];
    let out = diffusion_lab(&[&args[..], &["--sampling-steps", "3", "--grid", grid.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("'velvet' is not a word this model knows (read as <unk>); it knows: a, dark, square, light")
    );
    let request = diffusion_lab::run::png_settings::settings_from_png(&grid).unwrap();
    assert_eq!(request.prompt.map(|p| p.text), Some("a dark velvet square".into()));

    for i in 0..6 {
        std::fs::remove_file(images.join(format!("{i}.txt"))).unwrap();
    }
    let out = train(&images, &dir.path().join("no captions"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no captions for these images: put a .txt file beside each image"),
        "{}",
        stderr(&out)
    );
}

/// `eval --nll --ode` on a tiny model and the shipped fixture: the bound (as `--nll` prints it) and the
/// likelihood under the probability-flow ODE side by side with their standard errors, the Heun steps checked
/// against the adaptive solver, each image's two numbers in the CSV; --ode without --nll, a step count of 0
/// and --ode-steps without --ode refused in one line each.
#[test]
fn eval_nll_ode_prints_the_bound_beside_the_ode_likelihood() {
    let fixture = common::fashion_mnist_fixture();
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_unet_file(dir.path());
    let csv = dir.path().join("ode.csv");
    let out = diffusion_lab(&[
        "eval",
        "--nll",
        "--ode",
        "--model",
        model.to_str().unwrap(),
        "--n",
        "3",
        "--stride",
        "100",
        "--ode-steps",
        "3",
        "--ode-check",
        "1",
        "--fashion-mnist-dir",
        fixture.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let row = |start: &str| -> (f64, f64) {
        let line = text.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("{start} in {text}"));
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        (cells[1].parse().unwrap(), cells[2].parse().unwrap())
    };
    let (bound, bound_se) = row("| variational bound");
    let (ode, ode_se) = row("| probability-flow ODE");
    assert!(bound > 0.0 && ode > 0.0 && ode.is_finite(), "{text}");
    assert!(bound_se > 0.0 && ode_se > 0.0, "three different images: {text}");
    assert!(text.contains("bits per pixel of the 8-bit images"), "{text}");
    assert!(text.contains("ODE check on 1 images: Heun (3 steps, 6 evaluations)"), "{text}");
    // The per-image bounds average to the bound `--nll` prints on its first line.
    let first = text.lines().next().unwrap();
    let total: f64 = first.rsplit(" wide): ").next().unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!((total - bound).abs() < 1e-3, "{total} against {bound}: {text}");
    let rows: Vec<Vec<f64>> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let mean_ode = rows.iter().map(|r| r[3]).sum::<f64>() / 3.0;
    assert!((mean_ode - ode).abs() < 1e-3, "{mean_ode} against {ode}");
    for (args, says) in [
        (&["eval", "--ode"][..], "--ode computes the ODE likelihood beside the bound: give it with --nll"),
        (&["eval", "--nll", "--ode", "--ode-steps", "0"][..], "--ode-steps must be at least 1"),
        (&["eval", "--nll", "--ode-steps", "5"][..], "--ode-steps and --ode-check go with --nll --ode"),
    ] {
        let out = diffusion_lab(&[args, &["--fashion-mnist-dir", fixture.to_str().unwrap()]].concat());
        assert!(!out.status.success(), "{args:?}");
        let error = stderr(&out);
        assert!(error.contains(says) && error.trim().lines().count() == 1, "{args:?}: {error}");
    }
}
