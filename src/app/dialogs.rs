//! File dialogs (rfd), and what the window does where there are none.
//!
//! Every dialog opens on a thread of its own ([`Dialogs::pick_in_background`],
//! [`Dialogs::save_in_background`]), so the window keeps drawing while it is up; what the user chose comes
//! back as a [`FileEvent`] on [`Dialogs`]' channel, which the window drains every frame.
//!
//! On Linux rfd shows a dialog through the XDG desktop portal (over the D-Bus session bus) or, failing
//! that, zenity. Without either it returns "no file" at once, exactly as if the user had cancelled, so the
//! window checks beforehand and, where no dialog can open, saves to a default folder and says so.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};

use eframe::egui;

/// What the status bar says when a file has to be chosen and no dialog can open.
pub const NO_DIALOG: &str = "no file dialog is available on this desktop (it needs the XDG desktop portal or zenity)";

/// Something a background file dialog or writer reports back to the UI thread.
pub enum FileEvent {
    Saved(String),
    Failed(String),
    SettingsLoaded(Box<crate::engine::GenerateRequest>, String),
    ForwardImagePicked(PathBuf),
    CheckpointPicked(PathBuf),
    TrainFolderPicked(super::train_ui::FolderTarget, PathBuf),
}

/// What a dialog asks for.
#[derive(Clone, Copy, Debug)]
pub enum Pick {
    /// A file of this kind: the filter's name and its extensions.
    File(&'static str, &'static [&'static str]),
    Folder,
}

/// The window's file dialogs: whether they can open here, where saves go when they cannot, and the
/// channel their results come back on.
pub struct Dialogs {
    /// Whether file dialogs can open here ([`file_dialog_available`]); without them exports go to
    /// `export_dir` and the status bar says where.
    pub available: bool,
    pub export_dir: PathBuf,
    events: (Sender<FileEvent>, Receiver<FileEvent>),
}

impl Default for Dialogs {
    fn default() -> Self {
        Self::new()
    }
}

impl Dialogs {
    pub fn new() -> Self {
        Self { available: file_dialog_available(), export_dir: default_export_dir(), events: channel() }
    }

    /// A sender for results that arrive from elsewhere than a dialog (tests, drops).
    pub fn sender(&self) -> Sender<FileEvent> {
        self.events.0.clone()
    }

    /// The results that have arrived since the last call.
    pub fn drain(&self) -> Vec<FileEvent> {
        self.events.1.try_iter().collect()
    }

    /// Opens a dialog for `pick` on a thread of its own; once the user has chosen, `chosen` turns the path
    /// into the event the window handles. Without dialogs it returns the message for the status line.
    /// `what` completes "cannot choose …" in that message.
    pub fn pick_in_background(
        &self,
        ctx: &egui::Context,
        pick: Pick,
        what: &str,
        chosen: impl FnOnce(PathBuf) -> FileEvent + Send + 'static,
    ) -> Result<(), String> {
        if !self.available {
            return Err(format!("{NO_DIALOG}: cannot choose {what}"));
        }
        let events = self.sender();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let dialog = rfd::FileDialog::new();
            let path = match pick {
                Pick::File(name, extensions) => dialog.add_filter(name, extensions).pick_file(),
                Pick::Folder => dialog.pick_folder(),
            };
            // None: cancelled, nothing to do and nothing lost.
            if let Some(path) = path {
                let _ = events.send(chosen(path));
                ctx.request_repaint();
            }
        });
        Ok(())
    }

    /// Asks where to save `name` (a dialog on a thread of its own; without one, a new name in the default
    /// folder), then runs `write` there and reports the outcome as a [`FileEvent`].
    pub fn save_in_background<E: std::fmt::Display>(
        &self,
        ctx: &egui::Context,
        name: String,
        (extension, filter): (&'static str, &'static str),
        write: impl FnOnce(&Path) -> Result<(), E> + Send + 'static,
    ) {
        let events = self.sender();
        let fallback = (!self.available).then(|| self.export_dir.clone());
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let (path, note) = match fallback {
                // No dialog can ask: the default folder, under a name that overwrites nothing.
                Some(dir) => {
                    if let Err(e) = std::fs::create_dir_all(&dir) {
                        let _ = events.send(FileEvent::Failed(format!(
                            "{NO_DIALOG}, and the default folder {} cannot be created: {e}",
                            dir.display()
                        )));
                        ctx.request_repaint();
                        return;
                    }
                    (unique_path(&dir, &name), " (no file dialog here: saved to the default folder)")
                }
                None => {
                    match rfd::FileDialog::new().set_file_name(&name).add_filter(filter, &[extension]).save_file() {
                        Some(path) => (path, ""),
                        None => return, // Cancelled: nothing to do, nothing lost.
                    }
                }
            };
            let _ = events.send(match write(&path) {
                Ok(()) => FileEvent::Saved(format!("{}{note}", path.display())),
                Err(e) => FileEvent::Failed(format!("save failed: {e} (the run is still here: try another folder)")),
            });
            ctx.request_repaint();
        });
    }
}

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
