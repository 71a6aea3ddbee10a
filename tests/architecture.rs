//! ARCHITECTURE.md stays true: every room and file of `src/` is on its map, and every path it names exists.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn map() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md is at the repository's root")
}

/// Words of the map that look like a file or folder name: `name.rs`, `name/`, `a/b/c.rs`.
fn names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_alphanumeric() || "_-./".contains(c)))
        .map(|w| w.trim_end_matches('.').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn every_room_and_file_of_src_is_on_the_map() {
    let text = map();
    let words = names(&text);
    let mut entries = Vec::new();
    common::walk(&root().join("src"), Path::new(""), &mut entries);
    assert!(entries.len() > 40, "src/ was read: {} entries", entries.len());
    let mut missing = Vec::new();
    for (path, is_dir) in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let found = if is_dir {
            words.contains(&format!("{name}/")) || words.iter().any(|w| w.ends_with(&format!("/{name}/")))
        } else {
            name == "mod.rs" || words.contains(&name) || words.iter().any(|w| w.ends_with(&format!("/{name}")))
        };
        if !found {
            missing.push(path.display().to_string());
        }
    }
    assert!(missing.is_empty(), "ARCHITECTURE.md does not mention: {missing:?}");
}

#[test]
fn every_path_the_map_names_exists() {
    let text = map();
    let extensions = [".rs", ".md", ".sh", ".py", ".wgsl", ".toml", ".dlab"];
    let mut checked = 0;
    let mut missing = Vec::new();
    for word in names(&text) {
        // A path with a folder in it (`engine/thread.rs`, `.ci/run`): relative to the repository, or to src/
        // (the map's rooms). A lone `name/` is a line of the tree, relative to the folder above it.
        let inner = word.trim_end_matches('/');
        let is_path = inner.contains('/') && !word.starts_with('/') && !word.starts_with("..");
        let is_file = extensions.iter().any(|e| word.ends_with(e));
        if !is_path || !(is_file || word.ends_with('/')) || word.contains("NAME") {
            continue;
        }
        checked += 1;
        let word = inner;
        if !(root().join(word).exists() || root().join("src").join(word).exists()) {
            missing.push(word.to_string());
        }
    }
    assert!(checked > 20, "the map names paths: {checked} checked");
    assert!(missing.is_empty(), "ARCHITECTURE.md names paths that do not exist: {missing:?}");
}
