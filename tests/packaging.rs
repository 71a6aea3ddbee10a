//! The files the Debian package installs beside the binary (assets/packaging/): generated ones match what
//! `diffusion-lab package-files` writes today, and the desktop entry, metainfo, icons and Cargo.toml's
//! cargo-deb asset list agree on the app's id. (`.ci/check-deb.sh` checks the built package itself.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use diffusion_lab::APP_ID;

fn packaging_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/packaging")
}

/// Every file under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut entries = Vec::new();
    common::walk(dir, Path::new(""), &mut entries);
    let mut files: Vec<PathBuf> = entries.into_iter().filter(|(_, is_dir)| !is_dir).map(|(path, _)| path).collect();
    files.sort();
    files
}

#[test]
fn committed_package_files_match_what_the_binary_generates() {
    let fresh = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_diffusion-lab"));
    command.args(["package-files", "--out"]).arg(fresh.path());
    let out = common::output_within(&mut command, Duration::from_secs(600), "diffusion-lab package-files");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let generated = files_under(fresh.path());
    let committed: Vec<PathBuf> = files_under(&packaging_dir())
        .into_iter()
        .filter(|p| ["man", "completions", "icons"].iter().any(|top| p.starts_with(top)))
        .collect();
    let regenerate = "regenerate with `cargo run --release -- package-files --out assets/packaging` and commit";
    assert_eq!(generated, committed, "the generated files differ from assets/packaging: {regenerate}");
    assert!(generated.iter().any(|p| p.ends_with("diffusion-lab.1")), "{generated:?}");
    assert!(generated.iter().any(|p| p.ends_with("diffusion-lab-sample.1")), "{generated:?}");
    assert!(!generated.iter().any(|p| p.to_string_lossy().contains("package-files")), "the hidden command has a page");

    for relative in &generated {
        let (new, old) = (
            std::fs::read(fresh.path().join(relative)).unwrap(),
            std::fs::read(packaging_dir().join(relative)).unwrap(),
        );
        if relative.extension().is_some_and(|e| e == "png") {
            // The icon comes from a sampling run, whose last bits may differ between CPUs: compare pixels.
            let (new, old) =
                (image::load_from_memory(&new).unwrap().to_rgba8(), image::load_from_memory(&old).unwrap().to_rgba8());
            assert_eq!(new.dimensions(), old.dimensions(), "{}", relative.display());
            let size: u32 = relative
                .components()
                .nth(2)
                .unwrap()
                .as_os_str()
                .to_str()
                .unwrap()
                .split('x')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(new.dimensions(), (size, size), "{}", relative.display());
            let diffs: Vec<u32> = new.as_raw().iter().zip(old.as_raw()).map(|(a, b)| a.abs_diff(*b) as u32).collect();
            let (max, mean) = (*diffs.iter().max().unwrap(), diffs.iter().sum::<u32>() as f64 / diffs.len() as f64);
            assert!(max <= 24 && mean < 1.0, "{}: max {max}, mean {mean}: {regenerate}", relative.display());
        } else {
            assert!(new == old, "{} is out of date: {regenerate}", relative.display());
        }
    }
}

#[test]
fn desktop_entry_metainfo_and_icons_share_the_app_id() {
    let dir = packaging_dir();
    let desktop = std::fs::read_to_string(dir.join(format!("{APP_ID}.desktop"))).unwrap();
    assert!(desktop.lines().any(|l| l == format!("Icon={APP_ID}")), "{desktop}");
    assert!(desktop.lines().any(|l| l == format!("StartupWMClass={APP_ID}")), "{desktop}");
    assert!(desktop.lines().any(|l| l == "Exec=diffusion-lab"), "{desktop}");
    let metainfo = std::fs::read_to_string(dir.join(format!("{APP_ID}.metainfo.xml"))).unwrap();
    assert!(metainfo.contains(&format!("<id>{APP_ID}</id>")), "{metainfo}");
    assert!(metainfo.contains(&format!("<launchable type=\"desktop-id\">{APP_ID}.desktop</launchable>")));
    assert!(
        metainfo.contains(&format!("<release version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "no release entry for this version"
    );
    for size in [16, 32, 48, 64, 128, 256] {
        let icon = dir.join(format!("icons/hicolor/{size}x{size}/apps/{APP_ID}.png"));
        let picture = image::open(&icon).unwrap_or_else(|e| panic!("{}: {e}", icon.display()));
        assert_eq!((picture.width(), picture.height()), (size, size));
    }
}

#[test]
fn cargo_deb_assets_cover_every_packaging_file() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let start = manifest.find("[package.metadata.deb]").expect("Cargo.toml has cargo-deb metadata");
    let deb = &manifest[start..];
    let assets = &deb[deb.find("assets = [").expect("an asset list")..];
    let assets = &assets[..assets.find("\n]").unwrap()];
    let sources: Vec<String> = assets
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[\""))
        .map(|l| l[..l.find('"').unwrap()].to_string())
        .collect();
    assert!(sources.iter().any(|s| s == "target/release/diffusion-lab"), "{sources:?}");
    for relative in files_under(&packaging_dir()) {
        let path = format!("assets/packaging/{}", relative.display());
        let covered = sources.iter().any(|source| glob_matches(source, &path));
        assert!(covered, "{path} is not installed by the package (Cargo.toml, [package.metadata.deb] assets)");
    }
}

/// cargo-deb's asset globs as used here: `*` stands for one path segment or part of one.
fn glob_matches(pattern: &str, path: &str) -> bool {
    let (pattern, path): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    pattern.len() == path.len()
        && pattern.iter().zip(&path).all(|(p, s)| match p.split_once('*') {
            None => p == s,
            Some((head, tail)) => s.len() >= head.len() + tail.len() && s.starts_with(head) && s.ends_with(tail),
        })
}
