//! The local resources as read from the project's real `template.yaml`: the same names,
//! timings and redrive policy the deployed stack gets.

use std::path::PathBuf;

use devstack::template::{LocalResources, Template, TemplateContext};
use serde_yaml::Value;

fn template_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

fn local_resources() -> LocalResources {
    let template = Template::from_path(&template_path()).expect("template.yaml parses");
    template
        .local_resources(&TemplateContext::local("peekshot-local", "us-east-1"))
        .expect("the local stack's resources resolve")
}

/// A value read straight from the YAML, independently of the code under test.
fn yaml(path: &[&str]) -> Value {
    let text = std::fs::read_to_string(template_path()).expect("read template.yaml");
    let mut value: Value = serde_yaml::from_str(&text).expect("YAML");
    for key in path {
        value = value.get(*key).cloned().unwrap_or(Value::Null);
    }
    value
}

fn as_text(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn names_derive_from_the_stack_name() {
    let resources = local_resources();
    assert_eq!(
        resources.capture_queue.queue_name,
        "peekshot-local-captures"
    );
    assert_eq!(
        resources.dead_letter_queue.queue_name,
        "peekshot-local-captures-dlq"
    );
    assert_eq!(
        resources.capture_table.table_name,
        "peekshot-local-captures"
    );
}

#[test]
fn the_capture_queue_dead_letters_after_the_parameters_max_receive_count() {
    let queue = local_resources().capture_queue;
    let policy: serde_json::Value =
        serde_json::from_str(&queue.attributes["RedrivePolicy"]).expect("policy is JSON");
    assert_eq!(
        policy["deadLetterTargetArn"],
        "arn:aws:sqs:us-east-1:123456789012:peekshot-local-captures-dlq"
    );
    let default = as_text(&yaml(&["Parameters", "MaxReceiveCount", "Default"]));
    assert_eq!(
        queue.max_receive_count().map(|n| n.to_string()),
        Some(default)
    );
}

#[test]
fn queue_timings_are_the_templates() {
    let resources = local_resources();
    let queue =
        |id: &str, property: &str| as_text(&yaml(&["Resources", id, "Properties", property]));
    assert_eq!(
        resources.capture_queue.attributes["VisibilityTimeout"],
        queue("CaptureQueue", "VisibilityTimeout")
    );
    assert_eq!(
        resources.dead_letter_queue.attributes["MessageRetentionPeriod"],
        queue("CaptureDeadLetterQueue", "MessageRetentionPeriod")
    );
}

#[test]
fn the_table_has_the_templates_key_and_ttl() {
    let table = local_resources().capture_table;
    let key = yaml(&["Resources", "CaptureTable", "Properties", "KeySchema"]);
    let key = key.as_sequence().expect("a key schema");
    assert_eq!(table.key_schema.len(), key.len());
    assert_eq!(
        table.key_schema[0].attribute_name,
        as_text(&key[0]["AttributeName"])
    );
    assert_eq!(table.key_schema[0].key_type, "HASH");
    let ttl = table.time_to_live_specification.expect("TTL is declared");
    assert!(ttl.enabled);
    assert_eq!(
        ttl.attribute_name,
        as_text(&yaml(&[
            "Resources",
            "CaptureTable",
            "Properties",
            "TimeToLiveSpecification",
            "AttributeName"
        ]))
    );
}

#[test]
fn secret_parameter_names_are_the_parameter_defaults() {
    let names = local_resources().secret_parameters;
    assert_eq!(
        names.api_key,
        Some(as_text(&yaml(&[
            "Parameters",
            "PeekShotApiKeyParameterName",
            "Default"
        ])))
    );
    assert_eq!(
        names.webhook_secret,
        Some(as_text(&yaml(&[
            "Parameters",
            "WebhookSecretParameterName",
            "Default"
        ])))
    );
}

#[test]
fn the_functions_get_every_variable_the_template_sets_with_local_values() {
    let template = Template::from_path(&template_path()).expect("template.yaml parses");
    let context = TemplateContext::local("peekshot-local", "us-east-1");
    let info = devstack::StackInfo {
        region: "us-east-1".into(),
        moto_url: "http://127.0.0.1:5050".into(),
        queue_url: "http://127.0.0.1:5050/123456789012/peekshot-local-captures".into(),
        queue_arn: "arn:aws:sqs:us-east-1:123456789012:peekshot-local-captures".into(),
        dead_letter_queue_url: "http://127.0.0.1:5050/123456789012/peekshot-local-captures-dlq"
            .into(),
        table_name: "peekshot-local-captures".into(),
        simulator_url: "http://127.0.0.1:8700".into(),
        lambda_url: "http://127.0.0.1:9000".into(),
        webhook_url: "http://127.0.0.1:9000/lambda-url/webhook/webhooks/peekshot".into(),
        webhook_secret: "w".repeat(32),
        api_key: "local-key".into(),
        project_id: "local-project".into(),
    };

    let env = devstack::stack::function_environment(&template, &context, &info)
        .expect("every variable has a local value");

    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    for declared in ["SubmitterFunction", "WebhookFunction"] {
        let variables = yaml(&[
            "Resources",
            declared,
            "Properties",
            "Environment",
            "Variables",
        ]);
        for name in variables.as_mapping().expect("variables").keys() {
            let name = name.as_str().expect("a name");
            assert!(names.contains(&name), "{declared}'s {name} is missing");
        }
    }
    let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    assert_eq!(get("CAPTURE_TABLE"), Some("peekshot-local-captures"));
    assert_eq!(get("PEEKSHOT_BASE_URL"), Some("http://127.0.0.1:8700"));
    assert_eq!(get("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:5050"));
    assert_eq!(get("PEEKSHOT_API_KEY"), Some("local-key"));
}
