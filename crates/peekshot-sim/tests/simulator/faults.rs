//! Fault injection: each knob at rate 1 does what it says and is counted, the
//! knobs can be changed at run time, and the same seed repeats the same faults.

use std::time::Duration;

use peekshot_sim::{Faults, SimConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{API_KEY, PROJECT, Receiver, TestSim, fast_config};

fn with_faults(faults: Faults) -> SimConfig {
    SimConfig {
        faults,
        ..fast_config()
    }
}

#[tokio::test]
async fn server_error_rate_one_refuses_every_api_request_and_creates_nothing() {
    let sim = TestSim::start(with_faults(Faults {
        fault_5xx_rate: 1.0,
        ..Faults::default()
    }))
    .await;

    let mut seen = Vec::new();
    for _ in 0..12 {
        let answer = sim
            .create(&json!({"project_id": PROJECT, "url": "https://example.com"}))
            .await;
        let status = answer.status();
        assert!(status.is_server_error(), "{status}");
        if status == StatusCode::BAD_GATEWAY {
            let html = answer
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok());
            assert_eq!(
                html,
                Some("text/html"),
                "a 502 comes from the load balancer"
            );
        }
        seen.push(status);
    }
    assert!(
        seen.iter().any(|s| *s != seen[0]),
        "500, 502 and 503 all occur: {seen:?}"
    );

    let stats = sim.stats().await;
    assert_eq!(stats["creates"], 0);
    assert_eq!(stats["faultsInjected"], json!({"serverError": 12}));
}

#[tokio::test]
async fn rate_limited_answers_carry_retry_after() {
    let sim = TestSim::start(with_faults(Faults {
        fault_429_rate: 1.0,
        retry_after_secs: 7,
        ..Faults::default()
    }))
    .await;
    let answer = sim
        .client
        .get(sim.url("/api/v1/screenshots"))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    assert_eq!(sim.stats().await["lists"], 0);
}

#[tokio::test]
async fn hang_holds_the_request_then_answers_504_without_acting() {
    let sim = TestSim::start(with_faults(Faults {
        fault_hang_rate: 1.0,
        hang_ms: 30,
        ..Faults::default()
    }))
    .await;
    let answer = sim
        .create(&json!({"project_id": PROJECT, "url": "https://example.com"}))
        .await;
    assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);
    let stats = sim.stats().await;
    assert_eq!(stats["creates"], 0);
    assert_eq!(stats["faultsInjected"]["hang"], 1);
}

#[tokio::test]
async fn slow_answers_still_succeed_and_are_counted() {
    let sim = TestSim::start(with_faults(Faults {
        fault_slow_rate: 1.0,
        slow_ms: 20,
        ..Faults::default()
    }))
    .await;
    sim.create_ok("https://example.com").await;
    let stats = sim.stats().await;
    assert_eq!(stats["creates"], 1);
    assert_eq!(stats["faultsInjected"]["slowAnswer"], 1);
}

#[tokio::test]
async fn dropped_create_answer_closes_the_connection_yet_the_capture_is_made_and_webhooked() {
    let mut receiver = Receiver::start(&[]).await;
    let sim = TestSim::start(SimConfig {
        webhook_url: Some(receiver.url.clone()),
        ..with_faults(Faults {
            fault_create_dropped_rate: 1.0,
            ..Faults::default()
        })
    })
    .await;

    let outcome = sim
        .client
        .post(sim.url("/api/v1/screenshots"))
        .header("x-api-key", API_KEY)
        .json(&json!({"project_id": PROJECT, "url": "https://example.com/lost-answer"}))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    let error = outcome.expect_err("no answer comes back");
    assert!(
        !error.is_timeout(),
        "the connection is closed, not held: {error}"
    );

    let delivery = receiver.next().await;
    assert_eq!(delivery.body["data"]["status"], "COMPLETE");
    let stats = sim.stats().await;
    assert_eq!(stats["creates"], 1);
    assert_eq!(stats["createsByUrl"]["https://example.com/lost-answer"], 1);
    assert_eq!(stats["faultsInjected"]["createAnswerDropped"], 1);
}

#[tokio::test]
async fn held_create_answer_outlasts_the_client_timeout_yet_the_capture_is_made() {
    let sim = TestSim::start(with_faults(Faults {
        fault_create_held_rate: 1.0,
        hang_ms: 2_000,
        ..Faults::default()
    }))
    .await;

    let outcome = sim
        .client
        .post(sim.url("/api/v1/screenshots"))
        .header("x-api-key", API_KEY)
        .json(&json!({"project_id": PROJECT, "url": "https://example.com"}))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(outcome.is_err_and(|e| e.is_timeout()));

    let stats = sim.stats().await;
    assert_eq!(stats["creates"], 1);
    assert_eq!(stats["faultsInjected"]["createAnswerHeld"], 1);
}

#[tokio::test]
async fn capture_failure_rate_one_fails_captures_with_a_realistic_reason() {
    let mut receiver = Receiver::start(&[]).await;
    let sim = TestSim::start(SimConfig {
        webhook_url: Some(receiver.url.clone()),
        ..with_faults(Faults {
            fault_capture_failed_rate: 1.0,
            ..Faults::default()
        })
    })
    .await;
    let id = sim.create_ok("https://example.com").await;

    let delivery = receiver.next().await;
    assert_eq!(delivery.body["data"]["requestId"], id);
    assert_eq!(delivery.body["data"]["success"], false);
    let reason = delivery.body["data"]["error"].as_str().unwrap_or_default();
    assert!(
        peekshot_sim::faults::CAPTURE_FAILURE_REASONS.contains(&reason),
        "{reason}"
    );
    assert_eq!(sim.record(id).await["error"], reason);
}

#[tokio::test]
async fn duplicated_webhook_is_delivered_twice_and_lost_webhook_never() {
    let mut receiver = Receiver::start(&[]).await;
    let sim = TestSim::start(SimConfig {
        webhook_url: Some(receiver.url.clone()),
        ..with_faults(Faults {
            fault_webhook_duplicate_rate: 1.0,
            ..Faults::default()
        })
    })
    .await;
    let id = sim.create_ok("https://example.com/twice").await;
    let first = receiver.next().await;
    let second = receiver.next().await;
    assert_eq!(first.body, second.body);
    assert_eq!(first.body["data"]["requestId"], id);

    set_faults(&sim, json!({"fault_webhook_lost_rate": 1.0})).await;
    let lost = sim.create_ok("https://example.com/never").await;
    sim.wait_for_status(lost, "COMPLETE").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.already_arrived().is_none());

    let stats = sim.stats().await;
    assert_eq!(stats["webhooksSent"], 2);
    assert_eq!(stats["faultsInjected"]["webhookDuplicated"], 1);
    assert_eq!(stats["faultsInjected"]["webhookLost"], 1);
}

#[tokio::test]
async fn early_and_delayed_webhook_faults_set_at_run_time_take_effect() {
    let mut receiver = Receiver::start(&[]).await;
    let sim = TestSim::start(SimConfig {
        webhook_url: Some(receiver.url.clone()),
        ..fast_config()
    })
    .await;

    set_faults(&sim, json!({"fault_webhook_early_rate": 1.0})).await;
    let early = sim.create_ok("https://example.com/early").await;
    let delivery = receiver
        .already_arrived()
        .expect("the webhook arrived before the create was answered");
    assert_eq!(delivery.body["data"]["requestId"], early);

    set_faults(
        &sim,
        json!({"fault_webhook_delay_rate": 1.0, "webhook_delay_ms": 50}),
    )
    .await;
    let late = sim.create_ok("https://example.com/late").await;
    assert_eq!(receiver.next().await.body["data"]["requestId"], late);

    let stats = sim.stats().await;
    assert_eq!(stats["faultsInjected"]["webhookEarly"], 1);
    assert_eq!(stats["faultsInjected"]["webhookDelayed"], 1);
}

#[tokio::test]
async fn fault_settings_with_a_bad_rate_or_an_unknown_knob_are_refused() {
    let sim = TestSim::start(fast_config()).await;
    for body in [
        json!({"fault_5xx_rate": 2.0}),
        json!({"fault_typo_rate": 0.5}),
    ] {
        let answer = sim
            .client
            .put(sim.url("/_sim/faults"))
            .json(&body)
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let current: Value = sim
        .client
        .get(sim.url("/_sim/faults"))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(current["fault_5xx_rate"], 0.0);
}

#[tokio::test]
async fn the_same_seed_repeats_the_same_faults() {
    let faults = Faults {
        fault_5xx_rate: 0.4,
        fault_capture_failed_rate: 0.5,
        ..Faults::default()
    };
    let mut receiver_a = Receiver::start(&[]).await;
    let mut receiver_b = Receiver::start(&[]).await;
    let config = |receiver: &Receiver| SimConfig {
        seed: Some(42),
        webhook_url: Some(receiver.url.clone()),
        ..with_faults(faults.clone())
    };
    let first = TestSim::start(config(&receiver_a)).await;
    let second = TestSim::start(config(&receiver_b)).await;

    let run_a = fault_pattern(&first, &mut receiver_a).await;
    let run_b = fault_pattern(&second, &mut receiver_b).await;
    assert_eq!(run_a, run_b);
    assert!(run_a.iter().any(|o| o.starts_with('5')), "{run_a:?}");
    assert!(run_a.iter().any(|o| o == "FAILED"), "{run_a:?}");
    assert!(run_a.iter().any(|o| o == "COMPLETE"), "{run_a:?}");

    // A reset restarts the numbering, so the pattern repeats on the same server.
    first
        .client
        .post(first.url("/_sim/reset"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(fault_pattern(&first, &mut receiver_a).await, run_a);
}

#[tokio::test]
async fn a_reset_with_a_seed_repeats_a_simulator_started_with_that_seed() {
    let faults = Faults {
        fault_5xx_rate: 0.4,
        fault_capture_failed_rate: 0.5,
        ..Faults::default()
    };
    let mut receiver_a = Receiver::start(&[]).await;
    let mut receiver_b = Receiver::start(&[]).await;
    let seeded = TestSim::start(SimConfig {
        seed: Some(7),
        webhook_url: Some(receiver_a.url.clone()),
        ..with_faults(faults.clone())
    })
    .await;
    let reseeded = TestSim::start(SimConfig {
        seed: Some(8),
        webhook_url: Some(receiver_b.url.clone()),
        ..with_faults(faults)
    })
    .await;
    let expected = fault_pattern(&seeded, &mut receiver_a).await;
    let other_seed = fault_pattern(&reseeded, &mut receiver_b).await;
    assert_ne!(expected, other_seed, "two seeds, two patterns");

    let reset = reseeded
        .client
        .post(reseeded.url("/_sim/reset"))
        .json(&serde_json::json!({"seed": 7}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(reset.status(), StatusCode::OK);
    assert_eq!(fault_pattern(&reseeded, &mut receiver_b).await, expected);

    let refused = reseeded
        .client
        .post(reseeded.url("/_sim/reset"))
        .json(&serde_json::json!({"sead": 7}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

/// Sends 16 creates one after another and notes what each met: its 5xx
/// status, or how the capture ended according to its webhook. It reads no
/// records, since reads are API requests too and would draw from the dice.
async fn fault_pattern(sim: &TestSim, receiver: &mut Receiver) -> Vec<String> {
    let mut outcomes = Vec::new();
    for n in 0..16 {
        let answer = sim
            .create(&json!({"project_id": PROJECT, "url": format!("https://example.com/{n}")}))
            .await;
        if answer.status() != StatusCode::CREATED {
            outcomes.push(answer.status().as_str().to_owned());
            continue;
        }
        let body: Value = answer.json().await.expect("JSON");
        let webhook = receiver.next().await;
        assert_eq!(webhook.body["data"]["requestId"], body["data"]["requestId"]);
        outcomes.push(
            webhook.body["data"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    outcomes
}

async fn set_faults(sim: &TestSim, body: Value) {
    let answer = sim
        .client
        .put(sim.url("/_sim/faults"))
        .json(&body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), StatusCode::OK);
}
