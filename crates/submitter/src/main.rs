//! The submitter Lambda: receives batches of capture requests from SQS, submits each to
//! PeekShot, and reports the messages that should come back (`ReportBatchItemFailures`).
//!
//! Everything that lasts longer than one invocation (configuration, the API key, the HTTP
//! connection pool, the DynamoDB client) is built once here, before the runtime starts.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use capture::{QueuedMessage, submit_batch};
use capture_adapters::{DynamoStore, PeekShotClient, ProcessEnv, SsmSecrets, SubmitterConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing::info;

/// What one invocation needs, shared by all invocations of this process.
struct Submitter {
    store: DynamoStore,
    peekshot: PeekShotClient,
    concurrency: usize,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();

    let aws = capture_adapters::aws_config().await;
    let config = SubmitterConfig::load(&ProcessEnv, &SsmSecrets::new(&aws))
        .await
        .inspect_err(|problem| tracing::error!(%problem, "cannot start the submitter"))?;
    let submitter = Submitter {
        store: DynamoStore::new(&aws, &config.table, config.retention),
        peekshot: PeekShotClient::new(&config.peekshot)?,
        concurrency: config.concurrency,
    };

    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        handle_batch(&submitter, event)
    }))
    .await
}

/// Submits one batch and names the messages to keep. A record without a message id cannot be
/// reported or retried individually; SQS always sends one, so such a record is skipped.
async fn handle_batch(
    submitter: &Submitter,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let messages: Vec<QueuedMessage> = event
        .payload
        .records
        .into_iter()
        .filter_map(|record| {
            Some(QueuedMessage {
                message_id: record.message_id?,
                body: record.body.unwrap_or_default(),
            })
        })
        .collect();
    let received = messages.len();

    let report = submit_batch(
        &submitter.store,
        &submitter.peekshot,
        messages,
        submitter.concurrency,
    )
    .await;
    info!(
        received,
        done = report.done,
        retry = report.retry.len(),
        "batch handled"
    );

    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = report
        .retry
        .into_iter()
        .map(|message_id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            failure
        })
        .collect();
    Ok(response)
}
