//! The SQS event source stand-in against a real moto server, with a stub function on
//! loopback in place of `cargo lambda watch`: what it sends, what it deletes, and that moto's
//! redrive policy dead-letters what keeps failing.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use devstack::event_source::{EventSource, EventSourceSettings, Redelivery, poll_once};
use devstack::moto::{self, Moto};
use devstack::ports::{PortRequest, resolve_ports};
use devstack::resources::create_queue;
use devstack::template::{QueueSpec, TemplateContext};

const REGION: &str = "us-east-1";

/// What the stub function answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Reports every message whose body contains "fail" as failed.
    FailBodiesWithFail,
    /// Answers 500, as watch does for a function error.
    Crash,
}

#[derive(Clone)]
struct Stub {
    behaviour: Behaviour,
    events: Arc<Mutex<Vec<SqsEvent>>>,
}

impl Stub {
    fn events(&self) -> Vec<SqsEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

async fn invoke(
    State(stub): State<Stub>,
    Json(event): Json<SqsEvent>,
) -> (StatusCode, Json<serde_json::Value>) {
    let failures: Vec<serde_json::Value> = event
        .records
        .iter()
        .filter(|r| r.body.as_deref().is_some_and(|b| b.contains("fail")))
        .map(|r| serde_json::json!({ "itemIdentifier": r.message_id }))
        .collect();
    if let Ok(mut events) = stub.events.lock() {
        events.push(event);
    }
    match stub.behaviour {
        Behaviour::FailBodiesWithFail => (
            StatusCode::OK,
            Json(serde_json::json!({ "batchItemFailures": failures })),
        ),
        Behaviour::Crash => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "errorType": "Panic", "errorMessage": "boom" })),
        ),
    }
}

/// Starts the stub function; returns it and its invoke URL.
async fn start_stub(behaviour: Behaviour) -> (Stub, String) {
    let stub = Stub {
        behaviour,
        events: Arc::default(),
    };
    let app = Router::new()
        .route("/2015-03-31/functions/submitter/invocations", post(invoke))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("bind the stub");
    let address = listener.local_addr().expect("stub address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (
        stub,
        format!("http://{address}/2015-03-31/functions/submitter/invocations"),
    )
}

async fn start_moto() -> (Moto, aws_sdk_sqs::Client) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let request = PortRequest {
        port: 0,
        role: "moto",
        flag: "-",
        env: "-",
    };
    let port = resolve_ports(&[request]).expect("a free port")[0];
    let moto = moto::start(&workspace, port, false)
        .await
        .expect("moto starts (run scripts/setup.sh)");
    let config = devstack::aws::moto_config(&moto.url, REGION).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    (moto, sqs)
}

struct Queues {
    url: String,
    arn: String,
    dead_letter_url: String,
}

/// A queue with a one-second visibility timeout whose redrive policy dead-letters after
/// `max_receive_count` receives.
async fn create_queues(sqs: &aws_sdk_sqs::Client, max_receive_count: u32) -> Queues {
    let context = TemplateContext::local("test", REGION);
    let dead_letter = QueueSpec {
        logical_id: "Dlq".into(),
        queue_name: "test-dlq".into(),
        attributes: BTreeMap::new(),
    };
    let (dead_letter_url, dead_letter_arn) = create_queue(sqs, &dead_letter, &context)
        .await
        .expect("create the dead-letter queue");
    let policy = serde_json::json!({
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": max_receive_count,
    });
    let queue = QueueSpec {
        logical_id: "Queue".into(),
        queue_name: "test".into(),
        attributes: BTreeMap::from([
            ("VisibilityTimeout".to_owned(), "1".to_owned()),
            ("RedrivePolicy".to_owned(), policy.to_string()),
        ]),
    };
    let (url, arn) = create_queue(sqs, &queue, &context)
        .await
        .expect("create the queue");
    Queues {
        url,
        arn,
        dead_letter_url,
    }
}

fn settings(queues: &Queues, invoke_url: &str) -> EventSourceSettings {
    let mut settings = EventSourceSettings::local(&queues.url, &queues.arn, REGION, invoke_url);
    settings.pollers = 1;
    settings.invoke_timeout = Duration::from_secs(10);
    settings
}

async fn send(sqs: &aws_sdk_sqs::Client, queue_url: &str, body: &str) -> String {
    sqs.send_message()
        .queue_url(queue_url)
        .message_body(body)
        .message_attributes(
            "producer",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("tests")
                .build()
                .expect("attribute"),
        )
        .send()
        .await
        .expect("send")
        .message_id
        .expect("message id")
}

/// (visible, in flight) message counts.
async fn counts(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> (u64, u64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    let number = |name: QueueAttributeName| {
        attributes
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    (
        number(QueueAttributeName::ApproximateNumberOfMessages),
        number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

#[tokio::test]
async fn succeeded_messages_are_deleted_and_reported_failures_stay() {
    let (_moto, sqs) = start_moto().await;
    let queues = create_queues(&sqs, 5).await;
    let (stub, invoke_url) = start_stub(Behaviour::FailBodiesWithFail).await;
    let good = send(&sqs, &queues.url, r#"{"captureId":"good"}"#).await;
    let bad = send(&sqs, &queues.url, r#"{"captureId":"fail-me"}"#).await;

    let outcome = poll_once(
        &sqs,
        &settings(&queues, &invoke_url),
        &reqwest::Client::new(),
    )
    .await
    .expect("poll")
    .expect("a batch");

    assert_eq!(outcome.received, 2);
    assert_eq!(outcome.failed, vec![bad.clone()]);
    assert_eq!(outcome.deleted, 1);
    assert_eq!(
        counts(&sqs, &queues.url).await,
        (0, 1),
        "only the failed message is left"
    );

    let events = stub.events();
    let record = events[0]
        .records
        .iter()
        .find(|r| r.message_id.as_deref() == Some(good.as_str()));
    let record = record.expect("the good message was in the event");
    assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(
        record.event_source_arn.as_deref(),
        Some(queues.arn.as_str())
    );
    assert_eq!(record.aws_region.as_deref(), Some(REGION));
    assert_eq!(record.body.as_deref(), Some(r#"{"captureId":"good"}"#));
    assert!(
        record
            .md5_of_body
            .as_deref()
            .is_some_and(|md5| md5.len() == 32)
    );
    assert!(record.receipt_handle.is_some());
    for attribute in [
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    ] {
        assert!(
            record.attributes.contains_key(attribute),
            "missing {attribute}"
        );
    }
    assert_eq!(record.attributes["ApproximateReceiveCount"], "1");
    let producer = &record.message_attributes["producer"];
    assert_eq!(producer.string_value.as_deref(), Some("tests"));
    assert_eq!(producer.data_type.as_deref(), Some("String"));
}

#[tokio::test]
async fn a_message_picked_for_redelivery_is_delivered_again_instead_of_deleted() {
    let (_moto, sqs) = start_moto().await;
    let queues = create_queues(&sqs, 5).await;
    let (stub, invoke_url) = start_stub(Behaviour::FailBodiesWithFail).await;
    let message_id = send(&sqs, &queues.url, r#"{"captureId":"twice"}"#).await;
    let mut settings = settings(&queues, &invoke_url);
    settings.redelivery = Some(Redelivery::new(1.0, 7));
    let http = reqwest::Client::new();

    let first = poll_once(&sqs, &settings, &http)
        .await
        .expect("poll")
        .expect("a batch");
    assert_eq!((first.deleted, first.redelivered), (0, 1));

    settings.redelivery = Some(Redelivery::new(0.0, 7));
    let mut second = None;
    for _ in 0..10 {
        second = poll_once(&sqs, &settings, &http).await.expect("poll");
        if second.is_some() {
            break;
        }
    }
    let second = second.expect("the message came back");
    assert_eq!((second.deleted, second.redelivered), (1, 0));

    let deliveries: Vec<(String, String)> = stub
        .events()
        .iter()
        .flat_map(|e| e.records.iter())
        .map(|r| {
            (
                r.message_id.clone().unwrap_or_default(),
                r.attributes["ApproximateReceiveCount"].clone(),
            )
        })
        .collect();
    assert_eq!(
        deliveries,
        [(message_id.clone(), "1".into()), (message_id, "2".into())]
    );
    assert_eq!(counts(&sqs, &queues.url).await, (0, 0));
}

#[tokio::test]
async fn a_function_error_deletes_nothing() {
    let (_moto, sqs) = start_moto().await;
    let queues = create_queues(&sqs, 5).await;
    let (_stub, invoke_url) = start_stub(Behaviour::Crash).await;
    send(&sqs, &queues.url, r#"{"captureId":"good"}"#).await;

    let outcome = poll_once(
        &sqs,
        &settings(&queues, &invoke_url),
        &reqwest::Client::new(),
    )
    .await
    .expect("poll")
    .expect("a batch");

    assert_eq!(outcome.deleted, 0);
    let reason = outcome.function_error.expect("a function error");
    assert!(
        reason.contains("status 500") && reason.contains("boom"),
        "{reason}"
    );
    assert_eq!(
        counts(&sqs, &queues.url).await,
        (0, 1),
        "the message waits for redelivery"
    );
}

#[tokio::test]
async fn a_message_that_keeps_failing_reaches_the_dead_letter_queue() {
    let (_moto, sqs) = start_moto().await;
    let queues = create_queues(&sqs, 2).await;
    let (stub, invoke_url) = start_stub(Behaviour::FailBodiesWithFail).await;
    let message_id = send(&sqs, &queues.url, r#"{"captureId":"always-fail"}"#).await;
    let source = EventSource::start(sqs.clone(), settings(&queues, &invoke_url));

    let mut dead_lettered = None;
    for _ in 0..20 {
        let received = sqs
            .receive_message()
            .queue_url(&queues.dead_letter_url)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from the dead-letter queue");
        if let Some(message) = received.messages.unwrap_or_default().into_iter().next() {
            dead_lettered = Some(message);
            break;
        }
    }
    source.stop();

    let message = dead_lettered.expect("the message reached the dead-letter queue");
    assert_eq!(message.message_id.as_deref(), Some(message_id.as_str()));
    let receive_counts: Vec<String> = stub
        .events()
        .iter()
        .flat_map(|e| e.records.iter())
        .filter_map(|r| r.attributes.get("ApproximateReceiveCount").cloned())
        .collect();
    assert_eq!(
        receive_counts,
        vec!["1", "2"],
        "delivered maxReceiveCount times, then moved"
    );
    assert_eq!(counts(&sqs, &queues.url).await, (0, 0));
}
