//! Reads fields out of a JSON object, collecting one message per bad field and
//! rejecting fields the schema does not know.

use serde_json::{Map, Value};

use crate::error::FieldErrors;

pub(crate) struct ObjectReader {
    fields: Map<String, Value>,
    pub(crate) errors: FieldErrors,
}

impl ObjectReader {
    /// Starts reading `body`, which must be an object whose keys are all in `known`.
    pub(crate) fn new(body: Value, known: &[&str]) -> Result<Self, FieldErrors> {
        let Value::Object(fields) = body else {
            return Err(FieldErrors::from([(
                "body".to_owned(),
                "must be a JSON object".to_owned(),
            )]));
        };
        let errors = fields
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| (k.clone(), "is not a known field".to_owned()))
            .collect();
        Ok(ObjectReader { fields, errors })
    }

    /// A string that must be present.
    pub(crate) fn required_string(&mut self, key: &str) -> Option<String> {
        match self.fields.remove(key) {
            None | Some(Value::Null) => self.fail(key, "is required"),
            Some(Value::String(s)) => self.storable(key, s),
            Some(_) => self.fail(key, "must be a string"),
        }
    }

    /// A string that may be absent or null (both mean "no value").
    pub(crate) fn optional_string(&mut self, key: &str) -> Option<Option<String>> {
        match self.fields.remove(key) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => self.storable(key, s).map(Some),
            Some(_) => self.fail(key, "must be a string or null"),
        }
    }

    /// Postgres text cannot hold U+0000; refuse it here rather than fail in SQL.
    fn storable(&mut self, key: &str, s: String) -> Option<String> {
        if s.contains('\0') {
            self.fail(key, "must not contain the NUL character (U+0000)")
        } else {
            Some(s)
        }
    }

    pub(crate) fn fail<T>(&mut self, key: &str, message: &str) -> Option<T> {
        self.errors.insert(key.to_owned(), message.to_owned());
        None
    }

    /// Returns the built value when no field failed.
    pub(crate) fn finish<T>(self, value: Option<T>) -> Result<T, FieldErrors> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(self.errors),
        }
    }
}
