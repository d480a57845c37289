//! Counters that tests read through `GET /_sim/stats` to check what a client
//! did (how many creates, for which URLs) and what the simulator did to it
//! (webhooks, injected faults).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::faults::FaultKind;

/// Everything counted since start-up or the last `POST /_sim/reset`.
///
/// A request refused by an injected fault reaches no handler, so it counts
/// only under `faultsInjected`, not as a create, read or list.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Creates accepted: records made, whether or not the answer got out.
    pub creates: u64,
    /// Accepted creates per URL, exactly as submitted.
    pub creates_by_url: BTreeMap<String, u64>,
    /// Reads of one record that passed the key check, found or not.
    pub reads: u64,
    /// List requests that passed the key check.
    pub lists: u64,
    /// Webhook deliveries answered 2xx (a duplicated webhook counts twice).
    pub webhooks_sent: u64,
    /// Webhook deliveries answered 2xx per capture URL, exactly as submitted.
    pub webhooks_sent_by_url: BTreeMap<String, u64>,
    /// Webhooks never sent because the capture's host is `lost-webhook.test`.
    pub webhooks_withheld: u64,
    /// Webhook POSTs attempted, first tries and retries alike.
    pub webhook_attempts: u64,
    /// Webhook deliveries given up after the last retry.
    pub webhooks_failed: u64,
    /// API requests refused for a wrong or missing `x-api-key`.
    pub rejected_api_key: u64,
    /// Creates refused because their `project_id` is not the configured one.
    pub rejected_project: u64,
    /// Injected faults per kind; a kind appears once it has fired.
    pub faults_injected: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// Counts one injected fault.
    pub fn fault(&mut self, kind: FaultKind) {
        *self.faults_injected.entry(kind.as_str()).or_default() += 1;
    }

    /// Counts one accepted create of `url`.
    pub fn create(&mut self, url: &str) {
        self.creates += 1;
        *self.creates_by_url.entry(url.to_owned()).or_default() += 1;
    }
}
