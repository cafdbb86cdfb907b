//! The spec poem-openapi generates from the handlers (`api_service().spec()`) must say what
//! `openapi.yaml` says: the server serves `openapi.yaml` itself, so this is what keeps the handlers
//! true to the contract. Both are normalised by the narrow rules below, then compared; any other
//! difference fails with a list of JSON paths and both values.
//!
//! Normalisation rules (everything else, prose included, must match exactly):
//! 1. Only `paths`, `components.schemas` and `components.securitySchemes` are compared; `info`,
//!    `servers` and the top-level `tags` list are documentation.
//! 2. `$ref`s to `#/components/parameters/…`, `…/responses/…`, `…/headers/…` and `…/links/…` are
//!    inlined (the generated spec writes them inline; the hand-written spec shares them).
//! 3. `description` and `summary` are compared after trimming surrounding white space. Not
//!    compared: `example` and `examples` (the generated spec has none; examples live only in
//!    `openapi.yaml`) and `title` (poem-openapi writes a schema's type name there). These are keys
//!    of a schema, parameter, response or operation — never a property of that name.
//! 4. Keys left at their OpenAPI default are dropped: `deprecated: false`, `required: false`,
//!    `nullable: false`, `readOnly: false`, `writeOnly: false`, `style: form` on query parameters,
//!    and `explode: true` on parameters (all of ours are scalars, where `explode` means nothing).
//! 5. Media types lose `; charset=utf-8`; header names compare case-insensitively; `required`
//!    lists and operation `tags` compare as sets; parameters compare by `(in, name)`; numbers
//!    compare by value (`100` is `100.0`).
//! 6. poem-openapi wraps a `$ref` that has siblings in `allOf: [{$ref}, {siblings}]` and repeats
//!    the siblings beside it: members of `allOf` that are empty or only repeat their parent's keys
//!    are dropped, and a schema that is nothing but `allOf: [x]` is `x`.
//! 7. `security: []` on an operation is dropped: `openapi.yaml` says it on public operations, where
//!    the generated spec (which cannot write it) says nothing; both mean "no security".
//! 8. `links` are not compared: they exist only in `openapi.yaml`.
//! 9. A schema used as a request body loses `additionalProperties: false`: `openapi.yaml` says it
//!    (`JsonBody` refuses unknown fields), poem-openapi cannot. Any other schema keeps it.
//! 10. A nullable property is dropped from its schema's `required` list: `openapi.yaml` lists it
//!     (it is always written, as `null` when empty), poem-openapi does not.
//! 11. The `description` of an error response (its only content is `application/problem+json`) is
//!     not compared: it is written once, in `openapi.yaml`'s `components/responses`.
//! 12. The `X-Request-Id` header parameter and response header are removed before comparing (with
//!     a `parameters` or `headers` left empty): middleware reads and writes them for every
//!     operation and every answer, where no handler can declare them. A test of its own checks that
//!     `openapi.yaml` declares both on every operation and every response.
//! 13. The `Content-Encoding` and `Vary` response headers are removed before comparing (with
//!     `headers` left empty): the compression middleware writes them, where no handler can declare
//!     them. A test of its own checks which responses of `openapi.yaml` declare them.

use serde_json::{Map, Value, json};

use crate::helpers::{json_of, spawn_app};

/// Not compared (rules 3 and 8).
const IGNORED_KEYS: &[&str] = &["example", "examples", "title", "links"];
/// Compared after trimming (rule 3).
const PROSE_KEYS: &[&str] = &["description", "summary"];
/// Keys whose object value maps names (of paths, properties, statuses…) to things.
const NAME_MAPS: &[&str] = &[
    "paths",
    "properties",
    "responses",
    "headers",
    "content",
    "schemas",
    "securitySchemes",
];
const PROBLEM_JSON: &str = "application/problem+json";

fn authored_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap()
}

fn authored_spec() -> Value {
    serde_yaml::from_str(&authored_text()).unwrap()
}

/// The spec poem-openapi generates from the handlers.
fn generated_spec() -> Value {
    serde_json::from_str(&newsapi::startup::api_service().spec()).unwrap()
}

/// Inlines `$ref`s into `components.parameters`, `…responses`, `…headers` and `…links`.
fn inline_refs(value: &Value, root: &Value) -> Value {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                for section in ["parameters", "responses", "headers", "links"] {
                    let prefix = format!("#/components/{section}/");
                    if let Some(name) = target.strip_prefix(&prefix) {
                        let resolved = &root["components"][section][name];
                        assert!(!resolved.is_null(), "dangling $ref {target}");
                        return inline_refs(resolved, root);
                    }
                }
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), inline_refs(v, root)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| inline_refs(v, root)).collect()),
        other => other.clone(),
    }
}

/// Rule 9: `additionalProperties: false` goes from the schemas request bodies refer to.
fn open_request_bodies(spec: &mut Value) {
    let operations = spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|path| path.values());
    let names: Vec<String> = operations
        .filter_map(|operation| operation["requestBody"]["content"].as_object())
        .flat_map(|content| content.values())
        .filter_map(|media| media["schema"]["$ref"].as_str())
        .filter_map(|target| target.strip_prefix("#/components/schemas/"))
        .map(str::to_string)
        .collect();
    for name in names {
        if let Some(schema) = spec["components"]["schemas"][&name].as_object_mut() {
            if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
                schema.remove("additionalProperties");
            }
        }
    }
}

/// The header every operation takes and every answer carries (rule 12).
const REQUEST_ID: &str = "x-request-id";

/// Every operation of an (inlined) spec, with its path and method.
fn operations_mut(spec: &mut Value) -> impl Iterator<Item = (String, &mut Map<String, Value>)> {
    spec["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
        .filter_map(|(path, item)| item.as_object_mut().map(|item| (path, item)))
        .flat_map(|(path, item)| {
            item.iter_mut().filter_map(move |(method, operation)| {
                operation
                    .as_object_mut()
                    .map(|operation| (format!("{method} {path}"), operation))
            })
        })
}

/// Rule 12: takes `X-Request-Id` out of every operation's parameters and every response's headers;
/// answers which operations and responses lacked it.
fn remove_request_id(spec: &mut Value) -> Vec<String> {
    let mut lacking = Vec::new();
    for (name, operation) in operations_mut(spec) {
        let parameters = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut);
        let found = parameters.is_some_and(|parameters| {
            let before = parameters.len();
            parameters.retain(|p| {
                !(p["in"] == "header"
                    && p["name"].as_str().map(str::to_ascii_lowercase).as_deref()
                        == Some(REQUEST_ID))
            });
            parameters.len() < before
        });
        if !found {
            lacking.push(format!("{name}: parameter"));
        }
        if operation
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            operation.remove("parameters");
        }
        for (status, response) in operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flatten()
        {
            let headers = response.get_mut("headers").and_then(Value::as_object_mut);
            let found = headers.is_some_and(|headers| {
                let key = headers
                    .keys()
                    .find(|k| k.to_ascii_lowercase() == REQUEST_ID)
                    .cloned();
                key.is_some_and(|key| headers.remove(&key).is_some())
            });
            if !found {
                lacking.push(format!("{name} {status}: header"));
            }
            if response
                .get("headers")
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                response.as_object_mut().map(|r| r.remove("headers"));
            }
        }
    }
    lacking
}

/// The headers the compression middleware writes (rule 13).
const COMPRESSION_HEADERS: &[&str] = &["content-encoding", "vary"];

/// Rule 13: takes `Content-Encoding` and `Vary` out of every response's headers; answers the
/// responses that declared both, as `operationId status`.
fn remove_compression_headers(spec: &mut Value) -> Vec<String> {
    let mut declaring = Vec::new();
    for (_, operation) in operations_mut(spec) {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for (status, response) in operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flatten()
        {
            let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) else {
                continue;
            };
            let before = headers.len();
            headers.retain(|name, _| !COMPRESSION_HEADERS.contains(&&*name.to_ascii_lowercase()));
            if before - headers.len() == COMPRESSION_HEADERS.len() {
                declaring.push(format!("{id} {status}"));
            }
            if headers.is_empty() {
                response.as_object_mut().map(|r| r.remove("headers"));
            }
        }
    }
    declaring
}

fn normalise(spec: &Value) -> Value {
    let mut spec = inline_refs(spec, spec);
    open_request_bodies(&mut spec);
    remove_request_id(&mut spec);
    remove_compression_headers(&mut spec);
    let mut out = Map::new();
    out.insert("paths".into(), normalise_value(&spec["paths"], None));
    for section in ["schemas", "securitySchemes"] {
        out.insert(
            section.into(),
            normalise_value(&spec["components"][section], Some(section)),
        );
    }
    Value::Object(out)
}

/// Rule 11: a response whose only content is problem+json.
fn is_error_response(response: &Value) -> bool {
    response["content"].as_object().is_some_and(|content| {
        !content.is_empty()
            && content
                .keys()
                .all(|media| media.replace("; charset=utf-8", "") == PROBLEM_JSON)
    })
}

fn normalise_value(value: &Value, parent_key: Option<&str>) -> Value {
    match value {
        Value::Object(map) if parent_key.is_some_and(|k| NAME_MAPS.contains(&k)) => {
            // A map of names: keep every name, normalise what they name.
            let mut out = Map::new();
            for (name, inner) in map {
                let name = match parent_key {
                    Some("content") => name.replace("; charset=utf-8", ""),
                    Some("headers") => name.to_ascii_lowercase(),
                    _ => name.clone(),
                };
                let mut inner = normalise_value(inner, None);
                if parent_key == Some("responses") && is_error_response(&inner) {
                    if let Some(response) = inner.as_object_mut() {
                        response.remove("description");
                    }
                }
                out.insert(name, inner);
            }
            Value::Object(out)
        }
        Value::Object(map) => {
            let is_query_param = map.get("in") == Some(&Value::from("query"));
            let mut out = Map::new();
            for (key, inner) in map {
                let dropped = match key.as_str() {
                    "deprecated" | "required" | "nullable" | "readOnly" | "writeOnly" => {
                        inner == &Value::Bool(false)
                    }
                    "explode" => inner == &Value::Bool(true),
                    "style" => is_query_param && inner == &Value::from("form"),
                    "security" => inner == &json!([]),
                    key => IGNORED_KEYS.contains(&key),
                };
                if dropped {
                    continue;
                }
                let mut normalised = normalise_value(inner, Some(key));
                match (key.as_str(), &mut normalised) {
                    ("required" | "tags", Value::Array(items)) => {
                        items.sort_by_key(ToString::to_string);
                    }
                    ("parameters", Value::Array(items)) => {
                        items.sort_by_key(|p| (p["in"].to_string(), p["name"].to_string()))
                    }
                    (key, Value::String(text)) if PROSE_KEYS.contains(&key) => {
                        *text = text.trim().to_string();
                    }
                    _ => {}
                }
                out.insert(key.clone(), normalised);
            }
            unrequire_nullable(&mut out);
            fold_all_of(out)
        }
        Value::Number(n) => match n.as_f64() {
            #[allow(clippy::cast_possible_truncation)]
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Value::from(f as i64),
            _ => value.clone(),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| normalise_value(v, None)).collect())
        }
        other => other.clone(),
    }
}

/// Rule 10: nullable properties leave `required` (and an empty `required` goes).
fn unrequire_nullable(schema: &mut Map<String, Value>) {
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return;
    };
    let nullable: Vec<Value> = properties
        .iter()
        .filter(|(_, property)| property["nullable"] == Value::Bool(true))
        .map(|(name, _)| Value::from(name.as_str()))
        .collect();
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|name| !nullable.contains(name));
        if required.is_empty() {
            schema.remove("required");
        }
    }
}

/// Rule 6: `allOf` members that add nothing to their parent go; a lone `allOf: [x]` becomes `x`.
fn fold_all_of(mut schema: Map<String, Value>) -> Value {
    if let Some(Value::Array(members)) = schema.get("allOf") {
        let kept: Vec<Value> = members
            .iter()
            .filter(|member| {
                member
                    .as_object()
                    .is_none_or(|m| m.iter().any(|(k, v)| schema.get(k) != Some(v)))
            })
            .cloned()
            .collect();
        if schema.len() == 1 && kept.len() == 1 {
            return kept.into_iter().next().unwrap_or_default();
        }
        schema.insert("allOf".into(), Value::Array(kept));
    }
    Value::Object(schema)
}

/// Every difference, as `path: openapi.yaml has …, the generated spec has …`.
fn differences(authored: &Value, generated: &Value, path: &str, out: &mut Vec<String>) {
    match (authored, generated) {
        (Value::Object(a), Value::Object(g)) => {
            let mut keys: Vec<&String> = a.keys().chain(g.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (a.get(key), g.get(key)) {
                    (Some(a), Some(g)) => differences(a, g, &child, out),
                    (Some(a), None) => out.push(format!("{child}: only in openapi.yaml: {a}")),
                    (None, Some(g)) => {
                        out.push(format!("{child}: only in the generated spec: {g}"));
                    }
                    (None, None) => unreachable!(),
                }
            }
        }
        (Value::Array(a), Value::Array(g)) if a.len() == g.len() => {
            for (i, (a, g)) in a.iter().zip(g).enumerate() {
                differences(a, g, &format!("{path}/{i}"), out);
            }
        }
        (a, g) if a == g => {}
        (a, g) => out.push(format!(
            "{path}: openapi.yaml has {a}, the generated spec has {g}"
        )),
    }
}

fn compare(authored: &Value, generated: &Value) -> Vec<String> {
    let mut out = Vec::new();
    differences(&normalise(authored), &normalise(generated), "", &mut out);
    out
}

#[test]
fn the_handlers_say_what_openapi_yaml_says() {
    let diff = compare(&authored_spec(), &generated_spec());
    assert!(
        diff.is_empty(),
        "openapi.yaml and the spec generated from the handlers differ in {} places:\n{}",
        diff.len(),
        diff.join("\n")
    );
}

#[test]
fn openapi_yaml_declares_x_request_id_on_every_operation_and_every_answer() {
    let authored = authored_spec();
    let lacking = remove_request_id(&mut inline_refs(&authored, &authored));
    assert!(lacking.is_empty(), "no X-Request-Id on: {lacking:#?}");
    // The generated spec has none, which is what rule 12 is for.
    let generated = generated_spec();
    let lacking = remove_request_id(&mut inline_refs(&generated, &generated));
    assert!(!lacking.is_empty());
}

#[test]
fn openapi_yaml_declares_content_encoding_and_vary_on_the_answers_that_carry_news() {
    let authored = authored_spec();
    let mut declaring = remove_compression_headers(&mut inline_refs(&authored, &authored));
    declaring.sort();
    assert_eq!(
        declaring,
        [
            "createNews 201",
            "getNews 200",
            "listNews 200",
            "replaceNews 200",
            "updateNews 200"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_serves_openapi_yaml_as_written_and_as_json() {
    let app = spawn_app().await;
    let yaml = app
        .client
        .get(format!("{}/openapi.yaml", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(yaml.status(), 200);
    assert_eq!(yaml.text().await.unwrap(), authored_text());
    let json = json_of(app.client.get(format!("{}/openapi.json", app.address))).await;
    assert_eq!(json, authored_spec());
}

#[test]
fn the_comparison_catches_a_dropped_status_a_changed_limit_and_a_new_field() {
    let authored = authored_spec();
    let mut drifted = authored.clone();
    drifted["paths"]["/news/{id}"]["delete"]["responses"]
        .as_object_mut()
        .unwrap()
        .remove("403");
    drifted["components"]["schemas"]["NewsInput"]["properties"]["title"]["maxLength"] = 300.into();
    drifted["components"]["schemas"]["News"]["properties"]["secret"] = json!({"type": "string"});
    let diff = compare(&authored, &drifted);
    assert_eq!(diff.len(), 3, "{diff:#?}");
    assert!(
        diff[0].contains("~1news~1{id}/delete/responses/403"),
        "{diff:#?}"
    );
}

#[test]
fn the_comparison_catches_changed_prose() {
    let authored = authored_spec();
    let mut reworded = authored.clone();
    reworded["paths"]["/news"]["get"]["summary"] = "Something else".into();
    reworded["components"]["schemas"]["NewsInput"]["properties"]["title"]["description"] =
        "The title.".into();
    reworded["paths"]["/news/count"]["get"]["responses"]["200"]["description"] =
        "How many news were changed".into();
    let diff = compare(&authored, &reworded);
    assert_eq!(diff.len(), 3, "{diff:#?}");
    assert!(diff.iter().any(|d| d.contains("The title.")), "{diff:#?}");
}

#[test]
fn what_only_openapi_yaml_can_say_does_not_count_as_drift() {
    let authored = authored_spec();
    let mut generated = authored.clone();
    let schemas = &mut generated["components"]["schemas"];
    // Rule 3: surrounding white space, examples, titles.
    schemas["NewsPage"]["properties"]["next_cursor"]["description"] =
        " Pass as `cursor` to get the next page; null on the last page\n".into();
    schemas["News"]["properties"]["title"]
        .as_object_mut()
        .unwrap()
        .remove("example");
    schemas["News"]["title"] = "News".into();
    // Rule 9: a request body is closed only in openapi.yaml.
    schemas["NewsInput"]
        .as_object_mut()
        .unwrap()
        .remove("additionalProperties");
    // Rule 10: a nullable property is required only in openapi.yaml.
    schemas["NewsPage"]["required"] = json!(["items"]);
    let signup = &mut generated["paths"]["/signup"]["post"];
    // Rule 7: a public operation says `security: []` only in openapi.yaml.
    signup.as_object_mut().unwrap().remove("security");
    // Rule 11: error responses are described only in openapi.yaml.
    signup["responses"]["409"] = json!({
        "description": "",
        "content": {"application/problem+json; charset=utf-8": {
            "schema": {"$ref": "#/components/schemas/Problem"},
        }},
    });
    // Rule 8: links exist only in openapi.yaml.
    generated["paths"]["/signin"]["post"]["responses"]["200"]
        .as_object_mut()
        .unwrap()
        .remove("links");
    // Rule 4: defaults.
    generated["paths"]["/whoami"]["get"]["deprecated"] = false.into();
    assert_eq!(compare(&authored, &generated), Vec::<String>::new());
}

#[test]
fn a_closed_schema_that_is_no_request_body_is_drift() {
    let authored = authored_spec();
    let mut generated = authored.clone();
    generated["components"]["schemas"]["News"]["additionalProperties"] = false.into();
    assert_eq!(compare(&authored, &generated).len(), 1);
}
