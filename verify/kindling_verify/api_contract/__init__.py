"""The API against its own OpenAPI document: validated, then fuzzed with schemathesis."""
