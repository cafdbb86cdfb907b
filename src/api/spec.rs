//! The authored contract: `openapi.yaml`, embedded at build time, is the spec the server serves —
//! as written at `/openapi.yaml`, as JSON at `/openapi.json`, and inside the Swagger UI explorer
//! (`/explorer`) and Redoc (`/redoc`) pages. It also says which methods each path allows, for the
//! `Allow` header of a 405.
//!
//! The spec poem-openapi generates from the handlers is served nowhere: `tests/api/contract.rs`
//! compares it with this one, so the handlers cannot drift from what is served.

use poem::{Route, endpoint::make_sync, web::Html};
use poem_openapi::{OpenApi, OpenApiService, Webhook};
use serde_json::Value;

/// `openapi.yaml`, byte for byte.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// The authored contract, parsed and rendered once, at start-up.
pub struct Contract {
    json: String,
    explorer: String,
    redoc: String,
    allowed: AllowedMethods,
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
            explorer: swap_spec(&generated.swagger_ui_html(), &generated_spec, &embedded),
            redoc: swap_spec(&generated.redoc_html(), &generated_spec, &embedded),
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
                Route::new().at("/", make_sync(move |_| Html(self.explorer.as_str()))),
            )
            .nest(
                "/redoc",
                Route::new().at("/", make_sync(move |_| Html(self.redoc.as_str()))),
            )
    }

    /// The `Allow` value for a request path: the methods the contract has for it.
    #[must_use]
    pub fn allowed_methods(&self, path: &str) -> Option<&str> {
        self.allowed.for_path(path)
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

/// The methods each path of the spec supports, for the `Allow` header every 405 must carry
/// (RFC 9110 §15.5.6), which poem does not add.
struct AllowedMethods(Vec<(Vec<String>, String)>);

impl AllowedMethods {
    fn from_spec(spec: &Value) -> Self {
        let paths = spec["paths"].as_object().into_iter().flatten();
        let table = paths
            .map(|(template, operations)| {
                let segments = template.split('/').map(str::to_string).collect();
                let mut methods: Vec<String> = operations
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .map(|method| method.to_ascii_uppercase())
                    .collect();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".to_string());
                }
                (segments, methods.join(", "))
            })
            .collect();
        Self(table)
    }

    /// The `Allow` value for a request path, matching `{parameter}` segments to anything.
    fn for_path(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(template, _)| {
                template.len() == segments.len()
                    && template
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')))
            })
            .map(|(_, methods)| methods.as_str())
    }
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
    }

    #[test]
    fn the_pages_show_the_authored_spec() {
        let contract = Contract::new(&crate::startup::api_service());
        // An example: only openapi.yaml has them.
        for page in [&contract.explorer, &contract.redoc] {
            assert!(page.contains("correct horse battery staple"));
        }
        assert_eq!(
            serde_json::from_str::<Value>(&contract.json).unwrap(),
            authored()
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
