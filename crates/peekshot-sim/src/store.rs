//! The capture records the simulator keeps in memory, in the shape PeekShot's
//! read and list endpoints answer with, and the list query over them.
//!
//! Request ids are integers handed out in increasing order and never reused,
//! not even after `POST /_sim/reset`, so a late webhook or read for a capture
//! from before a reset can never name a newer one.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::macros::format_description;

/// Where a capture stands. PeekShot also reports `IN_QUEUE`; the simulator
/// goes straight from PENDING to PROCESSING.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureStatus {
    /// Accepted, not started.
    Pending,
    /// Being captured.
    Processing,
    /// Finished with an image.
    Complete,
    /// Finished without an image; the record's `error` says why.
    Failed,
}

impl CaptureStatus {
    /// The status as PeekShot spells it, for comparing with `?status=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Processing => "PROCESSING",
            Self::Complete => "COMPLETE",
            Self::Failed => "FAILED",
        }
    }
}

/// One capture, serialised as the `data` of a read. Fields that do not apply
/// yet are `null` rather than absent, as a database-backed API answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The request id.
    pub id: u64,
    /// The project the capture belongs to.
    pub project_id: String,
    /// Where the capture stands.
    pub status: CaptureStatus,
    /// The URL exactly as submitted.
    pub url: String,
    /// The recognised options as real values.
    pub options: Map<String, Value>,
    /// Where the image is, once COMPLETE.
    pub screenshot_url: Option<String>,
    /// The image's size in bytes, once COMPLETE.
    pub screenshot_image_size: Option<u64>,
    /// What the capture cost.
    pub credits_required: u32,
    /// How long the capture took, in seconds, once finished.
    pub duration: Option<String>,
    /// Why the capture failed, once FAILED.
    pub error: Option<String>,
    /// When the capture was accepted (RFC 3339, UTC, milliseconds).
    pub created_at: String,
    /// When the record last changed.
    pub updated_at: String,
}

/// The filters and page of `GET /api/v1/screenshots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only records with this status (compared without regard to case).
    pub status: Option<String>,
    /// Only records of this project.
    pub project_id: Option<String>,
    /// Only records whose URL is exactly this.
    pub url: Option<String>,
    /// The page, from 1.
    pub page: u64,
    /// Records per page.
    pub limit: u64,
}

/// One page of records, newest first, serialised as the `data` of a list.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage {
    /// The records of this page.
    pub screenshots: Vec<Record>,
    /// How many records match the filters on all pages.
    pub total: u64,
    /// The page number.
    pub page: u64,
    /// Records per page.
    pub limit: u64,
    /// How many pages the matching records fill.
    pub total_pages: u64,
}

/// The records, keyed by request id so that iteration runs oldest to newest.
#[derive(Debug)]
pub struct Store {
    records: BTreeMap<u64, Record>,
    next_id: u64,
}

impl Store {
    /// An empty store whose first request id is `first_id`.
    pub fn new(first_id: u64) -> Self {
        Self {
            records: BTreeMap::new(),
            next_id: first_id,
        }
    }

    /// Adds a PENDING record and returns its request id.
    pub fn insert(
        &mut self,
        project_id: String,
        url: String,
        options: Map<String, Value>,
        credits: u32,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let now = timestamp_now();
        self.records.insert(
            id,
            Record {
                id,
                project_id,
                status: CaptureStatus::Pending,
                url,
                options,
                screenshot_url: None,
                screenshot_image_size: None,
                credits_required: credits,
                duration: None,
                error: None,
                created_at: now.clone(),
                updated_at: now,
            },
        );
        id
    }

    /// The record with this id.
    pub fn get(&self, id: u64) -> Option<&Record> {
        self.records.get(&id)
    }

    /// Changes the record with this id, stamping `updatedAt`; `None` when it
    /// is gone (cleared by a reset).
    pub fn update<T>(&mut self, id: u64, change: impl FnOnce(&mut Record) -> T) -> Option<T> {
        let record = self.records.get_mut(&id)?;
        let result = change(record);
        record.updated_at = timestamp_now();
        Some(result)
    }

    /// Every record, oldest first.
    pub fn all(&self) -> Vec<Record> {
        self.records.values().cloned().collect()
    }

    /// Drops every record; ids keep counting up.
    pub fn clear(&mut self) {
        self.records.clear();
    }

    /// One page of the records matching `query`, newest first.
    pub fn list(&self, query: &ListQuery) -> ListPage {
        let matching: Vec<&Record> = self
            .records
            .values()
            .rev()
            .filter(|r| {
                query
                    .status
                    .as_ref()
                    .is_none_or(|s| s.eq_ignore_ascii_case(r.status.as_str()))
            })
            .filter(|r| query.project_id.as_ref().is_none_or(|p| *p == r.project_id))
            .filter(|r| query.url.as_ref().is_none_or(|u| *u == r.url))
            .collect();
        let total = matching.len() as u64;
        let skip = query.page.saturating_sub(1).saturating_mul(query.limit);
        let screenshots = matching
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        ListPage {
            screenshots,
            total,
            page: query.page,
            limit: query.limit,
            total_pages: total.div_ceil(query.limit.max(1)),
        }
    }
}

/// Now, as PeekShot-style timestamps: RFC 3339 in UTC with milliseconds.
fn timestamp_now() -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    // Formatting fails only for components the value lacks; a UTC date-time
    // has them all, so the empty fallback is never seen.
    OffsetDateTime::now_utc().format(format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(urls: &[&str]) -> Store {
        let mut store = Store::new(100_001);
        for url in urls {
            store.insert("p".into(), (*url).into(), Map::new(), 1);
        }
        store
    }

    fn query(page: u64, limit: u64) -> ListQuery {
        ListQuery {
            status: None,
            project_id: None,
            url: None,
            page,
            limit,
        }
    }

    #[test]
    fn ids_increase_and_are_not_reused_after_a_clear() {
        let mut store = store_with(&["https://a.example", "https://b.example"]);
        store.clear();
        let id = store.insert("p".into(), "https://c.example".into(), Map::new(), 1);
        assert_eq!(id, 100_003);
    }

    #[test]
    fn list_is_newest_first_and_paged() {
        let store = store_with(&[
            "https://1.example",
            "https://2.example",
            "https://3.example",
        ]);
        let first = store.list(&query(1, 2));
        let ids: Vec<u64> = first.screenshots.iter().map(|r| r.id).collect();
        assert_eq!(ids, [100_003, 100_002]);
        assert_eq!((first.total, first.total_pages), (3, 2));
        let second = store.list(&query(2, 2));
        let ids: Vec<u64> = second.screenshots.iter().map(|r| r.id).collect();
        assert_eq!(ids, [100_001]);
    }

    #[test]
    fn list_filters_by_status_and_url() {
        let mut store = store_with(&["https://1.example", "https://2.example"]);
        store.update(100_001, |r| r.status = CaptureStatus::Complete);
        let complete = store.list(&ListQuery {
            status: Some("complete".into()),
            ..query(1, 10)
        });
        assert_eq!(complete.total, 1);
        let by_url = store.list(&ListQuery {
            url: Some("https://2.example".into()),
            ..query(1, 10)
        });
        assert_eq!(by_url.screenshots.first().map(|r| r.id), Some(100_002));
    }

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds() {
        let stamp = timestamp_now();
        assert_eq!(stamp.len(), "2025-01-01T00:00:00.000Z".len(), "{stamp}");
        assert!(stamp.ends_with('Z'));
    }
}
