//! The served spec (`GET /openapi.json`, generated from the handlers) must say what `openapi.yaml`
//! says. Both are normalised by the narrow rules below, then compared; any other difference fails
//! with a list of JSON paths and both values.
//!
//! Normalisation rules (everything else must match exactly):
//! 1. Only `paths`, `components.schemas` and `components.securitySchemes` are compared; `info`,
//!    `servers` and the top-level `tags` list are documentation.
//! 2. `$ref`s to `#/components/parameters/…`, `…/responses/…`, `…/headers/…` and `…/links/…` are
//!    inlined (the served spec writes them inline; the hand-written spec shares them).
//! 3. Prose is not compared: `description`, `summary`, `example`, `examples`, `title` (as keys of a
//!    schema, parameter, response or operation — never a property of that name).
//! 4. Keys left at their OpenAPI default are dropped: `deprecated: false`, `required: false`,
//!    `nullable: false`, `readOnly: false`, `writeOnly: false`, `style: form` on query parameters,
//!    and `explode: true` on parameters (all of ours are scalars, where `explode` means nothing).
//! 5. Media types lose `; charset=utf-8`; header names compare case-insensitively; `required`
//!    lists and operation `tags` compare as sets; parameters compare by `(in, name)`; numbers
//!    compare by value (`100` is `100.0`).
//! 6. poem-openapi wraps a `$ref` that has siblings in `allOf: [{$ref}, {siblings}]` and repeats
//!    the siblings beside it: members of `allOf` that are empty or only repeat their parent's keys
//!    are dropped, and a schema that is nothing but `allOf: [x]` is `x`.

use serde_json::{Map, Value};

use crate::helpers::{TestApp, json_of, spawn_app};

const DOC_KEYS: &[&str] = &["description", "summary", "example", "examples", "title"];
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

fn authored_spec() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
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

fn normalise(spec: &Value) -> Value {
    let spec = inline_refs(spec, spec);
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
                out.insert(name, normalise_value(inner, None));
            }
            Value::Object(out)
        }
        Value::Object(map) => {
            let is_query_param = map.get("in") == Some(&Value::from("query"));
            let mut out = Map::new();
            for (key, inner) in map {
                let default = match key.as_str() {
                    "deprecated" | "required" | "nullable" | "readOnly" | "writeOnly" => {
                        inner == &Value::Bool(false)
                    }
                    "explode" => inner == &Value::Bool(true),
                    "style" => is_query_param && inner == &Value::from("form"),
                    _ => false,
                };
                if DOC_KEYS.contains(&key.as_str()) || default {
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
                    _ => {}
                }
                out.insert(key.clone(), normalised);
            }
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

/// Every difference, as `path: openapi.yaml has …, the server has …`.
fn differences(authored: &Value, served: &Value, path: &str, out: &mut Vec<String>) {
    match (authored, served) {
        (Value::Object(a), Value::Object(s)) => {
            let mut keys: Vec<&String> = a.keys().chain(s.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (a.get(key), s.get(key)) {
                    (Some(a), Some(s)) => differences(a, s, &child, out),
                    (Some(a), None) => out.push(format!("{child}: only in openapi.yaml: {a}")),
                    (None, Some(s)) => out.push(format!("{child}: only in the served spec: {s}")),
                    (None, None) => unreachable!(),
                }
            }
        }
        (Value::Array(a), Value::Array(s)) if a.len() == s.len() => {
            for (i, (a, s)) in a.iter().zip(s).enumerate() {
                differences(a, s, &format!("{path}/{i}"), out);
            }
        }
        (a, s) if a == s => {}
        (a, s) => out.push(format!("{path}: openapi.yaml has {a}, the server has {s}")),
    }
}

fn compare(authored: &Value, served: &Value) -> Vec<String> {
    let mut out = Vec::new();
    differences(&normalise(authored), &normalise(served), "", &mut out);
    out
}

/// The spec the server serves at `/openapi.json`.
async fn served_json(app: &TestApp) -> Value {
    json_of(app.client.get(format!("{}/openapi.json", app.address))).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_spec_is_the_authored_spec() {
    let app = spawn_app().await;
    let served = served_json(&app).await;
    let diff = compare(&authored_spec(), &served);
    assert!(
        diff.is_empty(),
        "openapi.yaml and the served spec differ in {} places:\n{}",
        diff.len(),
        diff.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_yaml_spec_endpoint_serves_the_same_spec() {
    let app = spawn_app().await;
    let json = served_json(&app).await;
    let response = app
        .client
        .get(format!("{}/openapi.yaml", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let yaml: Value = serde_yaml::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(json, yaml);
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
    drifted["components"]["schemas"]["News"]["properties"]["secret"] =
        serde_json::json!({"type": "string"});
    let diff = compare(&authored, &drifted);
    assert_eq!(diff.len(), 3, "{diff:#?}");
    assert!(
        diff[0].contains("~1news~1{id}/delete/responses/403"),
        "{diff:#?}"
    );
}

#[test]
fn prose_and_defaults_do_not_count_as_drift() {
    let authored = authored_spec();
    let mut reworded = authored.clone();
    reworded["paths"]["/news"]["get"]["summary"] = "Something else".into();
    reworded["components"]["schemas"]["News"]["properties"]["title"]["description"] = "x".into();
    reworded["paths"]["/whoami"]["get"]["deprecated"] = false.into();
    assert!(compare(&authored, &reworded).is_empty());
}
