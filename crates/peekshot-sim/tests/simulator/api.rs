//! PeekShot's API as the contract describes it: key check, create, read, list,
//! and the counters that tests read.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{API_KEY, PROJECT, TestSim, fast_config};

#[tokio::test]
async fn wrong_or_missing_api_key_is_refused_with_403_and_not_counted_as_a_create() {
    let sim = TestSim::start(fast_config()).await;
    let body = json!({"project_id": PROJECT, "url": "https://example.com"});

    let wrong = sim
        .client
        .post(sim.url("/api/v1/screenshots"))
        .header("x-api-key", "not-the-key")
        .json(&body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let envelope: Value = wrong.json().await.expect("JSON");
    assert_eq!(
        envelope,
        json!({"status": "error", "message": "Invalid or inactive API key", "statusCode": 403})
    );

    let missing = sim
        .client
        .get(sim.url("/api/v1/screenshots/100001"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);

    let stats = sim.stats().await;
    assert_eq!(stats["creates"], 0);
    assert_eq!(stats["reads"], 0);
    assert_eq!(stats["rejectedApiKey"], 2);
}

#[tokio::test]
async fn create_answers_201_with_an_integer_request_id_and_the_credits_it_costs() {
    let sim = TestSim::start(fast_config()).await;

    let cases = [
        (json!({}), 1),
        (json!({"retina": "true"}), 2),
        (json!({"full_page": true}), 5),
        (
            json!({"full_page": "true", "retina": true, "width": "1440"}),
            10,
        ),
    ];
    for (index, (options, credits)) in cases.into_iter().enumerate() {
        let mut body = json!({"project_id": PROJECT, "url": "https://example.com/pricing"});
        if let (Some(body), Value::Object(options)) = (body.as_object_mut(), options) {
            body.extend(options);
        }
        let answer = sim.create(&body).await;
        assert_eq!(answer.status(), StatusCode::CREATED);
        let envelope: Value = answer.json().await.expect("JSON");
        assert_eq!(
            envelope,
            json!({
                "status": "success",
                "message": "Screenshot request accepted",
                "statusCode": 201,
                "data": {"requestId": 100_001 + index, "creditRequired": credits, "status": "PENDING"},
            })
        );
    }
}

#[tokio::test]
async fn invalid_creates_are_refused_naming_the_field_and_not_counted() {
    let sim = TestSim::start(fast_config()).await;

    for (body, field) in [
        (json!({"project_id": PROJECT}), "url"),
        (
            json!({"project_id": PROJECT, "url": "example.com/no-scheme"}),
            "url",
        ),
        (
            json!({"project_id": PROJECT, "url": "https://example.com", "width": "wide"}),
            "width",
        ),
        (json!({"url": "https://example.com"}), "project_id"),
    ] {
        let answer = sim.create(&body).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{body}");
        let envelope: Value = answer.json().await.expect("JSON");
        assert_eq!(envelope["status"], "error");
        assert_eq!(envelope["statusCode"], 400);
        let message = envelope["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{message}");
    }

    let other_project = sim
        .create(&json!({"project_id": "someone-else", "url": "https://example.com"}))
        .await;
    assert_eq!(other_project.status(), StatusCode::FORBIDDEN);

    let stats = sim.stats().await;
    assert_eq!(stats["creates"], 0);
    assert_eq!(stats["rejectedProject"], 1);
}

#[tokio::test]
async fn read_returns_the_record_with_options_as_real_values_and_unknown_ids_are_404() {
    let sim = TestSim::start(fast_config()).await;
    let answer = sim
        .create(&json!({
            "project_id": PROJECT, "url": "https://example.com/a",
            "width": "1024", "dark_mode": "true", "file_type": "jpeg", "unknown_field": 1,
        }))
        .await;
    let id = answer.json::<Value>().await.expect("JSON")["data"]["requestId"]
        .as_u64()
        .expect("an integer id");

    let record = sim.record(id).await;
    assert_eq!(record["id"], id);
    assert_eq!(record["url"], "https://example.com/a");
    assert_eq!(record["projectId"], PROJECT);
    assert_eq!(
        record["options"],
        json!({"width": 1024, "dark_mode": true, "file_type": "jpeg"})
    );
    assert_eq!(record["creditsRequired"], 1);
    for field in ["createdAt", "updatedAt"] {
        assert!(record[field].is_string(), "{field}: {record}");
    }

    let (status, envelope) = sim.get("/api/v1/screenshots/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        envelope,
        json!({"status": "error", "message": "Screenshot not found", "statusCode": 404})
    );
    let (status, _) = sim.get("/api/v1/screenshots/not-a-number").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn record_is_pending_then_processing_then_complete() {
    let sim = TestSim::start(peekshot_sim::SimConfig {
        complete_after: std::time::Duration::from_millis(1_000),
        ..fast_config()
    })
    .await;
    let id = sim.create_ok("https://example.com/slow").await;

    let pending = sim.record(id).await;
    assert_eq!(pending["status"], "PENDING");
    assert_eq!(pending["screenshotUrl"], Value::Null);
    sim.wait_for_status(id, "PROCESSING").await;
    let complete = sim.wait_for_status(id, "COMPLETE").await;
    assert_eq!(complete["duration"], "1");
}

#[tokio::test]
async fn list_is_newest_first_and_honours_filters_and_paging() {
    let sim = TestSim::start(fast_config()).await;
    let first = sim.create_ok("https://example.com/1").await;
    let blocked = sim.create_ok("https://bot-blocked.test/2").await;
    let third = sim.create_ok("https://example.com/3").await;
    sim.wait_for_status(first, "COMPLETE").await;
    sim.wait_for_status(blocked, "FAILED").await;
    sim.wait_for_status(third, "COMPLETE").await;

    let ids = |body: &Value| -> Vec<u64> {
        body["data"]["screenshots"]
            .as_array()
            .map(|list| list.iter().filter_map(|r| r["id"].as_u64()).collect())
            .unwrap_or_default()
    };

    let (status, all) = sim.get("/api/v1/screenshots").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&all), [third, blocked, first]);
    assert_eq!(all["data"]["total"], 3);

    let (_, complete) = sim.get("/api/v1/screenshots?status=COMPLETE").await;
    assert_eq!(ids(&complete), [third, first]);

    let (_, by_url) = sim
        .get("/api/v1/screenshots?url=https%3A%2F%2Fexample.com%2F1")
        .await;
    assert_eq!(ids(&by_url), [first]);

    let (_, other_project) = sim.get("/api/v1/screenshots?projectId=elsewhere").await;
    assert_eq!(ids(&other_project), Vec::<u64>::new());

    let (_, second_page) = sim.get("/api/v1/screenshots?page=2&limit=2").await;
    assert_eq!(ids(&second_page), [first]);
    assert_eq!(second_page["data"]["totalPages"], 2);

    let (status, _) = sim.get("/api/v1/screenshots?limit=1000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn stats_count_creates_by_url_reads_and_lists_and_reset_clears_them() {
    let sim = TestSim::start(fast_config()).await;
    let id = sim.create_ok("https://example.com/x").await;
    sim.create_ok("https://example.com/x").await;
    sim.create_ok("https://example.com/y").await;
    sim.record(id).await;
    sim.get("/api/v1/screenshots").await;

    let stats = sim.stats().await;
    assert_eq!(stats["creates"], 3);
    assert_eq!(
        stats["createsByUrl"],
        json!({"https://example.com/x": 2, "https://example.com/y": 1})
    );
    assert_eq!(stats["reads"], 1);
    assert_eq!(stats["lists"], 1);

    let reset = sim
        .client
        .post(sim.url("/_sim/reset"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(reset.status(), StatusCode::OK);
    let stats = sim.stats().await;
    assert_eq!(stats["creates"], 0);
    assert_eq!(stats["createsByUrl"], json!({}));
    let (status, _) = sim.get(&format!("/api/v1/screenshots/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let next = sim.create_ok("https://example.com/z").await;
    assert!(next > id, "request ids are not reused after a reset");
}

#[tokio::test]
async fn health_answers_200_and_unknown_routes_a_404_envelope() {
    let sim = TestSim::start(fast_config()).await;
    let health = sim
        .client
        .get(sim.url("/_sim/health"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(health.status(), StatusCode::OK);

    let unknown = sim
        .client
        .get(sim.url("/v1/screenshots"))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .expect("an answer");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let envelope: Value = unknown.json().await.expect("JSON");
    assert_eq!(envelope["statusCode"], 404);
}

#[tokio::test]
async fn the_captures_endpoint_lists_every_record_without_counting_as_an_api_request() {
    let sim = TestSim::start(fast_config()).await;
    let first = sim.create_ok("https://example.com/a").await;
    let second = sim.create_ok("https://example.com/b").await;

    let (status, body) = sim.get("/_sim/captures").await;

    assert_eq!(status, StatusCode::OK);
    let ids: Vec<u64> = body["captures"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|record| record["id"].as_u64().expect("an id"))
        .collect();
    assert_eq!(ids, [first, second]);
    assert_eq!(body["captures"][1]["url"], "https://example.com/b");
    let stats = sim.stats().await;
    assert_eq!(
        (stats["reads"].as_u64(), stats["lists"].as_u64()),
        (Some(0), Some(0))
    );
}
