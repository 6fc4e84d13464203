//! The layering the crate docs teach, checked on the source: net →
//! dialect → router, with `wire` (frames, request heads) below net and
//! dialect. The router knows no protocol and no socket, so no code under
//! `src/router/` names `crate::dialect` or `crate::net`; the dialects
//! decide what bytes say but never move them, so no code under
//! `src/dialect/` names `crate::net`; and `wire` is plain values, so it
//! names none of the three. Comments may name them: they say where the
//! other side is.
//!
//! A module is named either as a path (`crate::net::http`) or inside a
//! grouped import (`use crate::{net, log}`, over several lines too);
//! both are caught.

use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).expect("the source tree is readable");
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `text` without its comments, line for line (so that offsets still
/// give line numbers).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `text` starts with the module name `name` (and not a longer
/// name that begins with it, like `network` for `net`).
fn names_module(text: &str, name: &str) -> bool {
    text.strip_prefix(name)
        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
}

/// The top-level items of the group that opens at the start of `text`
/// (just after a `{`): `net`, `net::http`, `dialect::{self, Dialect}`.
fn group_items(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0usize, 0, Vec::new());
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(text[start..at].trim());
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(text[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
    }
    items
}

/// The byte offsets in `code` at which it names any of `modules` of the
/// crate, as `crate::module` or inside `crate::{…}`.
fn ties_in(code: &str, modules: &[&str]) -> Vec<usize> {
    let mut ties = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let after = &code[at + "crate::".len()..];
        let named = match after.strip_prefix('{') {
            Some(group) => group_items(group)
                .iter()
                .any(|item| modules.iter().any(|m| names_module(item, m))),
            None => modules.iter().any(|m| names_module(after, m)),
        };
        if named {
            ties.push(at);
        }
    }
    ties
}

/// Every line of code under `src/<layer>` that names one of `above`,
/// as `file:line: text`.
fn ties_of(layer: &str, above: &[&str]) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(layer);
    let mut files = Vec::new();
    sources(&dir, &mut files);
    assert!(!files.is_empty(), "src/{layer}/ not found: {dir:?}");
    let mut ties = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("a source file is readable");
        let code = code_of(&text);
        for at in ties_in(&code, above) {
            let n = code[..at].matches('\n').count();
            let line = text.lines().nth(n).unwrap_or("").trim();
            ties.push(format!("{}:{}: {line}", file.display(), n + 1));
        }
    }
    ties
}

#[test]
fn the_router_imports_nothing_from_dialect_or_net() {
    let ties = ties_of("router", &["dialect", "net"]);
    assert!(
        ties.is_empty(),
        "the router names a layer above it:\n{}",
        ties.join("\n")
    );
}

#[test]
fn the_dialects_import_nothing_from_net() {
    let ties = ties_of("dialect", &["net"]);
    assert!(
        ties.is_empty(),
        "a dialect names the network layer above it:\n{}",
        ties.join("\n")
    );
}

#[test]
fn the_wire_imports_from_no_layer() {
    let ties = ties_of("wire", &["net", "dialect", "router"]);
    assert!(
        ties.is_empty(),
        "wire names a layer above it:\n{}",
        ties.join("\n")
    );
}

#[test]
fn the_check_sees_paths_and_groups_but_not_comments_or_longer_names() {
    let found = |code: &str| ties_in(&code_of(code), &["net"]).len();
    assert_eq!(found("use crate::net::http::Response;"), 1);
    assert_eq!(found("let c: &crate::net::Context = todo!();"), 1);
    assert_eq!(found("use crate::{log, net};"), 1);
    assert_eq!(
        found("use crate::{\n    log,\n    net::{http, stream},\n};"),
        1
    );
    assert_eq!(found("use crate::{dialect::{self, net}, log};"), 0);
    assert_eq!(found("use crate::network::Thing;"), 0);
    assert_eq!(found("// crate::net is above: `net::emit` does the I/O"), 0);
    assert_eq!(found("use crate::wire::frame::Frame; // not crate::net"), 0);
}
