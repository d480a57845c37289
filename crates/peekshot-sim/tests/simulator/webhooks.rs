//! Completion, the webhook and its delivery: payload shapes, the reserved
//! hosts, retries and giving up.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PROJECT, Receiver, TestSim, WEBHOOK_SECRET, fast_config};

fn with_webhook(receiver: &Receiver) -> peekshot_sim::SimConfig {
    peekshot_sim::SimConfig {
        webhook_url: Some(receiver.url.clone()),
        ..fast_config()
    }
}

#[tokio::test]
async fn capture_completes_after_the_delay_and_its_webhook_carries_the_file_url() {
    let mut receiver = Receiver::start(&[]).await;
    let sim = TestSim::start(with_webhook(&receiver)).await;
    let id = sim
        .create(&json!({"project_id": PROJECT, "url": "https://example.com", "full_page": "true"}))
        .await
        .json::<Value>()
        .await
        .expect("JSON")["data"]["requestId"]
        .as_u64()
        .expect("an integer id");

    let delivery = receiver.next().await;
    assert_eq!(
        delivery.query.as_deref(),
        Some(WEBHOOK_SECRET),
        "URL used verbatim"
    );
    let file_url = sim.url(&format!("/files/{id}.png"));
    assert_eq!(
        delivery.body,
        json!({"data": {
            "requestId": id, "success": true, "fileUrl": file_url,
            "status": "COMPLETE", "creditsRequired": 5, "duration": "0.04",
        }})
    );

    let record = sim.record(id).await;
    assert_eq!(record["status"], "COMPLETE");
    assert_eq!(record["screenshotUrl"], file_url);

    let image = sim.client.get(&file_url).send().await.expect("an answer");
    assert_eq!(image.status(), StatusCode::OK);
    assert_eq!(
        image
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    let bytes = image.bytes().await.expect("the image");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(record["screenshotImageSize"], bytes.len());

    let stats = sim
        .wait_for_stats("one delivery", |s| s["webhooksSent"] == 1)
        .await;
    assert_eq!(stats["webhookAttempts"], 1);
    assert_eq!(
        stats["webhooksSentByUrl"],
        json!({"https://example.com": 1})
    );
}

#[tokio::test]
async fn bot_blocked_host_ends_failed_with_the_bot_protection_reason() {
    let mut receiver = Receiver::start(&[]).await;
    let sim = TestSim::start(with_webhook(&receiver)).await;
    let id = sim.create_ok("https://shop.bot-blocked.test/cart").await;

    let delivery = receiver.next().await;
    let reason = "Capture failed: the site blocked automated access (bot protection)";
    assert_eq!(
        delivery.body,
        json!({"data": {"requestId": id, "success": false, "error": reason, "status": "FAILED"}})
    );
    let record = sim.record(id).await;
    assert_eq!(record["status"], "FAILED");
    assert_eq!(record["error"], reason);
    assert_eq!(record["screenshotUrl"], Value::Null);

    let file = sim
        .client
        .get(sim.url(&format!("/files/{id}.png")))
        .send()
        .await
        .expect("an answer");
    assert_eq!(file.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn early_webhook_host_delivers_the_webhook_before_the_create_answer() {
    let mut receiver = Receiver::start(&[]).await;
    let sim = TestSim::start(with_webhook(&receiver)).await;

    let id = sim.create_ok("https://early-webhook.test/").await;

    let delivery = receiver
        .already_arrived()
        .expect("the webhook arrived before the create was answered");
    assert_eq!(delivery.body["data"]["requestId"], id);
    assert_eq!(delivery.body["data"]["status"], "COMPLETE");
    let stats = sim.stats().await;
    assert_eq!(stats["webhooksSent"], 1);
}

#[tokio::test]
async fn lost_webhook_host_completes_but_never_sends_its_webhook() {
    let mut receiver = Receiver::start(&[]).await;
    let sim = TestSim::start(with_webhook(&receiver)).await;
    let url = "https://lost-webhook.test/run-1";

    let id = sim.create_ok(url).await;
    let record = sim.wait_for_status(id, "COMPLETE").await;
    assert_eq!(
        record["screenshotUrl"],
        sim.url(&format!("/files/{id}.png"))
    );

    let stats = sim
        .wait_for_stats("the webhook withheld", |s| s["webhooksWithheld"] == 1)
        .await;
    assert_eq!(stats["webhookAttempts"], 0);
    assert_eq!(stats["webhooksSentByUrl"], json!({}));
    assert_eq!(
        stats["faultsInjected"],
        json!({}),
        "a reserved host is not a fault"
    );
    assert!(receiver.already_arrived().is_none());
}

#[tokio::test]
async fn webhook_is_retried_after_a_500_from_the_receiver() {
    let mut receiver = Receiver::start(&[StatusCode::INTERNAL_SERVER_ERROR]).await;
    let sim = TestSim::start(with_webhook(&receiver)).await;
    let id = sim.create_ok("https://example.com").await;

    let refused = receiver.next().await;
    let accepted = receiver.next().await;
    assert_eq!(refused.body, accepted.body);
    assert_eq!(accepted.body["data"]["requestId"], id);

    let stats = sim
        .wait_for_stats("the retry delivered", |s| s["webhooksSent"] == 1)
        .await;
    assert_eq!(stats["webhookAttempts"], 2);
    assert_eq!(stats["webhooksFailed"], 0);
}

#[tokio::test]
async fn webhook_is_given_up_after_the_configured_retries() {
    let refusals = [StatusCode::SERVICE_UNAVAILABLE; 10];
    let mut receiver = Receiver::start(&refusals).await;
    let sim = TestSim::start(peekshot_sim::SimConfig {
        webhook_retries: 2,
        ..with_webhook(&receiver)
    })
    .await;
    sim.create_ok("https://example.com").await;

    let stats = sim
        .wait_for_stats("a failed delivery", |s| s["webhooksFailed"] == 1)
        .await;
    assert_eq!(stats["webhookAttempts"], 3);
    assert_eq!(stats["webhooksSent"], 0);
    for _ in 0..3 {
        receiver.next().await;
    }
    assert!(receiver.already_arrived().is_none());
}

#[tokio::test]
async fn webhook_to_a_closed_port_counts_as_failed_after_its_retries() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let sim = TestSim::start(peekshot_sim::SimConfig {
        webhook_url: url::Url::parse(&format!("http://{closed}/hooks/peekshot?{WEBHOOK_SECRET}"))
            .ok(),
        webhook_retries: 1,
        ..fast_config()
    })
    .await;
    sim.create_ok("https://example.com").await;

    let stats = sim
        .wait_for_stats("a failed delivery", |s| s["webhooksFailed"] == 1)
        .await;
    assert_eq!(stats["webhookAttempts"], 2);
}
