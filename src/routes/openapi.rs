//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the API.
//!
//! Written by hand next to the routes; the unit test at the bottom fails when
//! a mounted route is missing from the document or the document describes a
//! route that is not mounted, and the integration tests check responses
//! against the documented status codes.

use rocket::get;
use rocket::serde::json::Json;
use serde_json::{Value, json};

use crate::domain::item::{DESCRIPTION_MAX_CHARS, NAME_MAX_CHARS};
use crate::domain::page::{DEFAULT_LIMIT, MAX_LIMIT};

#[get("/api/openapi.json")]
pub fn document() -> Json<Value> {
    Json(spec())
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn json_body(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

/// Errors every database-backed operation can return.
fn common_errors() -> Value {
    json!({
        "503": {
            "description": "Database unavailable or too slow; retry after the given seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        }
    })
}

fn with_common(responses: Value) -> Value {
    merge(responses, common_errors())
}

fn body_errors() -> Value {
    json!({
        "400": problem("Malformed JSON"),
        "413": problem("Body larger than BODY_LIMIT_BYTES (default 65536)"),
        "415": problem("Content-Type is not application/json"),
        "422": {
            "description": "Well-formed but invalid: `errors` maps each field to its message",
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}}
        }
    })
}

/// `a` with the members of `b` added (both JSON objects).
fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(target), Value::Object(extra)) = (a.as_object_mut(), b) {
        target.extend(extra);
    }
    a
}

fn paging_parameters() -> Value {
    json!([
        {"name": "limit", "in": "query", "required": false,
         "description": format!("Page size, 1..={MAX_LIMIT} (default {DEFAULT_LIMIT}); larger values are rejected with 422, not clamped"),
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
        {"name": "cursor", "in": "query", "required": false,
         "description": "Opaque `next_cursor` from the previous page; any other value is a 422. \
            A walk returns every row committed before it started exactly once, in id order, \
            never a row twice. Ids are taken at insert, not commit: a row committed after \
            the walk read past its id appears only in the next walk.",
         "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}}
    ])
}

fn id_parameter() -> Value {
    json!([{"name": "id", "in": "path", "required": true,
            "schema": {"type": "integer", "format": "int64", "minimum": 1}}])
}

fn probe(summary: &str) -> Value {
    json!({"get": {
        "summary": summary,
        "tags": ["health"],
        "responses": {
            "200": json_body("Passing", "Probe"),
            "503": problem("Failing; `checks` says which check failed")
        }
    }})
}

pub fn spec() -> Value {
    let id_400 = problem("The id is not a positive integer");
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "kindling API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Items and users over a pooled Postgres. Every error is RFC 9457 application/problem+json."
        },
        "paths": {
            "/api/items": {
                "get": {
                    "operationId": "listItems", "tags": ["items"],
                    "parameters": paging_parameters(),
                    "responses": with_common(json!({
                        "200": json_body("A page of items in id order", "ItemPage"),
                        "422": problem("Invalid limit or cursor")
                    }))
                },
                "post": {
                    "operationId": "createItem", "tags": ["items"],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}},
                    "responses": with_common(merge(json!({
                        "201": {
                            "description": "Created",
                            "headers": {
                                "Location": {"schema": {"type": "string"}},
                                "ETag": {"schema": {"type": "string"}}
                            },
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}
                        }
                    }), body_errors()))
                }
            },
            "/api/items/{id}": {
                "parameters": id_parameter(),
                "get": {
                    "operationId": "getItem", "tags": ["items"],
                    "responses": with_common(json!({
                        "200": {
                            "description": "The item; ETag is its version",
                            "headers": {"ETag": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}
                        },
                        "400": id_400,
                        "404": problem("No such item")
                    }))
                },
                "put": {
                    "operationId": "replaceItem", "tags": ["items"],
                    "parameters": [{"name": "If-Match", "in": "header", "required": false,
                                    "description": "Strong ETag(s) of the version being replaced, or *",
                                    "schema": {"type": "string"}}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}},
                    "responses": with_common(merge(json!({
                        "200": {
                            "description": "Replaced; version incremented",
                            "headers": {"ETag": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}
                        },
                        "404": problem("No such item"),
                        "412": problem("If-Match does not match the current version; nothing was changed")
                    }), body_errors()))
                },
                "delete": {
                    "operationId": "deleteItem", "tags": ["items"],
                    "responses": with_common(json!({
                        "204": {"description": "Deleted"},
                        "400": id_400,
                        "404": problem("No such item")
                    }))
                }
            },
            "/api/users": {
                "get": {
                    "operationId": "listUsers", "tags": ["users"],
                    "parameters": paging_parameters(),
                    "responses": with_common(json!({
                        "200": json_body("A page of users in id order", "UserPage"),
                        "422": problem("Invalid limit or cursor")
                    }))
                },
                "post": {
                    "operationId": "createUser", "tags": ["users"],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewUser"}}}},
                    "responses": with_common(merge(json!({
                        "201": {
                            "description": "Created",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}
                        },
                        "409": problem("Username or email already taken (case-insensitive)")
                    }), body_errors()))
                }
            },
            "/api/users/{id}": {
                "parameters": id_parameter(),
                "get": {
                    "operationId": "getUser", "tags": ["users"],
                    "responses": with_common(json!({
                        "200": json_body("The user", "User"),
                        "400": id_400,
                        "404": problem("No such user")
                    }))
                }
            },
            "/api/v1/health/live": probe("Liveness: the process answers; never touches the database"),
            "/health": probe("Alias of /api/v1/health/live"),
            "/api/v1/health/startup": probe("Start-up complete (configuration, pool, migrations)"),
            "/api/v1/health/ready": probe("Postgres answers and the schema is at the latest migration"),
            "/db-check": probe("Alias of /api/v1/health/ready"),
            "/api/v1/health": {"get": {
                "summary": "Health report with every check's status and latency; always 200",
                "tags": ["health"],
                "responses": {"200": json_body("Report", "HealthReport")}
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (text exposition format 0.0.4)",
                "tags": ["meta"],
                "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}}
            }},
            "/api/openapi.json": {"get": {
                "summary": "This document",
                "tags": ["meta"],
                "responses": {"200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {}}}}
            }}
        },
        "components": {"schemas": {
            "NewItem": {
                "type": "object", "additionalProperties": false, "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX_CHARS,
                             "description": "At most 200 characters as sent and not only whitespace; stored trimmed"},
                    "description": {"type": ["string", "null"], "maxLength": DESCRIPTION_MAX_CHARS}
                }
            },
            "Item": {
                "type": "object",
                "required": ["id", "name", "description", "created_at", "updated_at", "version"],
                "properties": {
                    "id": {"type": "integer", "format": "int64"},
                    "name": {"type": "string"},
                    "description": {"type": ["string", "null"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "version": {"type": "integer", "minimum": 1}
                }
            },
            "ItemPage": {
                "type": "object", "required": ["items", "next_cursor"],
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                    "next_cursor": {"type": ["string", "null"]}
                }
            },
            "NewUser": {
                "type": "object", "additionalProperties": false, "required": ["username", "email"],
                "properties": {
                    "username": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{3,50}$"},
                    "email": {"type": "string", "format": "email", "maxLength": 254}
                }
            },
            "User": {
                "type": "object", "required": ["id", "username", "email", "created_at"],
                "properties": {
                    "id": {"type": "integer", "format": "int64"},
                    "username": {"type": "string"},
                    "email": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"}
                }
            },
            "UserPage": {
                "type": "object", "required": ["items", "next_cursor"],
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/User"}},
                    "next_cursor": {"type": ["string", "null"]}
                }
            },
            "Problem": {
                "type": "object", "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                    "request_id": {"type": "string"}
                }
            },
            "ValidationProblem": {
                "allOf": [
                    {"$ref": "#/components/schemas/Problem"},
                    {"type": "object", "required": ["errors"],
                     "properties": {"errors": {"type": "object", "additionalProperties": {"type": "string"}}}}
                ]
            },
            "Probe": {
                "type": "object", "required": ["status"],
                "properties": {"status": {"const": "ok"}, "checks": {"type": "object"}}
            },
            "HealthReport": {
                "type": "object", "required": ["status", "checks"],
                "properties": {
                    "status": {"enum": ["healthy", "degraded", "unhealthy"]},
                    "version": {"type": "string"},
                    "checks": {"type": "object", "additionalProperties": {
                        "type": "object", "required": ["status", "latency_ms"],
                        "properties": {
                            "status": {"enum": ["up", "down", "unknown"]},
                            "latency_ms": {"type": "number"},
                            "detail": {"type": "string"}
                        }
                    }}
                }
            }
        }}
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::spec;

    /// (METHOD, /path/{param}) for every mounted route: the API's and the
    /// telemetry stage's.
    fn mounted() -> BTreeSet<(String, String)> {
        crate::routes::all()
            .iter()
            .chain(&crate::telemetry::routes())
            .map(|r| {
                let path = r.uri.path().to_string().replace('<', "{").replace('>', "}");
                (r.method.as_str().to_owned(), path)
            })
            .collect()
    }

    fn documented() -> BTreeSet<(String, String)> {
        let spec = spec();
        let mut ops = BTreeSet::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for method in ["get", "put", "post", "delete", "patch"] {
                if item.get(method).is_some() {
                    ops.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    #[test]
    fn document_matches_mounted_routes_exactly() {
        let mounted = mounted();
        let documented = documented();
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
}
