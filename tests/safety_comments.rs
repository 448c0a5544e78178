//! Every `unsafe` block, function and impl in the workspace says why it is sound: a
//! `SAFETY:` comment (or a `# Safety` doc section) within the lines just above it,
//! as DESIGN.md asks. Function-pointer types (`unsafe fn(...)`, `unsafe extern "C"
//! fn(...)`) declare a contract rather than use one, and are not counted.

use std::path::{Path, PathBuf};

/// Lines above an `unsafe` that may hold its comment: a SAFETY line often covers a
/// short group of blocks ("all loads below").
const WINDOW: usize = 16;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != ".git" {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether the code part of `line` opens an unsafe block, fn or impl.
fn uses_unsafe(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    let mut rest = code;
    while let Some(at) = rest.find("unsafe") {
        let before = rest[..at].chars().last();
        let after = rest[at + "unsafe".len()..].trim_start();
        rest = &rest[at + "unsafe".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"') {
            continue;
        }
        let pointer_type = after.starts_with("fn(") || after.starts_with("extern \"C\" fn(");
        let opens = ["{", "fn ", "impl", "extern \"C\" fn "].iter().any(|p| after.starts_with(p));
        if !pointer_type && (after.is_empty() || opens) {
            return true;
        }
    }
    false
}

#[test]
fn every_unsafe_says_why_it_is_sound() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["runtime", "tools", "firmware", "fuzz", "tests", "src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut missing = Vec::new();
    let mut counted = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !uses_unsafe(line) || path.ends_with("tests/safety_comments.rs") {
                continue;
            }
            counted += 1;
            let above = &lines[i.saturating_sub(WINDOW)..=i];
            if !above.iter().any(|l| l.contains("SAFETY") || l.contains("# Safety")) {
                missing.push(format!("{}:{}: {}", path.strip_prefix(root).unwrap().display(), i + 1, line.trim()));
            }
        }
    }
    assert!(counted > 100, "found only {counted} unsafe uses: is the scan broken?");
    assert!(missing.is_empty(), "unsafe without a SAFETY comment above it:\n{}", missing.join("\n"));
}

#[test]
fn the_scan_sees_blocks_fns_and_impls_but_not_pointer_types() {
    assert!(uses_unsafe("    unsafe { x.add(1) }"));
    assert!(uses_unsafe("unsafe fn kernel(x: &[f32]) {"));
    assert!(uses_unsafe("unsafe impl GlobalAlloc for Counting {"));
    assert!(uses_unsafe("    let v = unsafe {"));
    assert!(uses_unsafe("pub unsafe extern \"C\" fn linrt_model_open("));
    assert!(!uses_unsafe("type HeadStep = unsafe fn(s: &mut [f32]);"));
    assert!(!uses_unsafe("pub type F = Option<unsafe extern \"C\" fn(user: *mut c_void)>;"));
    assert!(!uses_unsafe("// unsafe { in a comment }"));
    assert!(!uses_unsafe("let not_unsafe_at_all = 1;"));
}
