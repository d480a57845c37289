//! The events the bench hands to the functions, shaped as Lambda delivers them: SQS events for
//! the submitter, API Gateway HTTP API (payload 2.0) events for the webhook.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{Value, json};

/// The ARN in `eventSourceARN`; the submitter does not read it.
pub const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:peekshot-bench-captures";

/// One SQS message as the event source hands it over.
#[derive(Debug, Clone)]
pub struct QueueMessage {
    /// SQS's message id.
    pub message_id: String,
    /// The handle a delete needs.
    pub receipt_handle: String,
    /// The capture request.
    pub body: String,
}

/// A valid capture request with a capture id of its own: one PeekShot create, one record.
pub fn capture_request(capture_id: &str) -> String {
    json!({
        "captureId": capture_id,
        "url": format!("https://example.com/bench/{capture_id}"),
        "viewport": {"width": 1280, "height": 800},
        "fileType": "png",
        "metadata": {"source": "bench"},
    })
    .to_string()
}

/// The `n`-th capture id of a scenario: `<prefix>-0000`, `<prefix>-0001`, ...
pub fn capture_id(prefix: &str, n: usize) -> String {
    format!("{prefix}-{n:04}")
}

/// `count` messages with capture ids from [`capture_id`] that no other scenario uses, so that
/// each one is a new capture and not a redelivery.
pub fn fresh_messages(prefix: &str, count: usize) -> Vec<QueueMessage> {
    (0..count)
        .map(|n| {
            let capture_id = capture_id(prefix, n);
            QueueMessage {
                message_id: format!("msg-{capture_id}"),
                receipt_handle: format!("handle-{capture_id}"),
                body: capture_request(&capture_id),
            }
        })
        .collect()
}

/// The SQS event that carries `messages`, as Lambda's event source mapping builds it.
pub fn sqs_event(messages: &[QueueMessage]) -> Value {
    let now = epoch_millis().to_string();
    let records: Vec<Value> = messages
        .iter()
        .map(|message| {
            json!({
                "messageId": message.message_id,
                "receiptHandle": message.receipt_handle,
                "body": message.body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "SenderId": "AIDABENCHPRODUCER",
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Builds HTTP API events from `events/webhook-completed.json`, so that the webhook sees every
/// field API Gateway sends, with this run's body, secret and request ids.
#[derive(Debug, Clone)]
pub struct WebhookEvents {
    template: Value,
}

impl WebhookEvents {
    /// Reads the sample event from the workspace's `events/` folder.
    pub fn from_workspace(workspace: &Path) -> anyhow::Result<Self> {
        let path = workspace.join("events/webhook-completed.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let template = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        Ok(Self { template })
    }

    /// A `POST /webhooks/peekshot?<query>` delivery of `body` with `headers`, the `n`-th of
    /// this run (API Gateway's own request id).
    pub fn event(&self, n: u64, query: &str, headers: &[(String, String)], body: &str) -> Value {
        let mut event = self.template.clone();
        let parameters: serde_json::Map<String, Value> = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect();
        event["rawQueryString"] = Value::String(query.to_owned());
        event["queryStringParameters"] = Value::Object(parameters);
        for (name, value) in headers {
            event["headers"][name.to_ascii_lowercase()] = Value::String(value.clone());
        }
        event["body"] = Value::String(body.to_owned());
        event["isBase64Encoded"] = Value::Bool(false);
        event["requestContext"]["requestId"] = Value::String(format!("bench-apigw-{n:08}"));
        event["requestContext"]["timeEpoch"] = json!(epoch_millis());
        event
    }

    /// The webhook PeekShot sends when capture `request_id` completes, in the shape the
    /// simulator sends.
    pub fn completed(&self, n: u64, request_id: u64, secret: &str) -> Value {
        let body = completed_body(request_id);
        self.event(
            n,
            &format!("secret={secret}"),
            &[("content-type".into(), "application/json".into())],
            &body,
        )
    }
}

/// The body of a completion webhook for `request_id`.
pub fn completed_body(request_id: u64) -> String {
    json!({"data": {
        "requestId": request_id,
        "success": true,
        "fileUrl": format!("https://cdn.peekshot.com/screenshots/{request_id}.png"),
        "status": "COMPLETE",
        "creditsRequired": 1,
        "duration": "4.2",
    }})
    .to_string()
}

fn epoch_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_messages_carry_distinct_valid_requests() {
        let messages = fresh_messages("t", 3);
        assert_eq!(messages.len(), 3);
        for message in &messages {
            let fallback = capture::CaptureId::from_message_id(&message.message_id);
            let request = capture::CaptureRequest::parse(&message.body, &fallback).unwrap();
            assert!(message.message_id.ends_with(request.capture_id.as_str()));
        }
    }

    #[test]
    fn webhook_events_carry_body_secret_and_query() {
        let events = WebhookEvents {
            template: json!({"headers": {}, "requestContext": {}}),
        };
        let event = events.completed(1, 100_001, "s3cret-s3cret-s3cret");
        assert_eq!(
            event["queryStringParameters"]["secret"],
            "s3cret-s3cret-s3cret"
        );
        assert_eq!(event["rawQueryString"], "secret=s3cret-s3cret-s3cret");
        let notice = capture::parse_webhook(event["body"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(notice.request_id.as_str(), "100001");
    }
}
