//! The global pace's bucket ([`capture::pace`]) as one item of the capture table,
//! `pace#peekshot-creates`: `tat` (the theoretical arrival time, epoch ms), `slowFactor` and
//! `slowUntilMs`.
//!
//! Each step is one conditional `UpdateItem` that returns the item: as it is afterwards when
//! the condition held, as it was when it did not (`ReturnValuesOnConditionCheckFailure`), so
//! the bucket is never read before it is written. The item takes one write per batch that
//! needs slots, far below what one DynamoDB item sustains (1,000 writes a second).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use capture::{Failure, PaceAnswer, PaceState, PaceStep, PaceStore};

use crate::dynamo::{DynamoStore, classify, conditional_failure_item, number, s};

/// Key of the pace item.
pub const PACE_KEY: &str = "pace#peekshot-creates";

type Item = HashMap<String, AttributeValue>;

#[async_trait]
impl PaceStore for DynamoStore {
    async fn step(&self, step: PaceStep) -> Result<PaceAnswer, Failure> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(PACE_KEY))
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":kind", s("pace"))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let update = match step {
            PaceStep::Extend {
                lowest_ms,
                highest_ms,
                cost_ms,
            } => update
                .update_expression("SET #kind = :kind, tat = tat + :cost")
                .condition_expression("tat BETWEEN :lowest AND :highest")
                .expression_attribute_values(":cost", number(cost_ms))
                .expression_attribute_values(":lowest", number(lowest_ms))
                .expression_attribute_values(":highest", number(highest_ms)),
            PaceStep::Restart { below_ms, tat_ms } => update
                .update_expression("SET #kind = :kind, tat = :tat")
                .condition_expression("attribute_not_exists(tat) OR tat < :below")
                .expression_attribute_values(":tat", number(tat_ms))
                .expression_attribute_values(":below", number(below_ms)),
        };

        match update.send().await {
            Ok(out) => Ok(PaceAnswer::Moved(pace_state(
                &out.attributes.unwrap_or_default(),
            ))),
            Err(err) => match conditional_failure_item(&err) {
                Some(old) => Ok(PaceAnswer::Refused(pace_state(&old.unwrap_or_default()))),
                None => Err(classify("take pace slots", err)),
            },
        }
    }

    async fn slow_down(
        &self,
        factor: u32,
        until_ms: u64,
        tat_at_least_ms: u64,
    ) -> Result<(), Failure> {
        let slow = |expression: &str| {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(PACE_KEY))
                .update_expression(expression)
                .expression_attribute_names("#kind", "kind")
                .expression_attribute_values(":kind", s("pace"))
                .expression_attribute_values(":factor", number(u64::from(factor)))
                .expression_attribute_values(":until", number(until_ms))
        };

        let paused =
            slow("SET #kind = :kind, slowFactor = :factor, slowUntilMs = :until, tat = :tat")
                .condition_expression("attribute_not_exists(tat) OR tat < :tat")
                .expression_attribute_values(":tat", number(tat_at_least_ms))
                .send()
                .await;
        match paused {
            Ok(_) => Ok(()),
            // The bucket is already booked past the pause: only the factor changes.
            Err(err) if conditional_failure_item(&err).is_some() => {
                slow("SET #kind = :kind, slowFactor = :factor, slowUntilMs = :until")
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|err| classify("slow the pace down", err))
            }
            Err(err) => Err(classify("slow the pace down", err)),
        }
    }
}

/// The bucket from the item's attributes; an absent item is a bucket never used.
fn pace_state(item: &Item) -> PaceState {
    let numeric = |name: &str| -> Option<u64> { item.get(name)?.as_n().ok()?.parse().ok() };
    PaceState {
        tat_ms: numeric("tat"),
        slow_factor: numeric("slowFactor")
            .and_then(|f| u32::try_from(f).ok())
            .unwrap_or(1),
        slow_until_ms: numeric("slowUntilMs").unwrap_or(0),
    }
}
