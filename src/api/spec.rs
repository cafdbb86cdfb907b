//! What the spec says that poem-openapi cannot: added to the spec it generates, so that the served
//! spec is the authored `openapi.yaml` (`tests/api/contract.rs` compares the two).

use serde_json::{Value, json};

/// Public operations say `security: []`, nullable properties are required, and responses carry
/// their links.
pub fn complete_spec(spec: &mut Value) {
    mark_public_operations(spec);
    require_nullable_properties(spec);
    add_links(spec);
}

/// `security: []` on every operation that names no scheme: they are public, and saying so keeps
/// linters and readers from wondering (there is no global `security` to inherit).
fn mark_public_operations(spec: &mut Value) {
    let Some(paths) = spec["paths"].as_object_mut() else {
        return;
    };
    for operation in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|path| path.values_mut())
        .filter_map(Value::as_object_mut)
    {
        operation
            .entry("security")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
}

/// A nullable property is always written (as `null` when it has no value), so it is required:
/// generated clients then type it `T | null` rather than "`T`, `null`, or absent".
fn require_nullable_properties(spec: &mut Value) {
    let Some(schemas) = spec["components"]["schemas"].as_object_mut() else {
        return;
    };
    for schema in schemas.values_mut().filter_map(Value::as_object_mut) {
        let nullable: Vec<Value> = schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(_, property)| property["nullable"] == Value::Bool(true))
            .map(|(name, _)| Value::String(name.clone()))
            .collect();
        if nullable.is_empty() {
            continue;
        }
        let required = schema
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(required) = required.as_array_mut() {
            for name in nullable {
                if !required.contains(&name) {
                    required.push(name);
                }
            }
        }
    }
}

/// The links between operations: where a response's values can be used next.
fn add_links(spec: &mut Value) {
    let news_item = |operation: &str, description: &str| {
        json!({
            "operationId": operation,
            "parameters": {
                "id": "$response.body#/id",
                "header.If-Match": "$response.header.ETag",
            },
            "description": description,
        })
    };
    let refresh = json!({
        "operationId": "refreshToken",
        "requestBody": {"refresh_token": "$response.body#/refresh_token"},
        "description": "Exchange the refresh token for new tokens",
    });
    let links = [
        (
            "/news",
            "post",
            "201",
            json!({
                "GetNews": {
                    "operationId": "getNews",
                    "parameters": {"id": "$response.body#/id"},
                    "description": "The news item just created",
                },
                "ReplaceNews": news_item("replaceNews", "Replace the news item just created"),
                "UpdateNews": news_item("updateNews", "Change the news item just created"),
                "DeleteNews": news_item("deleteNews", "Delete the news item just created"),
            }),
        ),
        (
            "/news/{id}",
            "get",
            "200",
            json!({
                "GetNewsIfChanged": {
                    "operationId": "getNews",
                    "parameters": {
                        "id": "$request.path.id",
                        "header.If-None-Match": "$response.header.ETag",
                    },
                    "description": "Get the news item again, only if it has changed (else 304)",
                },
            }),
        ),
        (
            "/signin",
            "post",
            "200",
            json!({"RefreshToken": refresh.clone()}),
        ),
        (
            "/token/refresh",
            "post",
            "200",
            json!({"RefreshToken": refresh}),
        ),
    ];
    for (path, method, status, value) in links {
        if let Some(response) = spec["paths"][path][method]["responses"][status].as_object_mut() {
            response.insert("links".into(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_properties_become_required_once() {
        let mut spec = json!({"components": {"schemas": {"Page": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array"}, "next": {"type": "string", "nullable": true}},
        }}}});
        complete_spec(&mut spec);
        complete_spec(&mut spec);
        assert_eq!(
            spec["components"]["schemas"]["Page"]["required"],
            json!(["items", "next"])
        );
    }

    #[test]
    fn only_operations_without_security_become_public() {
        let mut spec = json!({"paths": {"/a": {
            "get": {"responses": {}},
            "post": {"security": [{"BearerAuth": []}], "responses": {}},
        }}});
        complete_spec(&mut spec);
        assert_eq!(spec["paths"]["/a"]["get"]["security"], json!([]));
        assert_eq!(
            spec["paths"]["/a"]["post"]["security"],
            json!([{"BearerAuth": []}])
        );
    }
}
