//! The test harness: one stack for the whole test process, shared by tests that each run on
//! their own Tokio runtime, and usable as a producer would use the deployed pipeline.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use devstack::StackInfo;
use devstack::harness::shared_stack;

async fn clients(info: &StackInfo) -> (aws_sdk_sqs::Client, aws_sdk_dynamodb::Client) {
    let config = devstack::aws::moto_config(&info.moto_url, &info.region).await;
    (
        aws_sdk_sqs::Client::new(&config),
        aws_sdk_dynamodb::Client::new(&config),
    )
}

#[tokio::test]
async fn every_test_gets_the_same_running_stack() {
    let first = shared_stack();
    let second = shared_stack();
    assert!(std::ptr::eq(first, second));

    let (sqs, dynamodb) = clients(first).await;
    sqs.get_queue_attributes()
        .queue_url(&first.queue_url)
        .send()
        .await
        .expect("the queue exists");
    dynamodb
        .describe_table()
        .table_name(&first.table_name)
        .send()
        .await
        .expect("the table exists");

    let answer = reqwest::Client::new()
        .post(&first.webhook_url)
        .json(&serde_json::json!({ "data": { "requestId": 1, "success": true } }))
        .send()
        .await
        .expect("the webhook function answers");
    assert!(
        answer.status().is_client_error(),
        "a call without the secret is refused: {}",
        answer.status()
    );
}

/// Whether the capture then completes is the pipeline's business (`tests/pipeline.rs`); the
/// harness's part is that a producer's message reaches the submitter.
#[tokio::test]
async fn a_message_sent_by_a_producer_is_taken_by_the_event_source() {
    let info = shared_stack();
    let (sqs, _) = clients(info).await;
    let capture_id = format!("harness-{}", std::process::id());
    let body = serde_json::json!({ "captureId": capture_id, "url": "https://example.com/" });
    sqs.send_message()
        .queue_url(&info.queue_url)
        .message_body(body.to_string())
        .send()
        .await
        .expect("send the capture request");

    let mut visible = None;
    for _ in 0..40 {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&info.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        visible = attributes
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|n| n.parse::<u64>().ok());
        if visible == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        visible,
        Some(0),
        "the message is still waiting in the queue"
    );
}
