//! File dialogs (rfd), and what the window does where there are none.
//!
//! On Linux rfd shows a dialog through the XDG desktop portal (over the D-Bus session bus) or, failing
//! that, zenity. Without either it returns "no file" at once, exactly as if the user had cancelled, so the
//! window checks beforehand and, where no dialog can open, saves to a default folder and says so.

use std::path::{Path, PathBuf};

/// What the status bar says when a file has to be chosen and no dialog can open.
pub const NO_DIALOG: &str = "no file dialog is available on this desktop (it needs the XDG desktop portal or zenity)";

/// Whether rfd can show a file dialog here.
pub fn file_dialog_available() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let session_bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty());
    let zenity = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("zenity").is_file()));
    session_bus || zenity
}

/// Where exports go when no dialog can ask: ~/Pictures/diffusion-lab (or ./diffusion-lab-exports
/// without a home directory).
pub fn default_export_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Path::new(&home).join("Pictures").join("diffusion-lab"),
        _ => PathBuf::from("diffusion-lab-exports"),
    }
}

/// `dir/name`, or `dir/stem-2.ext`, `-3`... when that exists: a fallback save never overwrites.
pub fn unique_path(dir: &Path, name: &str) -> PathBuf {
    let candidate = dir.join(name);
    if !candidate.exists() {
        return candidate;
    }
    let path = Path::new(name);
    let stem = path.file_stem().map_or_else(|| name.to_string(), |s| s.to_string_lossy().into_owned());
    let extension = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    (2..).map(|k| dir.join(format!("{stem}-{k}{extension}"))).find(|p| !p.exists()).unwrap_or(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_path_never_names_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(unique_path(dir.path(), "a b.png"), dir.path().join("a b.png"));
        std::fs::write(dir.path().join("a b.png"), b"x").unwrap();
        assert_eq!(unique_path(dir.path(), "a b.png"), dir.path().join("a b-2.png"));
        std::fs::write(dir.path().join("a b-2.png"), b"x").unwrap();
        assert_eq!(unique_path(dir.path(), "a b.png"), dir.path().join("a b-3.png"));
    }
}
