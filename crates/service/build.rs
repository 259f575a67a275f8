//! Lists every file of the web page (`web/`, at any depth) for `src/web.rs` to embed, so that a
//! new file of the page is served without touching the Rust code.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let web = manifest.join("../../web").canonicalize().expect("the web/ folder of the repository");
    println!("cargo:rerun-if-changed={}", web.display());
    let mut files = Vec::new();
    collect(&web, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for file in &files {
        let url = file.strip_prefix(&web).expect("inside web/").to_string_lossy().replace('\\', "/");
        table.push_str(&format!("    (\"/{url}\", include_bytes!({:?})),\n", file.display().to_string()));
    }
    table.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("web_files.rs");
    std::fs::write(out, table).expect("write the page's file list");
}

/// Every regular file under `dir`, skipping hidden files and folders.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("read web/");
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
