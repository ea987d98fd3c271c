//! The web UI: `GET /` is the page, `GET /ui/{path}` its scripts, styles and libraries, all
//! embedded in the binary at build time (see `api/build.rs`). Every node serves it; the page talks
//! to the same node's `/api`, so it works through any node of a cluster.
//!
//! The assets hold no data, so they are served without a token even with authentication on; the
//! page signs in with an API key and sends the token on its API calls.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// The page's content security policy: its own scripts, styles and data only.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Whether `path` is one of the UI's own (served without a token).
pub fn is_ui_path(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some((_, content_type, etag, bytes)) = embedded::ASSETS.iter().find(|(path, ..)| *path == name) else {
        return ApiError::not_found(format!("The UI has no file {name}")).into_response();
    };
    let fresh = request.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::ETAG, HeaderValue::from_static(etag)),
        // Revalidate every time: a 304 costs little, and an upgraded node never serves stale code.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ];
    if fresh { (StatusCode::NOT_MODIFIED, headers).into_response() } else { (headers, *bytes).into_response() }
}

/// `GET /`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /ui/{path}`: one of the page's files.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

#[cfg(test)]
mod tests {
    use super::embedded::ASSETS;

    #[test]
    fn the_page_and_its_libraries_are_embedded() {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.0).collect();
        for needed in ["index.html", "app.js", "style.css", "vendor/preact.mjs", "vendor/hooks.mjs", "vendor/htm.mjs"] {
            assert!(names.contains(&needed), "{needed} missing from {names:?}");
        }
        let hooks = ASSETS.iter().find(|a| a.0 == "vendor/hooks.mjs").expect("hooks");
        let text = std::str::from_utf8(hooks.3).expect("utf-8");
        assert!(text.contains("from\"./preact.mjs\"") && !text.contains("from\"preact\""), "bare import rewritten");
        let licences = ASSETS.iter().find(|a| a.0 == "vendor/LICENSES.txt").expect("licences");
        assert!(std::str::from_utf8(licences.3).expect("utf-8").contains("== preact"));
    }
}
