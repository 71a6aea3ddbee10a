//! The files subcommands write, each the same way: a CSV or any other bytes written atomically, a grid of
//! pictures as one PNG, one PNG per picture in a folder. Each says what it wrote on stderr, except
//! [`write_file`], whose callers say it where their output goes.

use std::path::Path;

use super::*;

/// Writes `bytes` (a CSV's text, a GIF) to `path` atomically; an error names the path.
pub(super) fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    diffusion_lab::files::write_atomic(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// `pictures` as one grid PNG of `columns` columns, carrying `text` (PNG settings).
pub(super) fn save_grid(
    path: &Path,
    pictures: &[Picture],
    columns: usize,
    text: &[(String, String)],
) -> anyhow::Result<()> {
    images::save_png(path, &images::grid(pictures, columns, 2), text)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// One PNG per picture in `dir` (created if missing); `name_and_text(i)` is picture i's file name and PNG text.
pub(super) fn save_each(
    dir: &Path,
    pictures: &[Picture],
    name_and_text: impl Fn(usize) -> (String, Vec<(String, String)>),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (i, picture) in pictures.iter().enumerate() {
        let (name, text) = name_and_text(i);
        images::save_png(&dir.join(name), picture, &text)?;
    }
    eprintln!("wrote {} images to {}", pictures.len(), dir.display());
    Ok(())
}
