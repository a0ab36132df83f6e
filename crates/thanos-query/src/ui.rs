//! The querier's web UI (Thanos `pkg/ui` query pages), written for this project: plain
//! HTML, vanilla JavaScript and CSS embedded in the binary, no external assets, so it
//! works offline.
//!
//! * `/` redirects (302) to `/graph` (as Prometheus and Thanos do);
//! * `/graph`: expression input (Enter or Execute runs it), `dedup` and
//!   `partial_response` checkboxes, a Table view (instant query at the current time) and a
//!   Graph view (range query over a selectable range, drawn as SVG lines). The page reads
//!   `expr`, `tab` (`table`/`graph`), `range` (e.g. `1h`), `dedup` and `partial_response`
//!   from its URL and runs a given `expr` on load, so views can be linked;
//! * `/stores`: the endpoints of `/api/v1/stores` with health, label sets and time range;
//! * `/static/app.js`, `/static/app.css`.
//!
//! Links and API calls use the link prefix given to [`router`]: the external prefix when
//! one is set, else the route prefix, so the UI works behind a path-rewriting proxy.

use axum::Router;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// Placeholder in `index.html` replaced by the link prefix.
const PREFIX_PLACEHOLDER: &str = "{{PREFIX}}";

/// The UI routes, relative to where the router is mounted. `link_prefix` is the path
/// (`""` or `/something`, no trailing slash) under which the browser reaches that mount
/// point; every link and API call of the pages starts with it.
pub fn router(link_prefix: &str) -> Router {
    let prefix = normalize_prefix(link_prefix);
    let page = index_page(&prefix);
    let graph = page.clone();
    let target = format!("{prefix}/graph");
    Router::new()
        .route("/", get(move || async move { redirect(&target) }))
        .route("/graph", get(move || async move { Html(graph) }))
        .route("/stores", get(move || async move { Html(page) }))
        .route(
            "/static/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
}

/// Mounts `routes` (API and UI) under `route_prefix` (`""` = the root). With a prefix, the
/// server root and `{route_prefix}/` redirect to the graph page at `link_prefix`.
pub fn nest_under(route_prefix: &str, link_prefix: &str, routes: Router) -> Router {
    let route_prefix = normalize_prefix(route_prefix);
    if route_prefix.is_empty() {
        return routes;
    }
    let home = format!("{}/graph", normalize_prefix(link_prefix));
    let home_too = home.clone();
    Router::new()
        .route("/", get(move || async move { redirect(&home) }))
        .route(
            &format!("{route_prefix}/"),
            get(move || async move { redirect(&home_too) }),
        )
        .nest(&route_prefix, routes)
}

/// `""` for the root, else `/path` without a trailing slash.
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// `index.html` with the prefix filled in (HTML-escaped).
fn index_page(prefix: &str) -> String {
    INDEX_HTML.replace(PREFIX_PLACEHOLDER, &escape_html(prefix))
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A `302 Found` to `location`, as Prometheus redirects its home page.
pub fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_normalized_and_escaped() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix("thanos/"), "/thanos");
        let page = index_page("/a\"b");
        assert!(page.contains("data-prefix=\"/a&quot;b\""), "{page}");
        assert!(!page.contains(PREFIX_PLACEHOLDER));
    }

    #[test]
    fn assets_reference_nothing_outside_the_binary() {
        for (name, text) in [("html", INDEX_HTML), ("js", APP_JS), ("css", APP_CSS)] {
            // The SVG namespace is an identifier, not something fetched.
            let text = text.replace("\"http://www.w3.org/2000/svg\"", "");
            for needle in ["http://", "https://", "src=\"//", "href=\"//", "@import"] {
                assert!(!text.contains(needle), "{name} contains {needle}");
            }
        }
        assert!(INDEX_HTML.contains("{{PREFIX}}/static/app.js"));
    }
}
