//! The library's layering: data flows one way, from the model up to the command line.
//!
//! ```text
//! ground floor (logspace, tolerance, rng) → model → random_family → files, arrays → runs → evidence
//!   → bp → sample → demo → info → export → score → contrastive → sufficiency → learn → downstream
//!   → eval → emulate → rates → reproduce → bench → plot → cli
//! ```
//!
//! A module may use any module at or below its own rank and none above it. This test reads every
//! file under `src/`, finds each path that starts with `crate::` (in `use` lines, grouped
//! imports and inline paths, but not in comments) and fails on an upward one, naming the
//! file, the line and the two modules of every upward one. A new top-level module must be given a
//! rank here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up; modules in one inner slice share a rank.
const LAYERS: &[&[&str]] = &[
    &["logspace", "tolerance", "rng"],
    &["model"],
    &["random_family"],
    &["files", "arrays"],
    &["runs"],
    &["evidence"],
    &["bp"],
    &["sample"],
    &["demo"],
    &["info"],
    &["export"],
    &["score"],
    &["contrastive"],
    &["sufficiency"],
    &["learn"],
    &["downstream"],
    &["eval"],
    &["emulate"],
    &["rates"],
    &["reproduce"],
    &["bench"],
    &["plot"],
    &["cli"],
];

fn ranks() -> BTreeMap<&'static str, usize> {
    LAYERS.iter().enumerate().flat_map(|(rank, names)| names.iter().map(move |&n| (n, rank))).collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/bp/fast.rs` → `bp`), or `None` for the crate
/// roots `lib.rs` and `main.rs`, which may name every module.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("a file under src/");
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The code of a line without its `//` comment (doc comments included). String literals that
/// contain `//` do not occur next to a `crate::` path in this crate.
fn code_of(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules named after each `crate::` in `code`, including every item of a
/// grouped import `crate::{a::x, b}` (whose braces may continue on later lines: `rest` is the
/// file from this line on).
fn named_modules(rest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let line = rest.lines().next().unwrap_or("");
    let code = code_of(line);
    let mut at = 0;
    while let Some(i) = code[at..].find("crate::") {
        let start = at + i + "crate::".len();
        let before = code[..at + i].chars().last();
        at = start;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::` in a macro or a longer identifier ending in `crate`
        }
        let after = &code[start..];
        if after.starts_with('{') {
            let offset = start + 1; // `rest` begins with `code`
            names.extend(group_items(&rest[offset..]));
        } else {
            names.push(ident_at(after).to_string());
        }
    }
    names
}

/// The first path segment of each item of a brace group, up to its closing brace.
fn group_items(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut expect_item = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expect_item = true,
            c if expect_item && depth == 0 && (c.is_alphabetic() || c == '_') => {
                items.push(ident_at(&group[i..]).to_string());
                expect_item = false;
            }
            _ => {}
        }
    }
    items
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let ranks = ranks();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        let Some(&own) = ranks.get(module.as_str()) else {
            panic!("{}: module `{module}` has no rank in tests/layering.rs", file.display());
        };
        let text = std::fs::read_to_string(file).expect("a readable source file");
        let mut offset = 0;
        for (number, line) in text.split('\n').enumerate() {
            let here = offset;
            offset += line.len() + 1;
            for name in named_modules(&text[here..]) {
                if name == "self" || name == "super" {
                    continue;
                }
                match ranks.get(name.as_str()) {
                    Some(&theirs) if theirs > own => upward.push(format!(
                        "{}:{}: `{module}` uses `{name}`, which is above it",
                        file.strip_prefix(&src).unwrap().display(),
                        number + 1
                    )),
                    Some(_) => {}
                    // A re-exported item of lib.rs (`crate::pmi`) or a macro: not a module.
                    None => {}
                }
            }
        }
    }
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
}

#[test]
fn the_parser_finds_grouped_inline_and_multi_line_paths() {
    assert_eq!(named_modules("use crate::bp::{self, Tokens};"), ["bp"]);
    assert_eq!(named_modules("use crate::{bp::Tokens, model::{Jghm, Part}, rng};"), ["bp", "model", "rng"]);
    assert_eq!(named_modules("use crate::{\n    eval::X,\n    plot::{a, b},\n};"), ["eval", "plot"]);
    assert_eq!(named_modules("let r = crate::eval::evaluate(m); // crate::cli"), ["eval"]);
    assert_eq!(named_modules("/// see [`crate::cli`]"), Vec::<String>::new());
    assert_eq!(named_modules("$crate::bp::x"), Vec::<String>::new());
}
