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

/// The rooms a file of `src/` uses: `crate::x` and `diffusion_lab::x` (also in `{…}` groups and inline paths)
/// and `super::…` paths that climb out of the file's room, resolved against `module` (the file's module path,
/// e.g. `["engine", "thread"]`). Comments and the test module (from `#[cfg(test)]` on) are left out.
fn rooms_used(source: &str, module: &[&str]) -> BTreeSet<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = code.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    let mut used = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("::") {
        let (before, after) = (&rest[..at], &rest[at + 2..]);
        rest = after;
        let word_start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        let word = &before[word_start..];
        // The module a path starts from: the crate root, or where a run of `super::` climbs to.
        let base: Vec<&str> = match word {
            "crate" | "diffusion_lab" => Vec::new(),
            "super" if !before[..word_start].ends_with("::") => {
                let mut ups = 1;
                let mut tail = after;
                while let Some(next) = tail.strip_prefix("super::") {
                    ups += 1;
                    tail = next;
                }
                rest = tail;
                module[..module.len().saturating_sub(ups)].to_vec()
            }
            _ => continue,
        };
        let names: Vec<&str> = match rest.strip_prefix('{') {
            // A group: the first word of each top-level item.
            Some(group) => {
                let mut depth = 0;
                let end = group
                    .char_indices()
                    .find(|(_, c)| {
                        depth += i32::from(*c == '{') - i32::from(*c == '}');
                        depth < 0
                    })
                    .map_or(group.len(), |(i, _)| i);
                let mut items = Vec::new();
                let mut depth = 0;
                let mut start = 0;
                for (i, c) in group[..end].char_indices() {
                    depth += i32::from(c == '{') - i32::from(c == '}');
                    if c == ',' && depth == 0 {
                        items.push(&group[start..i]);
                        start = i + 1;
                    }
                }
                items.push(&group[start..end]);
                items.iter().map(|item| item.trim()).collect()
            }
            None => vec![rest],
        };
        for name in names {
            let first: String = name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let room = base.first().map_or(first, |r| r.to_string());
            if !room.is_empty() && room != "self" {
                used.insert(room);
            }
        }
    }
    used
}

/// The map's rule: each room and the rooms it may import, from the table under "Who may import whom".
fn import_rules() -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let text = map();
    let section = text.split("### Who may import whom").nth(1).expect("the map has its import rules");
    let mut rules = std::collections::BTreeMap::new();
    for line in section.lines().skip_while(|l| !l.starts_with("| room")).skip(2) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            break;
        }
        let room = cells[1].trim_matches('`').to_string();
        let allowed = cells[2].split(',').map(|w| w.trim().trim_matches('`').to_string()).collect();
        rules.insert(room, allowed);
    }
    rules
}

/// The room and module path of a file of `src/`: `engine/thread.rs` is room `engine`, module
/// `engine::thread`; `files.rs` is room and module `files`; `lib.rs` and `main.rs` are crate roots.
fn room_and_module(path: &Path) -> (String, Vec<String>) {
    let mut parts: Vec<String> = path.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    let room = parts[0].clone();
    if parts.last().is_some_and(|p| p == "mod") || parts == ["lib"] || parts == ["main"] {
        parts.pop();
    }
    (room, parts)
}

#[test]
fn the_import_rules_see_every_kind_of_path() {
    let module = ["engine", "thread"];
    let found = |source: &str| rooms_used(source, &module).into_iter().collect::<Vec<_>>();
    assert_eq!(found("use crate::app::state::Settings;"), ["app"]);
    assert_eq!(found("use crate::{diffusion::Sampler, model::{LoadedUnet, id}};"), ["diffusion", "model"]);
    assert_eq!(found("let x = crate::app::pages::thing();"), ["app"]);
    assert_eq!(found("use super::generate::Frame;"), ["engine"]);
    assert_eq!(found("use super::super::app::LabApp;"), ["app"]);
    assert_eq!(rooms_used("use super::app::X;", &["engine"]).into_iter().collect::<Vec<_>>(), ["app"]);
    assert_eq!(found("use diffusion_lab::train::x;"), ["train"]);
    assert!(found("// use crate::app::x;\n#[cfg(test)]\nmod tests { use crate::app::y; }").is_empty());
}

#[test]
fn every_file_imports_only_the_rooms_the_map_allows() {
    let rules = import_rules();
    assert!(rules.len() >= 12, "the map's table was read: {rules:?}");
    let mut entries = Vec::new();
    common::walk(&root().join("src"), Path::new(""), &mut entries);
    let rooms: BTreeSet<String> = entries.iter().map(|(p, _)| room_and_module(p).0).filter(|r| !r.is_empty()).collect();
    let mut broken = Vec::new();
    for (path, _) in entries.iter().filter(|(p, is_dir)| !is_dir && p.extension().is_some_and(|e| e == "rs")) {
        let (room, module) = room_and_module(path);
        let Some(allowed) = rules.get(&room) else {
            broken.push(format!("{}: room `{room}` has no row in the map's import table", path.display()));
            continue;
        };
        if allowed.contains("every room (it declares them)") {
            continue;
        }
        let source = std::fs::read_to_string(root().join("src").join(path)).unwrap();
        let module: Vec<&str> = module.iter().map(String::as_str).collect();
        for used in rooms_used(&source, &module) {
            if used != room && rooms.contains(&used) && !allowed.contains(&used) {
                broken.push(format!("{}: `{room}` imports `{used}`", path.display()));
            }
        }
    }
    assert!(broken.is_empty(), "imports the map (ARCHITECTURE.md, \"Who may import whom\") forbids: {broken:#?}");
}

/// The characters of Rust source that are code, each with its line (from 1): string and character literals
/// and comments left out, so that braces in them are not counted.
fn code_chars(source: &str) -> Vec<(usize, char)> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let skip_to = |mut j: usize, end: &dyn Fn(usize) -> bool| {
            while j < chars.len() && !end(j) {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            j
        };
        let end = match (c, next) {
            ('/', Some('/')) => skip_to(i, &|j| chars[j] == '\n'),
            ('/', Some('*')) => skip_to(i + 2, &|j| chars[j] == '*' && chars.get(j + 1) == Some(&'/')) + 2,
            ('"', _) => skip_to(i + 1, &|j| chars[j] == '"') + 1,
            // A character literal ('{', '\n'), not a lifetime ('a).
            ('\'', Some(n)) if chars.get(i + 2) == Some(&'\'') || n == '\\' => {
                skip_to(i + 1, &|j| chars[j] == '\'') + 1
            }
            _ => i,
        };
        if end > i {
            line += chars[i..end.min(chars.len())].iter().filter(|c| **c == '\n').count();
            i = end;
            continue;
        }
        out.push((line, c));
        line += usize::from(c == '\n');
        i += 1;
    }
    out
}

/// The lines of `source` outside its `#[cfg(test)]` items (a test module anywhere in the file, not only at
/// its end), braces counted in code only.
fn lines_outside_tests(source: &str) -> Vec<&str> {
    let mut depth_after = vec![0i32; source.lines().count() + 2];
    let mut depth = 0;
    let mut line = 1;
    for (l, c) in code_chars(source) {
        while line < l {
            depth_after[line] = depth;
            line += 1;
        }
        depth += i32::from(c == '{') - i32::from(c == '}');
    }
    for d in depth_after.iter_mut().skip(line) {
        *d = depth;
    }
    let lines: Vec<&str> = source.lines().collect();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("#[cfg(test)]") {
            // Skip the item: to the line where the depth is back to the attribute's, past its opening brace
            // (or to the `;` of an item without a body).
            let start = if i == 0 { 0 } else { depth_after[i] };
            let mut j = i + 1;
            let mut opened = false;
            while j < lines.len() {
                opened |= depth_after[j + 1] > start;
                if (opened && depth_after[j + 1] <= start) || (!opened && lines[j].trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            i = j + 1;
            continue;
        }
        kept.push(lines[i]);
        i += 1;
    }
    kept
}

/// Every function with a body in `source` outside its test items: (name, lines from `fn` to the closing brace).
fn function_lengths(source: &str) -> Vec<(String, usize)> {
    let code = code_chars(&lines_outside_tests(source).join("\n"));
    let text: String = code.iter().map(|(_, c)| c).collect();
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    for (at, _) in text.match_indices("fn ") {
        let at = text[..at].chars().count();
        if at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_') {
            continue;
        }
        let name: String = chars[at + 3..].iter().take_while(|c| c.is_alphanumeric() || **c == '_').collect();
        let Some(open) = (at..chars.len()).find(|&j| chars[j] == '{' || chars[j] == ';') else { continue };
        if chars[open] == ';' {
            continue;
        }
        let mut depth = 0;
        let close = (open..chars.len()).find(|&j| {
            depth += i32::from(chars[j] == '{') - i32::from(chars[j] == '}');
            depth == 0
        });
        if let Some(close) = close {
            found.push((name, code[close].0 - code[at].0 + 1));
        }
    }
    found
}

#[test]
fn test_items_are_left_out_wherever_they_stand() {
    let source =
        "fn a() {}\n#[cfg(test)]\nmod t {\n    fn b() {\n    }\n}\nfn c() {\n}\n#[cfg(test)]\nmod u;\nfn d() {}\n";
    assert_eq!(lines_outside_tests(source), ["fn a() {}", "fn c() {", "}", "fn d() {}"]);
}

#[test]
fn function_lengths_count_code_not_strings() {
    let source = "fn a() {\n    let s = \"}}}\";\n    let c = '}';\n    // }\n}\nfn b(x: fn(u8)) -> u8;\nfn c() {}\n";
    assert_eq!(function_lengths(source), [("a".to_string(), 5), ("c".to_string(), 1)]);
}

/// The house stays small as features land: no file of the window, the engine, the run library or the
/// command line holds more than 600 lines outside its tests, and no function of `src/` outside the unrolled kernels of
/// `src/model/cpu/` is longer than 80 lines.
#[test]
fn rooms_and_functions_stay_small() {
    let mut entries = Vec::new();
    common::walk(&root().join("src"), Path::new(""), &mut entries);
    let mut too_big = Vec::new();
    for (path, _) in entries.iter().filter(|(p, is_dir)| !is_dir && p.extension().is_some_and(|e| e == "rs")) {
        let source = std::fs::read_to_string(root().join("src").join(path)).unwrap();
        let room = path.iter().next().map(|r| r.to_string_lossy().to_string()).unwrap_or_default();
        let lines = lines_outside_tests(&source).len();
        if ["app", "engine", "run", "cli"].contains(&room.as_str()) && lines > 600 {
            too_big.push(format!("{}: {lines} lines before its tests (at most 600)", path.display()));
        }
        if path.starts_with("model/cpu") {
            continue;
        }
        for (name, length) in function_lengths(&source) {
            if length > 80 {
                too_big.push(format!("{}: fn {name} is {length} lines (at most 80)", path.display()));
            }
        }
    }
    assert!(too_big.is_empty(), "split these: {too_big:#?}");
}
