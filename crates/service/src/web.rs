//! The web page: every file of `web/` embedded in the binary (so `dsobel serve` needs no files
//! beside it), or read from a folder on disk with `--web-dir` while the page is being worked on.
//!
//! Each answer carries a strong `ETag` (a hash of the bytes) and `Cache-Control: no-cache`
//! (revalidate at every load, so the index and its modules never come from two builds),
//! `304 Not Modified` for a matching `If-None-Match`, and text files go out
//! gzip-compressed to clients that accept it (compressed once, at first use, for the embedded
//! page).

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// The embedded files: URL path and bytes, listed by `build.rs`.
const EMBEDDED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// Browsers revalidate every file at every load (a `304` when unchanged): the page is native
/// ES modules, and an index and its modules must come from the same build.
const CACHE_CONTROL: &str = "no-cache";

/// What the page may load: only itself (and the images it makes), as nginx's configuration says.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' blob:; \
     script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
     form-action 'self'";

/// One file of the page, ready to serve.
struct PageFile {
    content_type: &'static str,
    body: Bytes,
    /// The gzip-compressed body, for text files.
    gzip: Option<Bytes>,
    /// Strong validator of `body`; the gzip variant's adds `-gz`.
    etag: String,
}

impl PageFile {
    fn new(path: &str, body: Bytes) -> PageFile {
        let content_type = content_type(path);
        let gzip = is_text(content_type).then(|| gzip(&body));
        let etag = format!("{:016x}", fnv1a(&body));
        PageFile { content_type, body, gzip, etag }
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let compressed = self.gzip.as_ref().filter(|_| accepts_gzip(request));
        let etag = match compressed {
            Some(_) => format!("\"{}-gz\"", self.etag),
            None => format!("\"{}\"", self.etag),
        };
        let matches = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|list| list.split(',').any(|tag| validator_matches(tag.trim(), &self.etag)));
        let mut response = if matches {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let body = compressed.unwrap_or(&self.body).clone();
            let mut response = Body::from(body).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
            if compressed.is_some() {
                response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        };
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, value);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
        headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        headers.insert("content-security-policy", HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        if self.gzip.is_some() {
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        response
    }
}

/// Where the page comes from.
#[derive(Debug, Clone, Default)]
pub enum Page {
    /// The copy built into the binary.
    #[default]
    Embedded,
    /// A folder read at every request (for working on the page without rebuilding).
    Folder(PathBuf),
}

static EMBEDDED_FILES: LazyLock<Vec<(&'static str, PageFile)>> = LazyLock::new(|| {
    EMBEDDED.iter().map(|&(path, body)| (path, PageFile::new(path, Bytes::from_static(body)))).collect()
});

impl Page {
    /// The page's URL paths that exist in the embedded copy (`/` is the index).
    pub fn paths() -> impl Iterator<Item = &'static str> {
        std::iter::once("/").chain(EMBEDDED.iter().map(|&(path, _)| path))
    }

    /// The answer for `path`, or `None` when the page has no such file.
    pub fn serve(&self, path: &str, request: &HeaderMap) -> Option<Response> {
        let path = if path == "/" { "/index.html" } else { path };
        match self {
            Page::Embedded => {
                EMBEDDED_FILES.iter().find(|(p, _)| *p == path).map(|(_, file)| file.respond(request))
            }
            Page::Folder(root) => {
                let file = safe_join(root, path)?;
                let body = std::fs::read(file).ok()?;
                Some(PageFile::new(path, Bytes::from(body)).respond(request))
            }
        }
    }
}

/// `root` joined with the URL path, or `None` when the path would leave `root`.
fn safe_join(root: &Path, url_path: &str) -> Option<PathBuf> {
    let relative = Path::new(url_path.trim_start_matches('/'));
    relative.components().all(|c| matches!(c, Component::Normal(_))).then(|| root.join(relative))
}

/// Whether `tag` (one entry of `If-None-Match`) names either variant of `etag`.
fn validator_matches(tag: &str, etag: &str) -> bool {
    let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
    tag == "*" || tag == etag || tag.strip_suffix("-gz") == Some(etag)
}

/// Whether the request's `Accept-Encoding` allows gzip (`gzip` or `*` without `q=0`).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|list| {
        list.split(',').any(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts
                .any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()).is_some_and(|q| q <= 0.0));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
    })
}

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn is_text(content_type: &str) -> bool {
    content_type.starts_with("text/") || content_type.contains("json") || content_type == "image/svg+xml"
}

fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// FNV-1a, 64 bits: a validator that changes whenever the bytes do.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn gzip_is_chosen_only_when_accepted() {
        assert!(accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "br, gzip;q=0.8")])));
        assert!(accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "*")])));
        assert!(!accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "br")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn paths_cannot_leave_the_folder() {
        let root = Path::new("/srv/web");
        assert_eq!(safe_join(root, "/js/app.js"), Some(root.join("js/app.js")));
        assert_eq!(safe_join(root, "/../etc/passwd"), None);
        assert_eq!(safe_join(root, "/js/../../x"), None);
    }

    #[test]
    fn validators_match_either_variant() {
        assert!(validator_matches("\"00ff\"", "00ff"));
        assert!(validator_matches("W/\"00ff-gz\"", "00ff"));
        assert!(validator_matches("*", "00ff"));
        assert!(!validator_matches("\"00fe\"", "00ff"));
    }

    #[test]
    fn the_index_is_embedded_and_compressed() {
        let request = headers(&[(header::ACCEPT_ENCODING, "gzip")]);
        let response = Page::Embedded.serve("/", &request).expect("index");
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        let etag = response.headers()[header::ETAG].to_str().unwrap().to_owned();
        let again = headers(&[(header::IF_NONE_MATCH, &etag)]);
        assert_eq!(Page::Embedded.serve("/", &again).unwrap().status(), StatusCode::NOT_MODIFIED);
    }
}
