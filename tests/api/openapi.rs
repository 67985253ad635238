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
