//! The image files a command works on, shared by `dsobel process` and `dsobel submit`: the
//! files named, and the images in the directories named (their subdirectories too with
//! `--recursive`), in a stable order; and the name of each one's result.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Extensions picked up when walking a directory.
const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// Whether `path` names an image by its extension.
fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Appends the images of `dir` to `found`, sorted by name, descending into subdirectories
/// when `recursive`.
fn walk(dir: &Path, recursive: bool, found: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if recursive {
                walk(&path, recursive, found)?;
            }
        } else if is_image_path(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// The image files of one input: the file itself, or the images of a directory (warning on
/// standard error when it has none).
pub fn image_files(input: &Path, recursive: bool) -> Result<Vec<PathBuf>> {
    if !input.is_dir() {
        return Ok(vec![input.to_path_buf()]);
    }
    let mut found = Vec::new();
    walk(input, recursive, &mut found)?;
    if found.is_empty() {
        eprintln!("warning: no images found in {}", input.display());
    }
    Ok(found)
}

/// The file name of the result of `input` in `format`: `<stem>-edges.png` (`.npy`, `.tiff`).
pub fn output_name(input: &Path, format: dsobel_kernel::Format) -> String {
    let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
    format!("{stem}-edges.{}", format.extension())
}
