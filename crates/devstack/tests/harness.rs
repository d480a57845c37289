//! The test harness: one stack for the whole test process, shared by tests that each run on
//! their own Tokio runtime, and usable as a producer would use the deployed pipeline.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
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

#[tokio::test]
async fn a_capture_sent_by_a_producer_completes() {
    let info = shared_stack();
    let (sqs, dynamodb) = clients(info).await;
    let capture_id = format!("harness-{}", std::process::id());
    let body = serde_json::json!({ "captureId": capture_id, "url": "https://example.com/" });
    sqs.send_message()
        .queue_url(&info.queue_url)
        .message_body(body.to_string())
        .send()
        .await
        .expect("send the capture request");

    let mut status = None;
    for _ in 0..60 {
        let item = dynamodb
            .get_item()
            .table_name(&info.table_name)
            .key("pk", AttributeValue::S(format!("capture#{capture_id}")))
            .consistent_read(true)
            .send()
            .await
            .expect("read the record")
            .item;
        status = item.and_then(|i| i.get("status").and_then(|s| s.as_s().ok().cloned()));
        if status.as_deref() == Some("COMPLETE") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status.as_deref(), Some("COMPLETE"));
}
