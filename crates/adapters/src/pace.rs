//! The global pace's bucket ([`capture::pace`]) as one item of the capture table,
//! `pace#peekshot-creates`: `tat` (the theoretical arrival time, epoch ms), `slowLevel`,
//! `slowUntilMs` and `slowedAtMs`.
//!
//! Each update is one conditional `UpdateItem` that returns the item: as it is afterwards when
//! the condition held, as it was when it did not (`ReturnValuesOnConditionCheckFailure`), so
//! the bucket is never read before it is written. Every condition includes the `slowedAtMs`
//! the caller last saw, so that no process acts on a slow-down older than the latest. The item
//! takes one write per batch that needs slots, far below what one DynamoDB item sustains
//! (1,000 writes a second).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use capture::{Failure, PaceAnswer, PaceState, PaceStep, PaceStore, SlowDown};

use crate::dynamo::{DynamoStore, classify, conditional_failure_item, number, s};

/// Key of the pace item.
pub const PACE_KEY: &str = "pace#peekshot-creates";

type Item = HashMap<String, AttributeValue>;

#[async_trait]
impl PaceStore for DynamoStore {
    async fn step(&self, step: PaceStep) -> Result<PaceAnswer, Failure> {
        let update = match step {
            PaceStep::Extend {
                lowest_ms,
                highest_ms,
                cost_ms,
                slowed_at_ms,
            } => self
                .pace_update(slowed_at_ms, Some("tat BETWEEN :lowest AND :highest"))
                .update_expression("SET #kind = :kind, tat = tat + :cost")
                .expression_attribute_values(":cost", number(cost_ms))
                .expression_attribute_values(":lowest", number(lowest_ms))
                .expression_attribute_values(":highest", number(highest_ms)),
            PaceStep::Restart {
                below_ms,
                tat_ms,
                slowed_at_ms,
            } => self
                .pace_update(
                    slowed_at_ms,
                    Some("attribute_not_exists(tat) OR tat < :below"),
                )
                .update_expression("SET #kind = :kind, tat = :tat")
                .expression_attribute_values(":tat", number(tat_ms))
                .expression_attribute_values(":below", number(below_ms)),
        };
        answer(update, "take pace slots").await
    }

    async fn slow_down(&self, rise: SlowDown) -> Result<PaceAnswer, Failure> {
        let update = self
            .pace_update(rise.expected_slowed_at_ms, None)
            .update_expression(
                "SET #kind = :kind, slowLevel = :level, slowUntilMs = :until, slowedAtMs = :at",
            )
            .expression_attribute_values(":level", number(u64::from(rise.level)))
            .expression_attribute_values(":until", number(rise.until_ms))
            .expression_attribute_values(":at", number(rise.at_ms));
        answer(update, "slow the pace down").await
    }
}

impl DynamoStore {
    /// An update of the pace item, conditional on `slowedAtMs` being `slowed_at_ms` (absent
    /// for `None`) and on `condition`, if any, answering with the item.
    fn pace_update(
        &self,
        slowed_at_ms: Option<u64>,
        condition: Option<&str>,
    ) -> UpdateItemFluentBuilder {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(PACE_KEY))
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":kind", s("pace"))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let (slowed, update) = match slowed_at_ms {
            None => ("attribute_not_exists(slowedAtMs)", update),
            Some(at) => (
                "slowedAtMs = :slowedAt",
                update.expression_attribute_values(":slowedAt", number(at)),
            ),
        };
        match condition {
            Some(condition) => update.condition_expression(format!("({condition}) AND {slowed}")),
            None => update.condition_expression(slowed),
        }
    }
}

/// Sends `update` and reads the item from its answer, whether the condition held or not.
async fn answer(update: UpdateItemFluentBuilder, what: &str) -> Result<PaceAnswer, Failure> {
    match update.send().await {
        Ok(out) => Ok(PaceAnswer::Moved(pace_state(
            &out.attributes.unwrap_or_default(),
        ))),
        Err(err) => match conditional_failure_item(&err) {
            Some(old) => Ok(PaceAnswer::Refused(pace_state(&old.unwrap_or_default()))),
            None => Err(classify(what, err)),
        },
    }
}

/// The bucket from the item's attributes; an absent item is a bucket never used.
fn pace_state(item: &Item) -> PaceState {
    let numeric = |name: &str| -> Option<u64> { item.get(name)?.as_n().ok()?.parse().ok() };
    PaceState {
        tat_ms: numeric("tat"),
        slow_level: numeric("slowLevel")
            .and_then(|level| u32::try_from(level).ok())
            .unwrap_or(0),
        slow_until_ms: numeric("slowUntilMs").unwrap_or(0),
        slowed_at_ms: numeric("slowedAtMs"),
    }
}
