//! The body of `POST /api/v1/screenshots`, checked the way PeekShot checks it.
//!
//! [`CreateRequest::parse`] is the only way to build a [`CreateRequest`], so
//! the handlers only ever hold a request with a project id, an absolute
//! http(s) URL and options of the right types. PeekShot's reference types
//! every field as a string while its stored records use real numbers and
//! booleans, so both spellings are accepted here (`"1280"` and `1280`,
//! `"true"` and `true`) and the options are kept as real values, which is how
//! the record echoes them. Unknown fields are ignored, as PeekShot does.

use serde_json::{Map, Value};
use url::Url;

/// Why a create body was refused; answered 400 with the message, which always
/// names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not JSON.
    #[error("request body must be JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("request body must be a JSON object")]
    NotAnObject,
    /// A required field is absent or null.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A field has a value of the wrong type or out of range.
    #[error("{field} {expected}")]
    Invalid {
        /// The field, as spelled in the body.
        field: &'static str,
        /// What the field must be, as the rest of the sentence.
        expected: &'static str,
    },
}

/// A create request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    /// The project the capture is for, still to be compared with the key's.
    pub project_id: String,
    /// The URL exactly as submitted; it is what records and stats show.
    pub url: String,
    /// The same URL parsed, to look at its host.
    pub parsed_url: Url,
    /// The recognised options, as real numbers, booleans and strings.
    pub options: Map<String, Value>,
    /// What the capture costs, from `full_page` and `retina`.
    pub credits: u32,
}

/// How an option field is checked and normalised.
#[derive(Debug, Clone, Copy)]
enum OptionKind {
    /// A whole number in the given inclusive range.
    Integer {
        min: u64,
        max: u64,
        expected: &'static str,
    },
    /// `true`/`false`, as a boolean or a string.
    Boolean,
    /// One of the image formats.
    FileType,
    /// A string.
    Text,
    /// Undocumented shape: kept as given.
    AsGiven,
}

const VIEWPORT: OptionKind = OptionKind::Integer {
    min: 1,
    max: 10_000,
    expected: "must be a whole number from 1 to 10000 (a number or a string)",
};

/// Every option PeekShot documents, with how it is checked.
const OPTIONS: [(&str, OptionKind); 20] = [
    ("width", VIEWPORT),
    ("height", VIEWPORT),
    ("file_type", OptionKind::FileType),
    ("full_page", OptionKind::Boolean),
    ("retina", OptionKind::Boolean),
    (
        "delay",
        OptionKind::Integer {
            min: 0,
            max: 60,
            expected: "must be a whole number of seconds from 0 to 60 (a number or a string)",
        },
    ),
    ("dark_mode", OptionKind::Boolean),
    ("disable_javascript", OptionKind::Boolean),
    ("disable_animations", OptionKind::Boolean),
    ("block_ads", OptionKind::Boolean),
    ("block_cookie_banner", OptionKind::Boolean),
    ("block_popups_by_heuristics", OptionKind::Boolean),
    ("fresh", OptionKind::Boolean),
    ("element_selector", OptionKind::Text),
    ("emulate_device", OptionKind::Text),
    ("inject_css", OptionKind::Text),
    ("inject_js", OptionKind::Text),
    ("proxy_url", OptionKind::Text),
    ("custom_header", OptionKind::AsGiven),
    ("cookie_template_id", OptionKind::AsGiven),
];

const FILE_TYPES: [&str; 4] = ["jpeg", "png", "webp", "avif"];

impl CreateRequest {
    /// Checks a create body. Null counts as absent for every field.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| RequestError::NotJson(e.to_string()))?;
        let Value::Object(fields) = value else {
            return Err(RequestError::NotAnObject);
        };

        let project_id = match present(&fields, "project_id") {
            None => return Err(RequestError::Missing("project_id")),
            Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            Some(_) => {
                return Err(RequestError::Invalid {
                    field: "project_id",
                    expected: "must be a non-empty string",
                });
            }
        };

        let url = match present(&fields, "url") {
            None => return Err(RequestError::Missing("url")),
            Some(Value::String(url)) => url.clone(),
            Some(_) => return Err(invalid_url()),
        };
        let parsed_url = Url::parse(&url).map_err(|_| invalid_url())?;
        if !matches!(parsed_url.scheme(), "http" | "https") || parsed_url.host_str().is_none() {
            return Err(invalid_url());
        }

        let mut options = Map::new();
        for (name, kind) in OPTIONS {
            if let Some(value) = present(&fields, name) {
                options.insert(name.to_owned(), normalise(name, kind, value)?);
            }
        }
        let credits = credits_for(is_on(&options, "full_page"), is_on(&options, "retina"));

        Ok(Self {
            project_id,
            url,
            parsed_url,
            options,
            credits,
        })
    }
}

/// Credits per capture, from the contract: 1 standard, 2 retina, 5 full
/// page, 10 full page with retina.
pub fn credits_for(full_page: bool, retina: bool) -> u32 {
    match (full_page, retina) {
        (false, false) => 1,
        (false, true) => 2,
        (true, false) => 5,
        (true, true) => 10,
    }
}

fn invalid_url() -> RequestError {
    RequestError::Invalid {
        field: "url",
        expected: "must be an absolute http:// or https:// URL",
    }
}

fn present<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|value| !value.is_null())
}

fn is_on(options: &Map<String, Value>, name: &str) -> bool {
    options.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Checks one option and returns it as the record stores it.
fn normalise(field: &'static str, kind: OptionKind, value: &Value) -> Result<Value, RequestError> {
    match kind {
        OptionKind::Integer { min, max, expected } => {
            let number = match value {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse::<u64>().ok(),
                _ => None,
            };
            number
                .filter(|n| (min..=max).contains(n))
                .map(Value::from)
                .ok_or(RequestError::Invalid { field, expected })
        }
        OptionKind::Boolean => match value {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(RequestError::Invalid {
                field,
                expected: "must be true or false (a boolean or a string)",
            }),
        },
        OptionKind::FileType => value
            .as_str()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| FILE_TYPES.contains(&s.as_str()))
            .map(Value::String)
            .ok_or(RequestError::Invalid {
                field,
                expected: "must be one of jpeg, png, webp, avif",
            }),
        OptionKind::Text => match value {
            Value::String(s) => Ok(Value::String(s.clone())),
            _ => Err(RequestError::Invalid {
                field,
                expected: "must be a string",
            }),
        },
        OptionKind::AsGiven => Ok(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: Value) -> Result<CreateRequest, RequestError> {
        CreateRequest::parse(body.to_string().as_bytes())
    }

    #[test]
    fn options_as_strings_and_as_real_values_normalise_alike() {
        let as_strings = parse(json!({
            "project_id": "p", "url": "https://example.com",
            "width": "1440", "height": "900", "full_page": "true", "retina": "FALSE",
            "delay": "2", "file_type": "WEBP", "dark_mode": "false",
        }));
        let as_values = parse(json!({
            "project_id": "p", "url": "https://example.com",
            "width": 1440, "height": 900, "full_page": true, "retina": false,
            "delay": 2, "file_type": "webp", "dark_mode": false,
        }));
        let as_strings = as_strings.map(|r| r.options);
        assert_eq!(as_strings, as_values.map(|r| r.options));
        let options = as_strings.unwrap_or_default();
        assert_eq!(options.get("width"), Some(&json!(1440)));
        assert_eq!(options.get("full_page"), Some(&json!(true)));
        assert_eq!(options.get("file_type"), Some(&json!("webp")));
    }

    #[test]
    fn credits_follow_full_page_and_retina() {
        let credits = |extra: Value| {
            let mut body = json!({"project_id": "p", "url": "https://example.com"});
            if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
                body.extend(extra);
            }
            parse(body).map(|r| r.credits)
        };
        assert_eq!(credits(json!({})), Ok(1));
        assert_eq!(credits(json!({"retina": "true"})), Ok(2));
        assert_eq!(credits(json!({"full_page": true})), Ok(5));
        assert_eq!(
            credits(json!({"full_page": "true", "retina": true})),
            Ok(10)
        );
    }

    #[test]
    fn missing_or_unusable_url_is_refused_naming_the_field() {
        for body in [
            json!({"project_id": "p"}),
            json!({"project_id": "p", "url": null}),
            json!({"project_id": "p", "url": "/relative/path"}),
            json!({"project_id": "p", "url": "ftp://example.com/file"}),
            json!({"project_id": "p", "url": 42}),
        ] {
            let message = parse(body).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.starts_with("url "), "{message}");
        }
    }

    #[test]
    fn bad_option_values_are_refused_naming_the_field() {
        let base = |field: &str, value: Value| {
            let mut body = json!({"project_id": "p", "url": "https://example.com"});
            if let Some(body) = body.as_object_mut() {
                body.insert(field.to_owned(), value);
            }
            parse(body).err()
        };
        for (field, value) in [
            ("width", json!("wide")),
            ("height", json!(0)),
            ("delay", json!(61)),
            ("retina", json!("yes")),
            ("file_type", json!("gif")),
            ("element_selector", json!(3)),
        ] {
            let message = base(field, value)
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(message.starts_with(field), "{field}: {message}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_project_id_is_required() {
        let accepted = parse(json!({
            "project_id": "p", "url": "https://example.com", "colour": "blue"
        }));
        assert!(accepted.is_ok_and(|r| r.options.is_empty()));
        assert_eq!(
            parse(json!({"url": "https://example.com"})),
            Err(RequestError::Missing("project_id"))
        );
        assert_eq!(
            CreateRequest::parse(b"[1, 2]"),
            Err(RequestError::NotAnObject)
        );
    }
}
