//! The authored contract: `openapi.yaml`, embedded at build time, is the spec the server serves —
//! as written at `/openapi.yaml`, as JSON at `/openapi.json`, and inside the Swagger UI explorer
//! (`/explorer`) and Redoc (`/redoc`) pages. It also says which methods each path allows, for the
//! `Allow` header of a 405.
//!
//! The spec poem-openapi generates from the handlers is served nowhere: `tests/api/contract.rs`
//! compares it with this one, so the handlers cannot drift from what is served.
//!
//! The pages load nothing from another host: poem-openapi's Redoc template links Google Fonts,
//! and that `<link>` is dropped (Redoc falls back to the browser's fonts). Each page is sent with a
//! `Content-Security-Policy` that allows its own inline scripts by their SHA-256 and nothing else
//! to run, inline styles (Redoc writes its styles at run time), `data:` images (Swagger UI's CSS
//! has them), Redoc's search worker (a `blob:`), requests to this server only ("Try it out"), and
//! no other host for anything.

use base64::{Engine, engine::general_purpose::STANDARD};
use poem::{IntoResponse, Route, endpoint::make_sync, web::Html};
use poem_openapi::{OpenApi, OpenApiService, Webhook};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `openapi.yaml`, byte for byte.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// The authored contract, parsed and rendered once, at start-up.
pub struct Contract {
    json: String,
    explorer: Page,
    redoc: Page,
    allowed: AllowedMethods,
}

/// An HTML page and the `Content-Security-Policy` it is served with.
struct Page {
    html: String,
    policy: String,
}

impl Page {
    /// `html` with every `<link>` to another host dropped, and the policy that lets exactly its
    /// inline scripts run.
    fn new(html: &str) -> Self {
        let html = drop_external_links(html);
        let policy = format!(
            "default-src 'none'; script-src {}; style-src 'unsafe-inline'; img-src 'self' data:; \
             font-src 'self'; connect-src 'self'; worker-src blob:; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'none'",
            inline_hashes(&html, "script")
        );
        Self { html, policy }
    }

    fn response(&self) -> poem::Response {
        Html(self.html.as_str())
            .with_header(
                poem::http::header::CONTENT_SECURITY_POLICY,
                self.policy.as_str(),
            )
            .into_response()
    }
}

/// `html` without the `<link …>` tags whose `href` leads to another host (`https://…`,
/// `http://…`, `//…`).
fn drop_external_links(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<link") {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let tag = &rest[start..=start + len];
        out.push_str(&rest[..start]);
        let external = [
            "\"https://",
            "\"http://",
            "\"//",
            "'https://",
            "'http://",
            "'//",
        ]
        .iter()
        .any(|prefix| tag.contains(&format!("href={prefix}")));
        if !external {
            out.push_str(tag);
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// The sources a `Content-Security-Policy` directive needs to allow exactly the inline `<tag>`
/// elements of `html` (`script` or `style`): `'sha256-…'` of each, separated by spaces.
pub(crate) fn inline_hashes(html: &str, tag: &str) -> String {
    inline_elements(html, tag)
        .map(|text| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(text))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of every inline `<tag>` element of `html` (`script` or `style`), as the browser hashes
/// it: everything between the opening tag and the first `</tag`.
fn inline_elements<'a>(html: &'a str, tag: &str) -> impl Iterator<Item = &'a str> {
    let (open_tag, close_tag) = (format!("<{tag}"), format!("</{tag}"));
    let mut rest = html;
    std::iter::from_fn(move || {
        let open = rest.find(&open_tag)?;
        let body = open + rest[open..].find('>')? + 1;
        let close = body + rest[body..].find(&close_tag)?;
        let text = &rest[body..close];
        rest = &rest[close..];
        Some(text)
    })
}

impl Contract {
    /// Parses `openapi.yaml` and renders it as JSON and as the explorer and Redoc pages.
    /// `generated` only lends the pages: poem-openapi renders them around its own spec, which is
    /// swapped for the authored one.
    ///
    /// # Panics
    /// `openapi.yaml` is not an OpenAPI document in YAML, or poem-openapi's pages no longer embed
    /// its spec exactly once (a poem-openapi upgrade changed the templates).
    #[must_use]
    pub fn new<T: OpenApi, W: Webhook>(generated: &OpenApiService<T, W>) -> Self {
        // Through `serde_yaml::Value`, which keeps the authored order of keys (a
        // `serde_json::Value` sorts them): the explorer lists operations in the order they are
        // written.
        let authored: serde_yaml::Value =
            serde_yaml::from_str(OPENAPI_YAML).expect("openapi.yaml is YAML");
        let json =
            serde_json::to_string_pretty(&authored).expect("openapi.yaml is JSON-compatible");
        let value: Value = serde_json::from_str(&json).expect("serde_json reads what it wrote");
        let generated_spec = generated.spec();
        // The spec goes inside a <script>: `<\/` is the same JSON string, and cannot end it.
        let embedded = json.replace("</", r"<\/");
        Self {
            explorer: Page::new(&swap_spec(
                &generated.swagger_ui_html(),
                &generated_spec,
                &embedded,
            )),
            redoc: Page::new(&swap_spec(
                &generated.redoc_html(),
                &generated_spec,
                &embedded,
            )),
            allowed: AllowedMethods::from_spec(&value),
            json,
        }
    }

    /// `route` with `/openapi.yaml`, `/openapi.json`, `/explorer` and `/redoc` added. The pages
    /// also answer at `/explorer/` and `/redoc/`, as poem-openapi's own endpoints do.
    #[must_use]
    pub fn routes(&'static self, route: Route) -> Route {
        route
            .at(
                "/openapi.yaml",
                make_sync(|_| {
                    poem::Response::builder()
                        .content_type("application/yaml")
                        .body(OPENAPI_YAML)
                }),
            )
            .at(
                "/openapi.json",
                make_sync(move |_| {
                    poem::Response::builder()
                        .content_type("application/json")
                        .body(self.json.as_str())
                }),
            )
            // poem-openapi's Swagger UI also serves `oauth-receiver.html`, for OAuth 2 flows;
            // the contract has only a bearer scheme, so it is not needed.
            .nest(
                "/explorer",
                Route::new().at("/", make_sync(move |_| self.explorer.response())),
            )
            .nest(
                "/redoc",
                Route::new().at("/", make_sync(move |_| self.redoc.response())),
            )
    }

    /// The `Allow` value for a request path: the methods the contract has for it.
    #[must_use]
    pub fn allowed_methods(&self, path: &str) -> Option<&str> {
        self.allowed.for_path(path)
    }

    /// The route template a request path belongs to (`/news/{id}` for `/news/0192…`), for logs and
    /// metrics: the contract's paths, and the pages this type serves; anything else is `None`
    /// (callers write it as one value, so unknown paths cannot multiply label values).
    #[must_use]
    pub fn route_template(&self, path: &str) -> Option<&str> {
        const PAGES: [&str; 5] = ["/", "/openapi.yaml", "/openapi.json", "/explorer", "/redoc"];
        // The pages also answer with a trailing slash.
        let page = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        match PAGES.iter().find(|p| **p == page) {
            Some(page) => Some(page),
            None => self
                .allowed
                .entry(path)
                .map(|entry| entry.template.as_str()),
        }
    }
}

/// `page` with `generated` (the spec it embeds) replaced by `authored`.
fn swap_spec(page: &str, generated: &str, authored: &str) -> String {
    assert_eq!(
        page.matches(generated).count(),
        1,
        "poem-openapi's page no longer embeds its spec exactly once; see src/api/spec.rs"
    );
    page.replacen(generated, authored, 1)
}

/// The paths of the spec and the methods each supports: for the `Allow` header every 405 must
/// carry (RFC 9110 §15.5.6), which poem does not add, and for naming a request's route template.
struct AllowedMethods(Vec<PathEntry>);

struct PathEntry {
    template: String,
    segments: Vec<String>,
    methods: String,
}

impl AllowedMethods {
    fn from_spec(spec: &Value) -> Self {
        let paths = spec["paths"].as_object().into_iter().flatten();
        let table = paths
            .map(|(template, operations)| {
                let mut methods: Vec<String> = operations
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .map(|method| method.to_ascii_uppercase())
                    .collect();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".to_string());
                }
                PathEntry {
                    template: template.clone(),
                    segments: template.split('/').map(str::to_string).collect(),
                    methods: methods.join(", "),
                }
            })
            .collect();
        Self(table)
    }

    /// The spec's path for a request path, matching `{parameter}` segments to anything; where two
    /// match (`/news/count`, `/news/{id}`), the one with more literal segments, as the router does.
    /// (Every request asks this twice, for its access line and its metrics: it allocates nothing.)
    fn entry(&self, path: &str) -> Option<&PathEntry> {
        self.0
            .iter()
            .filter(|entry| {
                let mut segments = path.split('/');
                entry
                    .segments
                    .iter()
                    .all(|t| segments.next().is_some_and(|s| t == s || is_parameter(t)))
                    && segments.next().is_none()
            })
            .max_by_key(|entry| entry.segments.iter().filter(|t| !is_parameter(t)).count())
    }

    /// The `Allow` value for a request path.
    fn for_path(&self, path: &str) -> Option<&str> {
        self.entry(path).map(|entry| entry.methods.as_str())
    }
}

fn is_parameter(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authored() -> Value {
        serde_yaml::from_str(OPENAPI_YAML).unwrap()
    }

    #[test]
    fn the_contract_version_is_the_crate_version() {
        assert_eq!(authored()["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn allowed_methods_match_parameters_to_any_segment() {
        let allowed = AllowedMethods::from_spec(&authored());
        assert_eq!(
            allowed.for_path("/news/0192f0c4-0000-7000-8000-000000000000"),
            Some("DELETE, GET, PATCH, PUT, HEAD")
        );
        assert_eq!(allowed.for_path("/healthz"), Some("GET, HEAD"));
        assert_eq!(allowed.for_path("/news/1/2"), None);
        assert_eq!(allowed.for_path("/news/count"), Some("GET, HEAD"));
    }

    #[test]
    fn a_path_is_named_by_its_route_template() {
        let contract = Contract::new(&crate::startup::api_service());
        for (path, template) in [
            (
                "/news/0192f0c4-0000-7000-8000-000000000000",
                Some("/news/{id}"),
            ),
            ("/news/count", Some("/news/count")),
            ("/news", Some("/news")),
            ("/explorer/", Some("/explorer")),
            ("/", Some("/")),
            ("/etc/passwd", None),
        ] {
            assert_eq!(contract.route_template(path), template, "{path}");
        }
    }

    #[test]
    fn the_pages_show_the_authored_spec() {
        let contract = Contract::new(&crate::startup::api_service());
        // An example: only openapi.yaml has them.
        for page in [&contract.explorer, &contract.redoc] {
            assert!(page.html.contains("correct horse battery staple"));
        }
        assert_eq!(
            serde_json::from_str::<Value>(&contract.json).unwrap(),
            authored()
        );
    }

    #[test]
    fn the_pages_link_no_other_host_and_allow_exactly_their_scripts() {
        let contract = Contract::new(&crate::startup::api_service());
        for page in [&contract.explorer, &contract.redoc] {
            assert!(!page.html.contains("fonts.googleapis.com"));
            assert!(!page.html.contains("<link"));
            let scripts = inline_elements(&page.html, "script").count();
            assert!(scripts >= 2, "{scripts}");
            assert_eq!(page.policy.matches("'sha256-").count(), scripts);
            assert!(!page.policy.contains("unsafe-eval"));
            assert!(!page.policy.contains("http"));
        }
    }

    #[test]
    fn only_links_to_other_hosts_are_dropped() {
        let html = r#"<head><link href="https://fonts.example/css" rel="stylesheet"><link rel="icon" href="/favicon.ico"><link href='//cdn.example/x'></head>"#;
        assert_eq!(
            drop_external_links(html),
            r#"<head><link rel="icon" href="/favicon.ico"></head>"#
        );
    }

    #[test]
    fn inline_scripts_are_read_as_the_browser_reads_them() {
        let html =
            r#"<script charset="UTF-8">let a = "<\/script>";</script><p><script>b()</script>"#;
        let scripts: Vec<&str> = inline_elements(html, "script").collect();
        assert_eq!(scripts, [r#"let a = "<\/script>";"#, "b()"]);
        let html = "<style>p { color: red }</style><script>c()</script>";
        assert_eq!(
            inline_elements(html, "style").collect::<Vec<_>>(),
            ["p { color: red }"]
        );
    }

    #[test]
    fn a_page_gets_the_authored_spec_in_place_of_the_generated_one() {
        let page = swap_spec("let spec = {\"a\": 1};", "{\"a\": 1}", "{\"b\": 2}");
        assert_eq!(page, "let spec = {\"b\": 2};");
    }

    #[test]
    #[should_panic(expected = "exactly once")]
    fn a_page_without_the_generated_spec_fails_loudly() {
        let _ = swap_spec("let spec = {};", "{\"a\": 1}", "{\"b\": 2}");
    }
}
