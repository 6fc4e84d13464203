//! The layering the crate docs teach, checked on the source: net →
//! dialect → router. The router knows no protocol and no socket, so no
//! code under `src/router/` names `crate::dialect` or `crate::net` (its
//! comments may: they say where the other side is).

use std::fs;
use std::path::Path;

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
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

#[test]
fn the_router_imports_nothing_from_dialect_or_net() {
    let router = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/router");
    let mut files = Vec::new();
    sources(&router, &mut files);
    assert!(files.len() > 10, "src/router/ not found: {router:?}");
    let mut ties = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("a source file is readable");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("crate::dialect") || code.contains("crate::net") {
                ties.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        ties.is_empty(),
        "the router names a layer above it:\n{}",
        ties.join("\n")
    );
}
