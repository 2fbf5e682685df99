//! JSON-Schema checks of a method's input (before anything is sent) and
//! output (before it reaches the script), with the failing field named.

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// A compiled inputSchema or outputSchema.
pub(crate) struct Schema {
    validator: Validator,
}

/// The first place a value breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// Dotted path of the failing field (`labelIds[2]`); empty for the
    /// value as a whole.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "`{}`: {}", self.field, self.reason)
        }
    }
}

impl Schema {
    /// Compiles `schema` (definitions are checked at load, so this only
    /// fails on a definition that skipped validation).
    pub(crate) fn compile(schema: &Value) -> Result<Self, String> {
        jsonschema::validator_for(schema)
            .map(|validator| Self { validator })
            .map_err(|e| e.to_string())
    }

    /// Checks `value`. With `echo_values` false the reason leaves the
    /// offending value out: provider output may be private, and the reason
    /// is stored with the run.
    pub(crate) fn check(&self, value: &Value, echo_values: bool) -> Result<(), SchemaViolation> {
        let Some(error) = self.validator.iter_errors(value).next() else {
            return Ok(());
        };
        let reason = if echo_values {
            error.to_string()
        } else {
            error.masked().to_string()
        };
        // A missing or unexpected property is named as the field itself.
        let mut field = dotted(&error.instance_path().to_string());
        let named = match error.kind() {
            ValidationErrorKind::Required { property } => property.as_str().map(String::from),
            ValidationErrorKind::AdditionalProperties { unexpected } if unexpected.len() == 1 => {
                unexpected.first().cloned()
            }
            _ => None,
        };
        if let Some(name) = named {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(&name);
        }
        Err(SchemaViolation {
            field,
            reason: shorten(&reason),
        })
    }
}

/// `/messages/0/id` as `messages[0].id`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

/// Long values echoed by the validator stay readable.
fn shorten(reason: &str) -> String {
    const MAX: usize = 300;
    if reason.chars().count() <= MAX {
        return reason.to_string();
    }
    let cut: String = reason.chars().take(MAX).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_name_the_field() {
        let schema = Schema::compile(&json!({
            "type": "object",
            "properties": {
                "maxResults": { "type": "integer", "maximum": 500 },
                "labelIds": { "type": "array", "items": { "type": "string" } }
            },
            "required": ["maxResults"],
            "additionalProperties": false
        }))
        .unwrap();
        assert!(schema.check(&json!({ "maxResults": 5 }), true).is_ok());
        let too_big = schema
            .check(&json!({ "maxResults": 600 }), true)
            .unwrap_err();
        assert_eq!(too_big.field, "maxResults");
        assert!(too_big.reason.contains("500"), "{too_big}");
        let item = schema
            .check(&json!({ "maxResults": 1, "labelIds": ["a", 7] }), true)
            .unwrap_err();
        assert_eq!(item.field, "labelIds[1]");
        let missing = schema.check(&json!({}), true).unwrap_err();
        assert_eq!(missing.field, "maxResults");
        assert!(missing.reason.contains("maxResults"), "{missing}");
        let extra = schema
            .check(&json!({ "maxResults": 1, "colour": "red" }), true)
            .unwrap_err();
        assert!(extra.reason.contains("colour"), "{extra}");
        assert_eq!(extra.field, "colour");
    }

    #[test]
    fn masked_reasons_leave_the_value_out() {
        let schema = Schema::compile(&json!({
            "type": "object",
            "properties": { "id": { "type": "string" } }
        }))
        .unwrap();
        let violation = schema
            .check(&json!({ "id": 424242424242_u64 }), false)
            .unwrap_err();
        assert_eq!(violation.field, "id");
        assert!(!violation.reason.contains("424242424242"), "{violation}");
    }
}
