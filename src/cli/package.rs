//! `package-files` (hidden from help): the files a desktop package installs beside the binary, made by the app
//! itself so they cannot drift from it: man pages from the clap definitions (clap_mangen), shell completions
//! (clap_complete), and the icon, drawn from a denoising run of the built-in pixel model. Their output is
//! committed in assets/packaging/ (cargo-deb packs files, it runs nothing), and `tests/packaging.rs` checks
//! that the committed copies match what this command writes.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, CommandFactory};
use diffusion_lab::APP_ID;
use diffusion_lab::engine::ComputeDevice;
use diffusion_lab::model::denoise::{DEFAULT_GUIDANCE, DEFAULT_SAMPLER};
use diffusion_lab::run::generate::{Frame, GenerateRequest, RunHooks, run_generate};
use diffusion_lab::run::models::ResolvedModel;

use super::Cli;

#[derive(Args, Debug)]
pub struct PackageFilesArgs {
    /// The folder to write into (created if missing): man/, completions/ and icons/hicolor/SIZE/apps/.
    #[arg(long)]
    pub out: PathBuf,
    /// Leave out the icons (drawing them samples the built-in pixel model, a few seconds).
    #[arg(long)]
    pub no_icons: bool,
}

/// The icon sizes desktops look up in the hicolor theme (16-48 for menus and panels, 64-256 for launchers
/// and app grids, 512 for HiDPI and software centres).
pub const ICON_SIZES: [u32; 8] = [16, 24, 32, 48, 64, 128, 256, 512];

/// The icon's run: an ankle boot (class 9), seed 7, with the app's default sampler and guidance.
const ICON_CLASS: usize = 9;
const ICON_SEED: u64 = 7;
/// The step whose x_t fills the noisy corner: early enough to be mostly noise, late enough to show the boot
/// starting to form (step 6 of DPM++ 2M's 20 Karras steps is at λ ≈ -5).
const ICON_NOISY_STEP: usize = 6;

pub fn package_files(args: &PackageFilesArgs) -> anyhow::Result<()> {
    let written = write_package_files(&args.out, !args.no_icons)?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

/// Writes every generated file under `out`; returns their paths.
pub fn write_package_files(out: &Path, icons: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut write = |relative: PathBuf, bytes: &[u8]| -> anyhow::Result<()> {
        let path = out.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
        Ok(())
    };

    for (name, page) in man_pages()? {
        write(Path::new("man").join(name), &page)?;
    }
    for (name, script) in completions() {
        write(Path::new("completions").join(name), &script)?;
    }
    if icons {
        let (noisy, clean) = icon_frames()?;
        for size in ICON_SIZES {
            let png = icon_png(&noisy, &clean, size)?;
            let folder = Path::new("icons/hicolor").join(format!("{size}x{size}")).join("apps");
            write(folder.join(format!("{APP_ID}.png")), &png)?;
        }
    }
    Ok(written)
}

/// `diffusion-lab.1` for the whole program and `diffusion-lab-SUBCOMMAND.1` for each visible subcommand, as
/// git does, so `man diffusion-lab-sample` has every flag of `sample`.
fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    // As clap_mangen::generate_to does, in memory: after build() each subcommand's display name is
    // "diffusion-lab-NAME", which names its page and its title.
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let commands = std::iter::once(&cli).chain(cli.get_subcommands().filter(|s| !s.is_hide_set()));
    commands
        .map(|command| {
            let man = clap_mangen::Man::new(command.clone());
            let mut page = Vec::new();
            man.render(&mut page).with_context(|| format!("cannot render the man page of {}", command.get_name()))?;
            Ok((man.get_filename(), page))
        })
        .collect()
}

/// The completion scripts under the names bash-completion, zsh and fish load them by.
fn completions() -> Vec<(String, Vec<u8>)> {
    use clap_complete::Shell;
    [(Shell::Bash, "diffusion-lab"), (Shell::Zsh, "_diffusion-lab"), (Shell::Fish, "diffusion-lab.fish")]
        .into_iter()
        .map(|(shell, file)| {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "diffusion-lab", &mut script);
            (file.to_string(), script)
        })
        .collect()
}

/// x_t at [`ICON_NOISY_STEP`] and the finished x_0 of the icon's run, 28x28 values in [-1, 1] (x_t beyond):
/// a run of the built-in pixel model as the window runs it, streamed, keeping those two frames.
fn icon_frames() -> anyhow::Result<(Vec<f32>, Vec<f32>)> {
    let device = ComputeDevice::cpu().device;
    let resolved = ResolvedModel::named("fashion", None)?;
    let model = resolved.load(&device)?.unet;
    let request = GenerateRequest {
        model: resolved.id.clone(),
        schedule: resolved.training_schedule(),
        sampler: DEFAULT_SAMPLER,
        seed: ICON_SEED,
        batch: 1,
        class: Some(ICON_CLASS),
        prompt: None,
        guidance: DEFAULT_GUIDANCE,
        guidance_interval: None,
        guidance_method: Default::default(),
        init: None,
        interpolate: None,
        branch: None,
    };
    let (mut noisy, mut clean) = (None, None);
    let mut emit = |frame: Frame| {
        if frame.index == ICON_NOISY_STEP {
            noisy = Some(frame.x_t.to_vec());
        }
        clean = Some(frame.x_t.to_vec());
    };
    run_generate(&model, None, &request, &device, RunHooks { keep_going: &|| true, stream: true, emit: &mut emit })?;
    let noisy = noisy.context("the icon's run ended before its noisy step")?;
    Ok((noisy, clean.context("the icon's run ended without an image")?))
}

/// The icon at `size` pixels as PNG: a rounded square in which the run's image turns from its noisy x_t (top
/// left) into the finished x_0 (bottom right) along the diagonal, the app's story in one picture. Drawn at
/// 1024 pixels with hard 28x28 cells, then filtered down, so every size is the same drawing.
fn icon_png(noisy: &[f32], clean: &[f32], size: u32) -> anyhow::Result<Vec<u8>> {
    const DRAW: u32 = 1024;
    const BACKGROUND: [f32; 3] = [38.0, 42.0, 88.0];
    const INK: [f32; 3] = [255.0, 238.0, 205.0];
    let cells = (noisy.len() as f64).sqrt() as usize;
    let unit = |v: f32| ((v + 1.0) / 2.0).clamp(0.0, 1.0);
    let smoothstep = |lo: f32, hi: f32, x: f32| {
        let t = ((x - lo) / (hi - lo)).clamp(0.0, 1.0);
        t * t * (3.0 - 2.0 * t)
    };
    let (inset, radius) = (DRAW as f32 * 0.03, DRAW as f32 * 0.2);
    let (art_from, art_size) = (DRAW as f32 * 0.11, DRAW as f32 * 0.78);
    let big = image::RgbaImage::from_fn(DRAW, DRAW, |x, y| {
        let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
        // Signed distance to the rounded square: anti-aliased edge, transparent outside.
        let half = DRAW as f32 / 2.0 - inset;
        let (qx, qy) =
            ((px - DRAW as f32 / 2.0).abs() - (half - radius), (py - DRAW as f32 / 2.0).abs() - (half - radius));
        let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt() + qx.max(qy).min(0.0) - radius;
        let alpha = (0.5 - outside).clamp(0.0, 1.0);
        let (u, v) = ((px - art_from) / art_size, (py - art_from) / art_size);
        let value = if (0.0..1.0).contains(&u) && (0.0..1.0).contains(&v) {
            let (i, j) = ((v * cells as f32) as usize, (u * cells as f32) as usize);
            let along = (i + j) as f32 / (2 * (cells - 1)) as f32;
            let w = smoothstep(0.3, 0.7, along);
            (1.0 - w) * unit(noisy[i * cells + j]) + w * unit(clean[i * cells + j])
        } else {
            0.0
        };
        let rgb = |c: usize| (BACKGROUND[c] + (INK[c] - BACKGROUND[c]) * value).round() as u8;
        image::Rgba([rgb(0), rgb(1), rgb(2), (255.0 * alpha).round() as u8])
    });
    let icon = image::imageops::resize(&big, size, size, image::imageops::FilterType::Lanczos3);
    let mut png = Vec::new();
    icon.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).context("cannot encode the icon")?;
    Ok(png)
}
