//! What a million captures cost at list prices, from the measured durations and the counted
//! AWS requests. Every price is here and nowhere else.

use serde::Serialize;

/// Where the prices come from, and when they were taken.
pub const PRICES_SOURCE: &str = "AWS list prices for us-east-1 as stated in issue 5 (2026-12-03): \
    aws.amazon.com/lambda/pricing (x86, requests), aws.amazon.com/sqs/pricing (standard queue), \
    aws.amazon.com/dynamodb/pricing/on-demand; API Gateway HTTP API from \
    aws.amazon.com/api-gateway/pricing (first 300 million requests a month). Not re-checked \
    from the bench machine, which has no internet access.";

/// Lambda compute, x86, per GB-second.
pub const LAMBDA_PER_GB_SECOND: f64 = 0.000_016_666_7;
/// Lambda requests, per million.
pub const LAMBDA_PER_MILLION_REQUESTS: f64 = 0.20;
/// SQS standard queue requests (each up to 64 KB), per million.
pub const SQS_PER_MILLION_REQUESTS: f64 = 0.40;
/// DynamoDB on-demand write request units, per million.
pub const DYNAMODB_PER_MILLION_WRITE_UNITS: f64 = 0.625;
/// DynamoDB on-demand read request units, per million.
pub const DYNAMODB_PER_MILLION_READ_UNITS: f64 = 0.125;
/// API Gateway HTTP API requests, per million (not in issue 5's list; every webhook passes
/// through it, so it is shown as its own line).
pub const HTTP_API_PER_MILLION_REQUESTS: f64 = 1.00;

/// Lambda bills duration in 1 ms steps.
pub const BILLING_STEP_MS: f64 = 1.0;

/// The measured inputs of the cost model, per capture unless said otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct CostInputs {
    /// Function memory, MB.
    pub memory_mb: u64,
    /// Captures per submitter invocation (the template's batch size).
    pub batch_size: f64,
    /// Billed duration of one submitter invocation of `batch_size` messages, ms.
    pub submitter_billed_ms: f64,
    /// Webhook deliveries per capture.
    pub webhooks_per_capture: f64,
    /// Mean billed duration of one webhook invocation, ms.
    pub webhook_billed_ms: f64,
    /// SQS requests per capture (producer's send, event source's receive and delete shares).
    pub sqs_requests: f64,
    /// DynamoDB write request units per capture.
    pub dynamodb_write_units: f64,
    /// DynamoDB read request units per capture.
    pub dynamodb_read_units: f64,
}

/// One line of the bill for a million captures.
#[derive(Debug, Clone, Serialize)]
pub struct CostLine {
    /// What is billed.
    pub item: &'static str,
    /// The formula with this run's numbers.
    pub formula: String,
    /// US dollars per million captures.
    pub usd: f64,
}

/// The bill for a million captures, line by line.
pub fn per_million_captures(inputs: &CostInputs) -> Vec<CostLine> {
    let captures = 1e6;
    let gb = inputs.memory_mb as f64 / 1024.0;
    let submitter_invocations = captures / inputs.batch_size;
    let webhook_invocations = captures * inputs.webhooks_per_capture;
    vec![
        CostLine {
            item: "submitter duration",
            formula: format!(
                "{submitter_invocations:.0} invocations x {:.0} ms x {gb} GB x ${LAMBDA_PER_GB_SECOND}/GB-s",
                inputs.submitter_billed_ms
            ),
            usd: submitter_invocations * inputs.submitter_billed_ms / 1e3
                * gb
                * LAMBDA_PER_GB_SECOND,
        },
        CostLine {
            item: "submitter requests",
            formula: format!(
                "{submitter_invocations:.0} invocations x ${LAMBDA_PER_MILLION_REQUESTS}/million"
            ),
            usd: submitter_invocations / 1e6 * LAMBDA_PER_MILLION_REQUESTS,
        },
        CostLine {
            item: "webhook duration",
            formula: format!(
                "{webhook_invocations:.0} invocations x {:.2} ms (mean billed) x {gb} GB x ${LAMBDA_PER_GB_SECOND}/GB-s",
                inputs.webhook_billed_ms
            ),
            usd: webhook_invocations * inputs.webhook_billed_ms / 1e3 * gb * LAMBDA_PER_GB_SECOND,
        },
        CostLine {
            item: "webhook requests",
            formula: format!(
                "{webhook_invocations:.0} invocations x ${LAMBDA_PER_MILLION_REQUESTS}/million"
            ),
            usd: webhook_invocations / 1e6 * LAMBDA_PER_MILLION_REQUESTS,
        },
        CostLine {
            item: "SQS requests",
            formula: format!(
                "{:.2} requests/capture x 1M x ${SQS_PER_MILLION_REQUESTS}/million",
                inputs.sqs_requests
            ),
            usd: inputs.sqs_requests * SQS_PER_MILLION_REQUESTS,
        },
        CostLine {
            item: "DynamoDB writes",
            formula: format!(
                "{:.2} WRU/capture x 1M x ${DYNAMODB_PER_MILLION_WRITE_UNITS}/million",
                inputs.dynamodb_write_units
            ),
            usd: inputs.dynamodb_write_units * DYNAMODB_PER_MILLION_WRITE_UNITS,
        },
        CostLine {
            item: "DynamoDB reads",
            formula: format!(
                "{:.2} RRU/capture x 1M x ${DYNAMODB_PER_MILLION_READ_UNITS}/million",
                inputs.dynamodb_read_units
            ),
            usd: inputs.dynamodb_read_units * DYNAMODB_PER_MILLION_READ_UNITS,
        },
        CostLine {
            item: "API Gateway HTTP API",
            formula: format!(
                "{webhook_invocations:.0} webhook requests x ${HTTP_API_PER_MILLION_REQUESTS}/million"
            ),
            usd: webhook_invocations / 1e6 * HTTP_API_PER_MILLION_REQUESTS,
        },
    ]
}

/// A measured duration as Lambda bills it: rounded up to the next billing step.
pub fn billed_ms(measured_ms: f64) -> f64 {
    (measured_ms / BILLING_STEP_MS).ceil() * BILLING_STEP_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_at_128_mb_costs_an_eighth_of_a_gb_second() {
        let lines = per_million_captures(&CostInputs {
            memory_mb: 128,
            batch_size: 10.0,
            submitter_billed_ms: 1000.0,
            webhooks_per_capture: 1.0,
            webhook_billed_ms: 0.0,
            sqs_requests: 1.0,
            dynamodb_write_units: 5.0,
            dynamodb_read_units: 0.0,
        });
        let submitter = &lines[0];
        assert!((submitter.usd - 100_000.0 * 0.125 * LAMBDA_PER_GB_SECOND).abs() < 1e-9);
        let writes = lines.iter().find(|l| l.item == "DynamoDB writes").unwrap();
        assert!((writes.usd - 3.125).abs() < 1e-9);
    }

    #[test]
    fn durations_are_billed_in_whole_milliseconds() {
        assert_eq!(billed_ms(3.2), 4.0);
        assert_eq!(billed_ms(3.0), 3.0);
    }
}
