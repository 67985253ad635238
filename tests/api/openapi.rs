//! The OpenAPI document: served, self-contained, and true to the routes and
//! the domain's limits.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_is_served_and_describes_the_api() {
    let app = spawn_app().await;
    let res = app.get("/api/openapi.json").await;
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/items",
        "/api/items/{id}",
        "/api/users",
        "/api/users/{id}",
        "/api/v1/health/ready",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    // Every $ref, wherever it is, resolves inside the document; and there are
    // refs to check (the document shares schemas and error responses).
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() >= 5, "only {} $ref in the document", refs.len());
    for reference in &refs {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {reference}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {reference}");
    }
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => refs.push(r.clone()),
                    _ => collect_refs(v, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

/// The document as `kindling openapi` prints it (no server needed).
fn document() -> Value {
    serde_json::to_value(kindling::routes::openapi::spec()).unwrap()
}

/// Every (METHOD, path, operation) in the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((method.to_uppercase(), path.clone(), op));
        }
    }
    ops
}

#[test]
fn document_lists_exactly_the_mounted_routes() {
    // The API's routes and the telemetry stage's (`/metrics`).
    let mounted: BTreeSet<(String, String)> = kindling::routes::all()
        .iter()
        .chain(&kindling::telemetry::routes())
        .map(|r| {
            let path = r.uri.path().to_string().replace('<', "{").replace('>', "}");
            (r.method.as_str().to_owned(), path)
        })
        .collect();
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    let not_mounted: Vec<_> = documented.difference(&mounted).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from OpenAPI: {undocumented:?}"
    );
    assert!(
        not_mounted.is_empty(),
        "OpenAPI paths with no route: {not_mounted:?}"
    );
}

#[test]
fn every_error_response_is_problem_json_and_every_503_says_when_to_retry() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().unwrap() {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            let content = response["content"].as_object().unwrap();
            let types: Vec<_> = content.keys().collect();
            assert_eq!(
                types,
                ["application/problem+json"],
                "{method} {path} {status}"
            );
            let schema = &content["application/problem+json"]["schema"]["$ref"];
            assert!(
                schema == "#/components/schemas/Problem"
                    || schema == "#/components/schemas/ValidationProblem",
                "{method} {path} {status}: {schema}"
            );
            if status == "503" {
                let header = &response["headers"]["Retry-After"];
                assert!(
                    header.is_object(),
                    "{method} {path} 503 without Retry-After"
                );
            }
        }
    }
}

#[test]
fn item_responses_carry_their_etag_and_creations_their_location() {
    let doc = document();
    let paths = &doc["paths"];
    for (path, method, status) in [
        ("/api/items", "post", "201"),
        ("/api/items/{id}", "get", "200"),
        ("/api/items/{id}", "put", "200"),
    ] {
        let headers = &paths[path][method]["responses"][status]["headers"];
        assert!(
            headers["ETag"].is_object(),
            "{method} {path} {status}: no ETag"
        );
    }
    for path in ["/api/items", "/api/users"] {
        let headers = &paths[path]["post"]["responses"]["201"]["headers"];
        assert!(headers["Location"].is_object(), "POST {path}: no Location");
    }
}

/// utoipa takes only literals for limits; these keep them equal to the
/// constants the domain validates with.
#[test]
fn documented_limits_are_the_ones_the_domain_enforces() {
    use kindling::domain::item::{DESCRIPTION_MAX_CHARS, NAME_MAX_CHARS};
    use kindling::domain::page::{DEFAULT_LIMIT, MAX_LIMIT};

    let doc = document();
    let new_item = &doc["components"]["schemas"]["NewItem"]["properties"];
    assert_eq!(new_item["name"]["maxLength"], NAME_MAX_CHARS);
    assert_eq!(new_item["description"]["maxLength"], DESCRIPTION_MAX_CHARS);
    for path in ["/api/items", "/api/users"] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["schema"]["maximum"], MAX_LIMIT, "{path}");
        assert_eq!(limit["schema"]["default"], DEFAULT_LIMIT, "{path}");
    }
}
