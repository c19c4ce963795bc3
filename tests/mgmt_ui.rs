//! The web UI's files as the management server serves them: `/` is the HTML page, every
//! style sheet, icon and script it references (and every module those scripts import,
//! recursively) answers 200 with its content type, caching works by ETag, the
//! Content-Security-Policy is there, `/api` is not shadowed, unknown files are 404.
//!
//! Warren only (the in-process broker): RabbitMQ's UI is a different program. What the
//! UI does in a browser is tested by `interop/test_webui.py`.

mod common;

use common::TestBroker;
use common::mgmt::install_crypto_provider;
use std::collections::{BTreeSet, VecDeque};

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Page {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

async fn fetch(base: &str, path: &str, headers: &[(&str, &str)]) -> Page {
    install_crypto_provider();
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("the server answers");
    Page {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap_or_default(),
    }
}

/// The values of `attr="..."` in an HTML text.
fn attributes(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect()
}

/// The specifiers of `import ... from '...'` (and `import '...'`) in a module.
fn imports(js: &str) -> Vec<String> {
    let code: String = js
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut out = Vec::new();
    for stmt in code.split(';') {
        let s = stmt.trim_start();
        if !s.starts_with("import") {
            continue;
        }
        let tail = s
            .rsplit_once(" from ")
            .map_or(&s["import".len()..], |(_, t)| t);
        let tail = tail.trim();
        if let Some(q) = tail.chars().next().filter(|c| *c == '\'' || *c == '"')
            && let Some(end) = tail[1..].find(q)
        {
            out.push(tail[1..1 + end].to_string());
        }
    }
    out
}

/// Resolves a relative module specifier against the importing module's path.
fn resolve(from: &str, spec: &str) -> String {
    if spec.starts_with('/') {
        return spec.to_string();
    }
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for p in spec.split('/') {
        match p {
            "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[test]
fn imports_are_found_in_module_text() {
    let js = "// x\nimport { a, b } from './a.js';\nimport * as c from \"../c.js\";\nimport './d.js';\nconst x = 1;";
    assert_eq!(imports(js), vec!["./a.js", "../c.js", "./d.js"]);
    assert_eq!(resolve("/js/pages/q.js", "../api.js"), "/js/api.js");
    assert_eq!(resolve("/js/app.js", "./pages/q.js"), "/js/pages/q.js");
}

#[tokio::test]
async fn index_and_everything_it_loads_are_served_with_their_types() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let base = b.mgmt_url();
    let index = fetch(&base, "/", &[]).await;
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), "text/html; charset=utf-8");
    assert!(index.text.contains("<title>Warren Management</title>"));
    let csp = index.header("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(index.header("x-content-type-options"), "nosniff");
    // No inline script: every script is a file.
    assert!(!index.text.contains("<script>") && !index.text.contains("<script type=\"module\">"));

    let mut queue: VecDeque<String> = attributes(&index.text, "href")
        .into_iter()
        .chain(attributes(&index.text, "src"))
        .filter(|u| u.starts_with('/'))
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let r = fetch(&base, &path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset type {other:?} for {path}"),
        };
        assert_eq!(r.header("content-type"), expected, "{path}");
        if path.ends_with(".js") {
            queue.extend(imports(&r.text).iter().map(|s| resolve(&path, s)));
        }
    }
    for must in [
        "/css/warren.css",
        "/js/app.js",
        "/js/api.js",
        "/js/pages/queues.js",
        "/js/pages/admin.js",
    ] {
        assert!(seen.contains(must), "{must} not reached from index.html");
    }
}

#[tokio::test]
async fn etag_revalidation_answers_304() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let base = b.mgmt_url();
    for path in ["/", "/js/app.js"] {
        let first = fetch(&base, path, &[]).await;
        let etag = first.header("etag");
        assert!(etag.starts_with('"') && etag.len() > 10, "{path}: {etag}");
        assert_eq!(first.header("cache-control"), "no-cache");
        let again = fetch(&base, path, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.text.is_empty());
        assert_eq!(again.header("etag"), etag);
        let stale = fetch(&base, path, &[("if-none-match", "\"stale\"")]).await;
        assert_eq!(stale.status, 200, "{path}");
        assert_eq!(stale.text, first.text);
    }
}

#[tokio::test]
async fn api_is_not_shadowed_and_unknown_files_are_404() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let base = b.mgmt_url();
    let api = b.mgmt();
    let overview = api.json("/overview").await;
    assert_eq!(overview["product_name"], "Warren");
    // Without credentials the API still challenges, whatever the UI serves.
    let anon = fetch(&base, "/api/overview", &[]).await;
    assert_eq!(anon.status, 401);
    assert!(!anon.header("www-authenticate").is_empty());
    for path in [
        "/js/nope.js",
        "/css/other.css",
        "/index.html/x",
        "/api/not-an-endpoint",
    ] {
        let r = fetch(&base, path, &[]).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-type"), "application/json", "{path}");
    }
    // The UI's files are only read: other methods are refused.
    install_crypto_provider();
    let r = reqwest::Client::new()
        .post(format!("{base}/js/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
}
