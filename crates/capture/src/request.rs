//! Capture requests: the JSON a producer puts on the queue, and its validation.
//!
//! A message body is parsed in two steps. Serde reads it into [`RawRequest`], which mirrors the
//! wire format field for field and rejects unknown fields; [`CaptureRequest::parse`] then checks
//! every value and builds the domain types, so the rest of the code only ever holds a request
//! that PeekShot can accept. Every error names the field that was wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use url::{Host, Url};

/// Longest URL accepted. Browsers and CDNs cut off around 2 KB to 8 KB; PeekShot documents no
/// limit, so we pick the conservative common one.
pub const MAX_URL_LEN: usize = 2048;
/// Viewport width range in CSS pixels: from a small phone to a 4K screen.
pub const WIDTH_RANGE: (u32, u32) = (320, 3840);
/// Viewport height range in CSS pixels.
pub const HEIGHT_RANGE: (u32, u32) = (240, 4320);
/// PeekShot waits at most 60 seconds before capturing.
pub const MAX_DELAY_SECONDS: u32 = 60;
/// Longest CSS selector or `xpath=` expression accepted.
pub const MAX_SELECTOR_LEN: usize = 512;
/// Producer metadata is for small labels (team, ticket, job id), not payloads.
pub const MAX_METADATA_ENTRIES: usize = 16;
/// Longest metadata key.
pub const MAX_METADATA_KEY_LEN: usize = 64;
/// Longest metadata value.
pub const MAX_METADATA_VALUE_LEN: usize = 256;
/// Longest capture id: long enough for a UUID with a prefix, short enough for a DynamoDB key.
pub const MAX_CAPTURE_ID_LEN: usize = 128;

/// The wire format of a capture request, exactly as producers write it (camelCase JSON).
///
/// The smallest valid message is the shape PeekShot's integration guide shows,
/// `{"url": "...", "viewport": {"width": 1280, "height": 800}}`. Unknown fields are an error so
/// that a misspelt option (`fullpage`) is reported instead of silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRequest {
    /// Read from the JSON value before this struct is built (an invalid one must not hide the
    /// id); declared so that `deny_unknown_fields` accepts it.
    #[allow(dead_code)]
    capture_id: Option<String>,
    url: String,
    viewport: Option<RawViewport>,
    full_page: Option<bool>,
    file_type: Option<FileType>,
    retina: Option<bool>,
    delay: Option<u32>,
    dark_mode: Option<bool>,
    block_ads: Option<bool>,
    block_cookie_banner: Option<bool>,
    element_selector: Option<String>,
    fresh: Option<bool>,
    metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawViewport {
    width: u32,
    height: u32,
}

/// A request id that PeekShot does not know yet: the key under which a producer's capture is
/// stored and deduplicated. Defaults to the SQS message id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaptureId(String);

impl CaptureId {
    /// Accepts 1 to [`MAX_CAPTURE_ID_LEN`] characters of `A-Z a-z 0-9 - _ . :`, the characters
    /// SQS message ids, UUIDs and typical job keys are made of.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() || value.len() > MAX_CAPTURE_ID_LEN {
            return Err(format!("must be 1 to {MAX_CAPTURE_ID_LEN} characters long"));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(format!(
                "may only contain letters, digits, '-', '_', '.' and ':' (found {bad:?})"
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The capture id for a message whose body names none: the SQS message id, which is a
    /// UUID. Characters a capture id cannot hold are replaced, so any id SQS sends still works.
    pub fn from_message_id(message_id: &str) -> CaptureId {
        let cleaned: String = message_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
                    c
                } else {
                    '-'
                }
            })
            .take(MAX_CAPTURE_ID_LEN)
            .collect();
        if cleaned.is_empty() {
            Self("unnamed-message".to_owned())
        } else {
            Self(cleaned)
        }
    }

    /// The id as stored and logged.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CaptureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Image formats PeekShot renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    /// The default when none is given.
    Jpeg,
    /// Lossless.
    Png,
    /// Smaller than JPEG at equal quality.
    Webp,
    /// Smallest, least widely supported.
    Avif,
}

impl FileType {
    /// The value PeekShot's `file_type` field takes.
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Jpeg => "jpeg",
            FileType::Png => "png",
            FileType::Webp => "webp",
            FileType::Avif => "avif",
        }
    }
}

/// Browser window size in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewport {
    /// Width, within [`WIDTH_RANGE`].
    pub width: u32,
    /// Height, within [`HEIGHT_RANGE`].
    pub height: u32,
}

/// How PeekShot should render the page. `None` leaves PeekShot's default in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureOptions {
    /// Browser window size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub viewport: Option<Viewport>,
    /// Capture the whole scrollable page (5 credits instead of 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_page: Option<bool>,
    /// Output format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_type: Option<FileType>,
    /// Double pixel density (2 credits instead of 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retina: Option<bool>,
    /// Seconds to wait after load before capturing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<u32>,
    /// Ask the page for its dark colour scheme.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dark_mode: Option<bool>,
    /// Block ads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_ads: Option<bool>,
    /// Hide cookie-consent banners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_cookie_banner: Option<bool>,
    /// Capture only the element matched by this CSS selector or `xpath=` expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element_selector: Option<String>,
    /// Bypass PeekShot's cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fresh: Option<bool>,
}

/// A validated capture request: everything the submitter needs to call PeekShot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    /// Idempotency key chosen by the producer, or the SQS message id.
    pub capture_id: CaptureId,
    /// The page to capture: absolute, public `http` or `https`.
    pub url: Url,
    /// Rendering options.
    pub options: CaptureOptions,
    /// Producer labels kept with the record and never sent to PeekShot.
    pub metadata: BTreeMap<String, String>,
}

/// Why a message body is not a capture request. The message is answered with a FAILED record
/// carrying [`InvalidRequest::reason`], and is never retried: sending it again cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid capture request: {reason}")]
pub struct InvalidRequest {
    /// The capture id to record the failure under: the body's own `captureId` when it has a
    /// valid one, otherwise the SQS message id.
    pub capture_id: CaptureId,
    /// What was wrong, starting with the field's path (`viewport.width: ...`).
    pub reason: String,
}

impl CaptureRequest {
    /// Parses and validates a message body. `message_id` is the fallback capture id.
    pub fn parse(body: &str, message_id: &CaptureId) -> Result<Self, InvalidRequest> {
        let invalid = |capture_id: CaptureId, reason: String| InvalidRequest { capture_id, reason };

        let value: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| invalid(message_id.clone(), format!("body is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(invalid(
                message_id.clone(),
                "body must be a JSON object with at least a \"url\" field".to_owned(),
            ));
        }

        let capture_id = match value.get("captureId") {
            None => message_id.clone(),
            Some(serde_json::Value::String(id)) => CaptureId::parse(id)
                .map_err(|why| invalid(message_id.clone(), format!("captureId: {why}")))?,
            Some(_) => {
                return Err(invalid(
                    message_id.clone(),
                    "captureId: must be a string".into(),
                ));
            }
        };

        let raw: RawRequest = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let reason = if path == "." {
                inner
            } else {
                format!("{path}: {inner}")
            };
            invalid(capture_id.clone(), reason)
        })?;

        validate(raw, capture_id.clone()).map_err(|reason| invalid(capture_id, reason))
    }
}

fn validate(raw: RawRequest, capture_id: CaptureId) -> Result<CaptureRequest, String> {
    let url = parse_public_url(&raw.url).map_err(|why| format!("url: {why}"))?;

    let viewport = raw
        .viewport
        .map(|v| {
            check_range("viewport.width", v.width, WIDTH_RANGE)?;
            check_range("viewport.height", v.height, HEIGHT_RANGE)?;
            Ok::<_, String>(Viewport {
                width: v.width,
                height: v.height,
            })
        })
        .transpose()?;

    if let Some(delay) = raw.delay {
        check_range("delay", delay, (0, MAX_DELAY_SECONDS))?;
    }

    if let Some(selector) = &raw.element_selector
        && (selector.trim().is_empty() || selector.len() > MAX_SELECTOR_LEN)
    {
        return Err(format!(
            "elementSelector: must be a non-empty selector of at most {MAX_SELECTOR_LEN} characters"
        ));
    }

    let metadata = raw.metadata.unwrap_or_default();
    validate_metadata(&metadata)?;

    Ok(CaptureRequest {
        capture_id,
        url,
        options: CaptureOptions {
            viewport,
            full_page: raw.full_page,
            file_type: raw.file_type,
            retina: raw.retina,
            delay: raw.delay,
            dark_mode: raw.dark_mode,
            block_ads: raw.block_ads,
            block_cookie_banner: raw.block_cookie_banner,
            element_selector: raw.element_selector,
            fresh: raw.fresh,
        },
        metadata,
    })
}

fn check_range(field: &str, value: u32, (min, max): (u32, u32)) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{field}: must be between {min} and {max}, got {value}"
        ))
    }
}

fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), String> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(format!(
            "metadata: at most {MAX_METADATA_ENTRIES} entries, got {}",
            metadata.len()
        ));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.len() > MAX_METADATA_KEY_LEN {
            return Err(format!(
                "metadata: key {key:?} must be 1 to {MAX_METADATA_KEY_LEN} characters"
            ));
        }
        if value.len() > MAX_METADATA_VALUE_LEN {
            return Err(format!(
                "metadata.{key}: value must be at most {MAX_METADATA_VALUE_LEN} characters"
            ));
        }
    }
    Ok(())
}

/// Accepts an absolute `http`/`https` URL that PeekShot can reach: no credentials, and no
/// localhost or private-network literal. Host names are not resolved here (a name that points
/// at a private address is PeekShot's to refuse); literals are caught because each one would
/// cost a round trip and a credit-free but certain failure.
pub fn parse_public_url(input: &str) -> Result<Url, String> {
    if input.len() > MAX_URL_LEN {
        return Err(format!(
            "must be at most {MAX_URL_LEN} characters, got {}",
            input.len()
        ));
    }
    let url = Url::parse(input).map_err(|e| format!("not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be http or https, got {:?}",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".to_owned());
    }
    match url.host() {
        None => Err("has no host".to_owned()),
        Some(Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.');
            if domain == "localhost" || domain.ends_with(".localhost") {
                Err(format!(
                    "host {domain:?} is local; PeekShot cannot reach it"
                ))
            } else {
                Ok(url)
            }
        }
        Some(Host::Ipv4(ip)) if !is_public_ipv4(ip) => Err(format!(
            "host {ip} is a loopback, private or reserved address; PeekShot cannot reach it"
        )),
        Some(Host::Ipv6(ip)) if !is_public_ip(IpAddr::V6(ip)) => Err(format!(
            "host [{ip}] is a loopback, private or reserved address; PeekShot cannot reach it"
        )),
        Some(_) => Ok(url),
    }
}

fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_ipv4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_ipv4(v4),
            None => is_public_ipv6(v6),
        },
    }
}

fn is_public_ipv4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared_address_space = a == 100 && (64..128).contains(&b);
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || shared_address_space
        || a == 0)
}

fn is_public_ipv6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = (first & 0xfe00) == 0xfc00;
    let link_local = (first & 0xffc0) == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

/// The message body with its capture id written in, for sending it again under a new SQS
/// message id (the submitter's requeue of a deferred message, an operator's redrive): a body
/// that named no `captureId` is keyed by the message id it first arrived with, and must keep
/// that key. A body that names one comes back unchanged; `None` when the body is not a JSON
/// object.
pub fn body_with_capture_id(body: &str, capture_id: &CaptureId) -> Option<String> {
    let serde_json::Value::Object(mut fields) = serde_json::from_str(body).ok()? else {
        return None;
    };
    if fields.contains_key("captureId") {
        return Some(body.to_owned());
    }
    fields.insert(
        "captureId".into(),
        serde_json::Value::String(capture_id.as_str().to_owned()),
    );
    Some(serde_json::Value::Object(fields).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_id() -> CaptureId {
        CaptureId::parse("msg-1").unwrap()
    }

    fn parse(body: &str) -> Result<CaptureRequest, InvalidRequest> {
        CaptureRequest::parse(body, &message_id())
    }

    fn reason(body: &str) -> String {
        parse(body).unwrap_err().reason
    }

    #[test]
    fn integration_guide_shape_is_accepted_and_keyed_by_message_id() {
        let request =
            parse(r#"{"url": "https://example.com", "viewport": {"width": 1280, "height": 800}}"#)
                .unwrap();
        assert_eq!(request.capture_id.as_str(), "msg-1");
        assert_eq!(request.url.as_str(), "https://example.com/");
        assert_eq!(
            request.options.viewport,
            Some(Viewport {
                width: 1280,
                height: 800
            })
        );
    }

    #[test]
    fn every_documented_option_is_carried_into_the_request() {
        let request = parse(
            r##"{"captureId": "job-7", "url": "https://example.com/a", "fullPage": true,
                "fileType": "webp", "retina": true, "delay": 3, "darkMode": true,
                "blockAds": true, "blockCookieBanner": false, "elementSelector": "#main",
                "fresh": true, "metadata": {"team": "docs"}}"##,
        )
        .unwrap();
        assert_eq!(request.capture_id.as_str(), "job-7");
        let o = &request.options;
        assert_eq!(o.full_page, Some(true));
        assert_eq!(o.file_type, Some(FileType::Webp));
        assert_eq!(o.retina, Some(true));
        assert_eq!(o.delay, Some(3));
        assert_eq!(o.dark_mode, Some(true));
        assert_eq!(o.block_ads, Some(true));
        assert_eq!(o.block_cookie_banner, Some(false));
        assert_eq!(o.element_selector.as_deref(), Some("#main"));
        assert_eq!(o.fresh, Some(true));
        assert_eq!(request.metadata["team"], "docs");
    }

    #[test]
    fn body_that_is_not_json_is_rejected_under_the_message_id() {
        let err = parse("not json {").unwrap_err();
        assert_eq!(err.capture_id.as_str(), "msg-1");
        assert!(err.reason.starts_with("body is not JSON"), "{}", err.reason);
    }

    #[test]
    fn json_that_is_not_an_object_is_rejected() {
        assert!(reason("[1, 2]").contains("JSON object"));
    }

    #[test]
    fn missing_url_is_named() {
        assert!(reason(r#"{"viewport": {"width": 1280, "height": 800}}"#).contains("url"));
    }

    #[test]
    fn unknown_option_is_an_error_naming_it() {
        let why = reason(r#"{"url": "https://example.com", "fullpage": true}"#);
        assert!(why.contains("unknown field `fullpage`"), "{why}");
    }

    #[test]
    fn json_schema_lists_exactly_the_fields_the_parser_accepts() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/capture-request.schema.json"))
                .expect("the schema is JSON");
        let documented: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();

        // serde names every accepted field when it meets an unknown one.
        let why = reason(r#"{"url": "https://example.com", "zzz": 1}"#);
        let (_, expected) = why.split_once("expected one of").expect(&why);
        let mut accepted: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let mut documented = documented;
        accepted.sort_unstable();
        documented.sort_unstable();
        assert_eq!(accepted, documented);
    }

    #[test]
    fn unknown_viewport_field_is_an_error() {
        let why = reason(
            r#"{"url": "https://example.com", "viewport": {"width": 800, "height": 600, "depth": 2}}"#,
        );
        assert!(why.starts_with("viewport"), "{why}");
    }

    #[test]
    fn wrong_type_names_the_field_path() {
        let why = reason(
            r#"{"url": "https://example.com", "viewport": {"width": "wide", "height": 800}}"#,
        );
        assert!(why.starts_with("viewport.width:"), "{why}");
    }

    #[test]
    fn invalid_body_keeps_its_own_capture_id() {
        let err = parse(r#"{"captureId": "mine", "url": "ftp://example.com"}"#).unwrap_err();
        assert_eq!(err.capture_id.as_str(), "mine");
        assert!(err.reason.starts_with("url: scheme"), "{}", err.reason);
    }

    #[test]
    fn malformed_capture_id_falls_back_to_message_id_and_is_named() {
        let err = parse(r#"{"captureId": "has space", "url": "https://example.com"}"#).unwrap_err();
        assert_eq!(err.capture_id.as_str(), "msg-1");
        assert!(err.reason.starts_with("captureId:"), "{}", err.reason);
    }

    #[test]
    fn viewport_out_of_range_is_named_with_bounds() {
        let why =
            reason(r#"{"url": "https://example.com", "viewport": {"width": 10, "height": 800}}"#);
        assert_eq!(why, "viewport.width: must be between 320 and 3840, got 10");
        let why = reason(
            r#"{"url": "https://example.com", "viewport": {"width": 800, "height": 99999}}"#,
        );
        assert!(why.starts_with("viewport.height:"), "{why}");
    }

    #[test]
    fn delay_over_sixty_seconds_is_rejected() {
        assert_eq!(
            reason(r#"{"url": "https://example.com", "delay": 61}"#),
            "delay: must be between 0 and 60, got 61"
        );
    }

    #[test]
    fn negative_delay_is_rejected_by_type() {
        assert!(reason(r#"{"url": "https://example.com", "delay": -1}"#).starts_with("delay:"));
    }

    #[test]
    fn unsupported_file_type_is_named() {
        assert!(
            reason(r#"{"url": "https://example.com", "fileType": "gif"}"#).starts_with("fileType:")
        );
    }

    #[test]
    fn empty_selector_is_rejected() {
        assert!(
            reason(r#"{"url": "https://example.com", "elementSelector": "  "}"#)
                .starts_with("elementSelector:")
        );
    }

    #[test]
    fn oversized_metadata_is_rejected() {
        let entries: Vec<String> = (0..17).map(|i| format!("\"k{i}\": \"v\"")).collect();
        let body = format!(
            r#"{{"url": "https://example.com", "metadata": {{{}}}}}"#,
            entries.join(",")
        );
        assert!(reason(&body).starts_with("metadata: at most 16"));
        let long = "x".repeat(257);
        let body = format!(r#"{{"url": "https://example.com", "metadata": {{"k": "{long}"}}}}"#);
        assert!(reason(&body).starts_with("metadata.k:"));
    }

    #[test]
    fn metadata_values_must_be_strings() {
        assert!(
            reason(r#"{"url": "https://example.com", "metadata": {"n": 5}}"#)
                .starts_with("metadata")
        );
    }

    #[test]
    fn local_and_private_hosts_are_rejected() {
        for url in [
            "http://localhost:8080/admin",
            "http://app.localhost/",
            "http://127.0.0.1/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            let why = reason(&format!(r#"{{"url": "{url}"}}"#));
            assert!(why.starts_with("url: host"), "{url}: {why}");
        }
    }

    #[test]
    fn public_hosts_and_addresses_are_accepted() {
        for url in [
            "https://example.com/",
            "http://93.184.216.34/",
            "https://[2606:2800:220:1::]/",
        ] {
            assert!(parse(&format!(r#"{{"url": "{url}"}}"#)).is_ok(), "{url}");
        }
    }

    #[test]
    fn relative_credentialed_and_overlong_urls_are_rejected() {
        assert!(reason(r#"{"url": "/just/a/path"}"#).starts_with("url: not an absolute URL"));
        assert!(reason(r#"{"url": "https://user:pw@example.com/"}"#).contains("password"));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(reason(&format!(r#"{{"url": "{long}"}}"#)).starts_with("url: must be at most"));
    }

    #[test]
    fn a_body_sent_again_keeps_the_capture_id_it_first_had() {
        let first = CaptureId::from_message_id("m-1");
        let body = r#"{"url": "https://example.com"}"#;

        let again = body_with_capture_id(body, &first).unwrap();
        let request = CaptureRequest::parse(&again, &CaptureId::from_message_id("m-2")).unwrap();
        assert_eq!(request.capture_id, first);

        let named = r#"{"url": "https://example.com", "captureId": "c-1"}"#;
        assert_eq!(body_with_capture_id(named, &first).as_deref(), Some(named));
        assert_eq!(body_with_capture_id("[1]", &first), None);
        assert_eq!(body_with_capture_id("not json", &first), None);
    }
}
