//! `devstack demo`: sends the sample capture requests of `events/sqs-capture-batch.json` to
//! the running stack as a producer would, waits until every capture is COMPLETE or FAILED, and
//! prints a table of how each ended.
//!
//! The sample is an SQS event, so each record's `body` is one capture request; some are meant
//! to fail (a site behind bot protection, a localhost URL, a body that is not JSON). A
//! capture's record is the DynamoDB item `capture#<captureId>`, where the capture id is the
//! body's `captureId` or, when the body has none (or is not JSON), the SQS message id.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use comfy_table::{ContentArrangement, Table};

use crate::stack::StackInfo;

/// How often the records are read while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Statuses after which a capture does not change any more.
const FINAL_STATUSES: &[&str] = &["COMPLETE", "FAILED"];

/// One sample capture and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureRow {
    /// The capture id (the record key without `capture#`).
    pub capture_id: String,
    /// `status`, or `None` while there is no record.
    pub status: Option<String>,
    /// `requestId`, once PeekShot accepted the capture.
    pub request_id: Option<String>,
    /// `fileUrl` of a COMPLETE capture.
    pub file_url: Option<String>,
    /// `error` of a FAILED capture.
    pub error: Option<String>,
}

impl CaptureRow {
    /// Whether the capture reached COMPLETE or FAILED.
    pub fn is_final(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|s| FINAL_STATUSES.contains(&s))
    }
}

/// The outcome of a demo run.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// One row per sample, in the sample's order.
    pub rows: Vec<CaptureRow>,
}

impl DemoReport {
    /// Capture ids that did not reach a final status.
    pub fn stragglers(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|r| !r.is_final())
            .map(|r| r.capture_id.as_str())
            .collect()
    }

    /// The table printed at the end of the demo.
    pub fn table(&self) -> Table {
        let mut table = Table::new();
        table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_content_arrangement(ContentArrangement::Disabled);
        table.set_header(["capture id", "status", "request id", "file URL or reason"]);
        for row in &self.rows {
            let outcome = match row.status.as_deref() {
                Some("COMPLETE") => row.file_url.clone().unwrap_or_default(),
                Some("FAILED") => row.error.clone().unwrap_or_default(),
                _ => String::new(),
            };
            table.add_row([
                row.capture_id.clone(),
                row.status
                    .clone()
                    .unwrap_or_else(|| "(no record)".to_owned()),
                row.request_id.clone().unwrap_or_default(),
                outcome,
            ]);
        }
        table
    }
}

/// The bodies of the sample event's records, in order.
pub fn sample_bodies(events_file: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(events_file)
        .with_context(|| format!("reading {}", events_file.display()))?;
    let event: SqsEvent = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an SQS event", events_file.display()))?;
    Ok(event
        .records
        .into_iter()
        .filter_map(|record| record.body)
        .collect())
}

/// The capture id a body gets: its `captureId` if it is a JSON object with a text one, else
/// the message id.
pub fn capture_id(body: &str, message_id: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.get("captureId")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| message_id.to_owned())
}

/// Sends every sample body, then waits up to `limit` for all captures to finish.
pub async fn run(
    info: &StackInfo,
    clients: &crate::resources::Clients,
    events_file: &Path,
    limit: Duration,
) -> anyhow::Result<DemoReport> {
    let bodies = sample_bodies(events_file)?;
    let mut capture_ids = Vec::with_capacity(bodies.len());
    for body in &bodies {
        let sent = clients
            .sqs
            .send_message()
            .queue_url(&info.queue_url)
            .message_body(body)
            .send()
            .await
            .context("sending a sample capture request")?;
        let message_id = sent
            .message_id
            .context("SendMessage answered without a message id")?;
        let capture_id = capture_id(body, &message_id);
        tracing::info!(capture_id = %capture_id, message_id = %message_id, "sample capture request sent");
        capture_ids.push(capture_id);
    }

    let deadline = tokio::time::Instant::now() + limit;
    let mut rows: HashMap<String, CaptureRow> = HashMap::new();
    loop {
        for capture_id in &capture_ids {
            if rows.get(capture_id).is_some_and(CaptureRow::is_final) {
                continue;
            }
            let row = read_capture(&clients.dynamodb, &info.table_name, capture_id).await?;
            rows.insert(capture_id.clone(), row);
        }
        let finished = rows.values().filter(|r| r.is_final()).count();
        if finished == capture_ids.len() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }

    let rows = capture_ids
        .iter()
        .map(|id| rows.remove(id).unwrap_or_else(|| empty_row(id)))
        .collect();
    Ok(DemoReport { rows })
}

fn empty_row(capture_id: &str) -> CaptureRow {
    CaptureRow {
        capture_id: capture_id.to_owned(),
        status: None,
        request_id: None,
        file_url: None,
        error: None,
    }
}

/// Reads `capture#<capture_id>` with a consistent read.
pub async fn read_capture(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    capture_id: &str,
) -> anyhow::Result<CaptureRow> {
    let item = dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("capture#{capture_id}")))
        .consistent_read(true)
        .send()
        .await
        .with_context(|| format!("reading the record of capture {capture_id}"))?
        .item;
    let Some(item) = item else {
        return Ok(empty_row(capture_id));
    };
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        Some(AttributeValue::N(n)) => Some(n.clone()),
        _ => None,
    };
    Ok(CaptureRow {
        capture_id: capture_id.to_owned(),
        status: text("status"),
        request_id: text("requestId"),
        file_url: text("fileUrl"),
        error: text("error"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_id_is_the_bodys_or_else_the_message_id() {
        assert_eq!(
            capture_id(r#"{"captureId":"docs-home","url":"x"}"#, "m1"),
            "docs-home"
        );
        assert_eq!(capture_id(r#"{"url":"https://example.com"}"#, "m2"), "m2");
        assert_eq!(capture_id("this is not JSON {", "m3"), "m3");
        assert_eq!(capture_id(r#"{"captureId":7}"#, "m4"), "m4");
    }

    #[test]
    fn the_sample_event_has_one_body_per_record() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/sqs-capture-batch.json");
        let bodies = sample_bodies(&path).expect("sample event reads");
        assert!(bodies.len() >= 2, "{bodies:?}");
        assert!(bodies.iter().any(|b| b == "this is not JSON {"));
    }

    #[test]
    fn stragglers_are_the_captures_without_a_final_status() {
        let mut done = empty_row("a");
        done.status = Some("COMPLETE".into());
        let mut waiting = empty_row("b");
        waiting.status = Some("SUBMITTED".into());
        let report = DemoReport {
            rows: vec![done, waiting, empty_row("c")],
        };
        assert_eq!(report.stragglers(), vec!["b", "c"]);
        let table = report.table().to_string();
        assert!(
            table.contains("(no record)") && table.contains("SUBMITTED"),
            "{table}"
        );
    }
}
