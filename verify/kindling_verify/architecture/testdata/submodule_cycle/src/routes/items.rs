// The handler takes a shared response from the document's module...
use crate::routes::openapi::BAD_ID;

pub fn get() -> &'static str {
    BAD_ID
}
