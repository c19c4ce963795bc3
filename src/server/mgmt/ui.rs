//! The web UI: static files (`www/`, plain ES modules and one style sheet, no build
//! step) compiled into the binary and served at `/` beside the API. The UI is a client of
//! the documented API only: everything it shows and does goes through `/api`.
//!
//! Each file is one route of its own, so nothing here can shadow `/api/*`, and an unknown
//! path falls through to the API's 404. Answers carry a strong ETag (SHA-256 of the
//! content, computed once) and `Cache-Control: no-cache`, so a reload costs a 304 per
//! file while a new binary's files are picked up at once; and a self-only
//! Content-Security-Policy (no inline script or style), as befits an admin UI.

use super::Mgmt;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::{Arc, LazyLock};

/// One embedded file: where it is served, its type and its bytes.
pub(crate) struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The embedded files, by URL path (`/` is `index.html`). A file added under `www/` must
/// be listed here; `tests/mgmt_ui.rs` fetches everything index.html and the modules
/// reference, so a missing entry fails there.
macro_rules! assets {
    ($($url:literal => $file:literal, $ctype:expr;)*) => {
        &[$(Asset {
            path: $url,
            content_type: $ctype,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/server/mgmt/www/", $file)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

pub(crate) const ASSETS: &[Asset] = assets! {
    "/" => "index.html", "text/html; charset=utf-8";
    "/favicon.svg" => "favicon.svg", "image/svg+xml";
    "/css/warren.css" => "css/warren.css", "text/css; charset=utf-8";
    "/js/app.js" => "js/app.js", JS;
    "/js/api.js" => "js/api.js", JS;
    "/js/dom.js" => "js/dom.js", JS;
    "/js/fmt.js" => "js/fmt.js", JS;
    "/js/table.js" => "js/table.js", JS;
    "/js/chart.js" => "js/chart.js", JS;
    "/js/forms.js" => "js/forms.js", JS;
    "/js/pages/overview.js" => "js/pages/overview.js", JS;
    "/js/pages/connections.js" => "js/pages/connections.js", JS;
    "/js/pages/exchanges.js" => "js/pages/exchanges.js", JS;
    "/js/pages/queues.js" => "js/pages/queues.js", JS;
    "/js/pages/admin.js" => "js/pages/admin.js", JS;
};

/// The UI's policy: its own origin only; the API is same-origin; no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Each asset's ETag, in `ASSETS` order.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header")
        })
        .collect()
});

/// The UI's routes, one per file.
pub(super) fn routes() -> Router<Arc<Mgmt>> {
    ASSETS.iter().enumerate().fold(Router::new(), |r, (i, a)| {
        r.route(a.path, get(move |h: HeaderMap| async move { serve(i, &h) }))
    })
}

fn serve(i: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let etag = &ETAGS[i];
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*")
        });
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = r.headers_mut();
    if !fresh {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
    }
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_never_under_api() {
        let mut seen = std::collections::HashSet::new();
        for a in ASSETS {
            assert!(seen.insert(a.path), "{} listed twice", a.path);
            assert!(
                !a.path.starts_with("/api"),
                "{} would shadow the API",
                a.path
            );
            assert!(!a.body.is_empty(), "{} is empty", a.path);
        }
    }

    #[test]
    fn etag_matches_weak_and_listed_forms() {
        let tag = ETAGS[0].to_str().unwrap().to_string();
        for sent in [tag.clone(), format!("W/{tag}"), format!("\"x\", {tag}")] {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, sent.parse().unwrap());
            assert_eq!(serve(0, &h).status(), StatusCode::NOT_MODIFIED, "{sent}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, "\"other\"".parse().unwrap());
        assert_eq!(serve(0, &h).status(), StatusCode::OK);
    }
}
