//! Holds `template.yaml` to the code and to the pipeline's operating rules.
//!
//! Nothing deploys the template here (no AWS, and no Docker for `sam local`), so these tests
//! read it as data and check what a broken deploy would otherwise reveal only in production:
//! the environment each function needs, the reach of each IAM statement, the queue timings
//! that keep a message from being handled twice, the dead-letter path, the table's shape, the
//! webhook route, the alarms and the outputs. `scripts/check-template.sh` checks the rest
//! (schema, SAM transform, serverless best practices).
//!
//! CloudFormation's short-form tags (`!Ref X`, `!GetAtt X.Arn`, `!Sub "..."`) arrive from
//! serde_yaml as tagged values; [`to_json`] rewrites them in their long form (`{"Ref": "X"}`,
//! `{"Fn::GetAtt": ["X", "Arn"]}`, `{"Fn::Sub": "..."}`) so every check sees one shape.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

/// The template, parsed once for all tests.
static TEMPLATE: LazyLock<Value> = LazyLock::new(|| {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not valid YAML: {error}", path.display()));
    to_json(yaml)
});

// ---------------------------------------------------------------------------------------------
// What the code expects of its deployment.
// ---------------------------------------------------------------------------------------------

/// Variables the submitter binary cannot start without, from the code's own list.
fn submitter_required_env() -> &'static [&'static str] {
    capture_adapters::config::SUBMITTER_REQUIRED_ENV
}

/// Variables the webhook binary cannot start without, from the code's own list.
fn webhook_required_env() -> &'static [&'static str] {
    capture_adapters::config::WEBHOOK_REQUIRED_ENV
}

/// Variables the reconciler binary cannot start without, from the code's own list.
fn reconciler_required_env() -> &'static [&'static str] {
    capture_adapters::config::RECONCILER_REQUIRED_ENV
}

/// Every function of the template with the workspace binary it runs.
const FUNCTIONS: &[(&str, &str)] = &[
    ("SubmitterFunction", "submitter"),
    ("WebhookFunction", "webhook"),
    ("ReconcilerFunction", "reconciler"),
];

/// Variables that carry a secret's value. The code accepts them for local runs only; deployed,
/// the functions read the value from SSM through the `*_PARAMETER` name instead.
fn local_only_secret_env() -> &'static [&'static str] {
    capture_adapters::config::LOCAL_ONLY_SECRET_ENV
}

/// IAM actions with no resource-level permissions: `"*"` is the only resource they accept.
const ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS: &[&str] =
    &["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

// ---------------------------------------------------------------------------------------------
// Queues.
// ---------------------------------------------------------------------------------------------

#[test]
fn capture_queue_visibility_timeout_is_at_least_six_times_the_submitter_timeout() {
    let visibility = number(&properties("CaptureQueue")["VisibilityTimeout"]);
    let timeout = number(&properties("SubmitterFunction")["Timeout"]);

    assert!(
        visibility >= 6.0 * timeout,
        "CaptureQueue VisibilityTimeout {visibility} s is under 6 x the submitter's Timeout \
         {timeout} s: a batch still being worked on could be delivered a second time"
    );
}

#[test]
fn capture_queue_redrives_to_the_dead_letter_queue_after_max_receive_count_receives() {
    let redrive = &properties("CaptureQueue")["RedrivePolicy"];

    assert_eq!(
        redrive["deadLetterTargetArn"],
        get_att("CaptureDeadLetterQueue", "Arn"),
        "CaptureQueue must redrive to CaptureDeadLetterQueue"
    );
    assert_eq!(redrive["maxReceiveCount"], reference("MaxReceiveCount"));
    assert_eq!(number(&parameter("MaxReceiveCount")["Default"]), 5.0);
}

#[test]
fn both_queues_use_sqs_managed_encryption() {
    for queue in ["CaptureQueue", "CaptureDeadLetterQueue"] {
        assert_eq!(
            properties(queue)["SqsManagedSseEnabled"],
            json!(true),
            "{queue} must set SqsManagedSseEnabled: true"
        );
    }
}

#[test]
fn dead_letter_queue_keeps_messages_for_fourteen_days_longer_than_the_capture_queue() {
    let dead_letter = number(&properties("CaptureDeadLetterQueue")["MessageRetentionPeriod"]);
    assert_eq!(
        dead_letter, 1_209_600.0,
        "14 days is SQS's maximum retention"
    );

    // SQS keeps a message's first enqueue time when it moves it to the dead-letter queue, so a
    // dead-letter queue that kept messages for less time would drop them on arrival.
    let capture = properties("CaptureQueue")["MessageRetentionPeriod"]
        .as_f64()
        .unwrap_or(345_600.0);
    assert!(
        dead_letter > capture,
        "dead-letter retention {dead_letter} s must exceed the capture queue's {capture} s"
    );
}

#[test]
fn queue_and_table_names_derive_from_the_stack_name() {
    let expected = [
        ("CaptureQueue", "QueueName", "${AWS::StackName}-captures"),
        (
            "CaptureDeadLetterQueue",
            "QueueName",
            "${AWS::StackName}-captures-dlq",
        ),
        ("CaptureTable", "TableName", "${AWS::StackName}-captures"),
    ];

    for (resource, property, name) in expected {
        assert_eq!(
            properties(resource)[property],
            json!({ "Fn::Sub": name }),
            "{resource}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Table.
// ---------------------------------------------------------------------------------------------

#[test]
fn capture_table_is_keyed_by_pk_and_billed_on_demand() {
    let table = properties("CaptureTable");

    assert_eq!(
        table["KeySchema"],
        json!([{ "AttributeName": "pk", "KeyType": "HASH" }])
    );
    assert!(
        as_list(&table["AttributeDefinitions"])
            .contains(&json!({ "AttributeName": "pk", "AttributeType": "S" })),
        "pk must be defined as a string"
    );
    assert_eq!(table["BillingMode"], json!("PAY_PER_REQUEST"));
    assert!(
        table.get("LocalSecondaryIndexes").is_none(),
        "a local secondary index needs a sort key on the table, which has none"
    );
}

/// The store writes `awaitingShard` (S) and `submittedAtMs` (N) on SUBMITTED captures only,
/// and the reconciler queries them by name; the index must be keyed exactly so, and must hold
/// the attributes the reconciler reads from it.
#[test]
fn the_only_index_is_the_sparse_awaiting_webhook_index_the_reconciler_queries() {
    let table = properties("CaptureTable");
    let indexes = as_list(&table["GlobalSecondaryIndexes"]);
    assert_eq!(indexes.len(), 1, "one index, awaiting-webhook: {indexes:?}");
    let index = &indexes[0];

    assert_eq!(
        index["IndexName"],
        json!(capture_adapters::dynamo::AWAITING_INDEX)
    );
    assert_eq!(
        index["KeySchema"],
        json!([
            { "AttributeName": "awaitingShard", "KeyType": "HASH" },
            { "AttributeName": "submittedAtMs", "KeyType": "RANGE" },
        ])
    );
    let definitions = as_list(&table["AttributeDefinitions"]);
    for (name, kind) in [("awaitingShard", "S"), ("submittedAtMs", "N")] {
        assert!(
            definitions.contains(&json!({ "AttributeName": name, "AttributeType": kind })),
            "{name} must be defined with type {kind}"
        );
    }

    let projection = &index["Projection"];
    let projected = as_list(&projection["NonKeyAttributes"]);
    assert!(
        projection["ProjectionType"] == json!("ALL")
            || (projection["ProjectionType"] == json!("INCLUDE")
                && ["captureId", "requestId"]
                    .iter()
                    .all(|name| projected.contains(&json!(name)))),
        "the reconciler reads captureId and requestId from the index: {projection}"
    );
}

#[test]
fn capture_table_expires_records_by_expires_at_and_keeps_point_in_time_recovery() {
    let table = properties("CaptureTable");

    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({ "AttributeName": "expiresAt", "Enabled": true })
    );
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        json!(true)
    );
}

#[test]
fn capture_table_deletion_protection_is_a_parameter_that_defaults_to_on() {
    let table = properties("CaptureTable");
    let Some(parameter_name) = table["DeletionProtectionEnabled"]["Ref"].as_str() else {
        panic!("CaptureTable DeletionProtectionEnabled must be a !Ref to a parameter");
    };

    assert_eq!(parameter(parameter_name)["Default"], json!("true"));
}

// ---------------------------------------------------------------------------------------------
// Functions.
// ---------------------------------------------------------------------------------------------

#[test]
fn functions_are_the_workspace_binaries_built_by_cargo_lambda() {
    for &(function, binary) in FUNCTIONS {
        let resource = resource(function);
        let props = &resource["Properties"];

        assert_eq!(
            resource["Type"],
            json!("AWS::Serverless::Function"),
            "{function}"
        );
        assert_eq!(props["Runtime"], json!("provided.al2023"), "{function}");
        assert_eq!(props["Handler"], json!("bootstrap"), "{function}");
        assert_eq!(
            props["CodeUri"],
            json!("."),
            "{function} builds from the workspace root"
        );
        assert_eq!(
            resource["Metadata"]["BuildMethod"],
            json!("rust-cargolambda"),
            "{function}"
        );
        assert_eq!(
            resource["Metadata"]["BuildProperties"]["Binary"],
            json!(binary),
            "{function}"
        );

        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crates")
            .join(binary)
            .join("Cargo.toml");
        let manifest = std::fs::read_to_string(&manifest).unwrap_or_else(|error| {
            panic!("{function}: cannot read {}: {error}", manifest.display())
        });
        assert!(
            manifest
                .lines()
                .any(|line| line.trim() == format!("name = \"{binary}\"")),
            "{function}: crates/{binary}/Cargo.toml must build a binary named {binary}"
        );
    }
}

#[test]
fn sam_build_can_select_each_function_binary_from_the_workspace_root() {
    // `sam build` runs `cargo lambda build --bin <Binary>` in CodeUri, the workspace root. The
    // root is itself a package, so cargo looks for the binary only among the workspace's default
    // members: without them it answers "no bin target named `submitter` in default-run packages".
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata could not be started");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata output");
    let default_members: Vec<&Value> = metadata["workspace_default_members"]
        .as_array()
        .map(|members| members.iter().collect())
        .unwrap_or_default();
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();

    for &(_, binary) in FUNCTIONS {
        let package = packages.iter().find(|package| {
            as_list(&package["targets"]).iter().any(|target| {
                target["name"] == json!(binary) && as_list(&target["kind"]).contains(&json!("bin"))
            })
        });
        let Some(package) = package else {
            panic!("no workspace package has a binary named {binary}");
        };
        assert!(
            default_members.contains(&&package["id"]),
            "the {binary} binary is not in a default member of the workspace, so `sam build` \
             cannot find it: add `default-members = [\".\", \"crates/*\"]` to [workspace] \
             in the root Cargo.toml"
        );
    }
}

#[test]
fn functions_share_the_architecture_parameter_and_trace_actively() {
    let architecture = parameter("Architecture");
    assert_eq!(architecture["Default"], json!("x86_64"));
    assert_eq!(architecture["AllowedValues"], json!(["x86_64", "arm64"]));

    for &(function, _) in FUNCTIONS {
        let props = properties(function);
        assert_eq!(
            props["Architectures"],
            json!([reference("Architecture")]),
            "{function}"
        );
        assert_eq!(props["Tracing"], json!("Active"), "{function}");
    }
}

#[test]
fn submitter_environment_sets_every_variable_the_submitter_requires() {
    assert_sets_every_required_variable("SubmitterFunction", submitter_required_env());
}

#[test]
fn webhook_environment_sets_every_variable_the_webhook_requires() {
    assert_sets_every_required_variable("WebhookFunction", webhook_required_env());
}

#[test]
fn reconciler_environment_sets_every_variable_the_reconciler_requires() {
    assert_sets_every_required_variable("ReconcilerFunction", reconciler_required_env());

    let reconciler = environment("ReconcilerFunction");
    assert_eq!(reconciler["CAPTURE_TABLE"], reference("CaptureTable"));
    assert_eq!(
        reconciler["PEEKSHOT_API_KEY_PARAMETER"],
        environment("SubmitterFunction")["PEEKSHOT_API_KEY_PARAMETER"],
        "the reconciler reads with the submitter's API key"
    );
}

#[test]
fn no_function_environment_carries_a_secret_value() {
    for (function, _) in resources_of_type("AWS::Serverless::Function") {
        let variables = environment(function);
        for secret in local_only_secret_env() {
            assert!(
                !variables.contains_key(*secret),
                "{function} sets {secret}: a secret's value must come from SSM, not the template"
            );
        }
    }

    let globals = &TEMPLATE["Globals"]["Function"]["Environment"]["Variables"];
    for secret in local_only_secret_env() {
        assert!(globals.get(*secret).is_none(), "Globals set {secret}");
    }
}

#[test]
fn environment_points_each_function_at_this_stacks_table_and_secret_parameters() {
    let submitter = environment("SubmitterFunction");
    let webhook = environment("WebhookFunction");

    assert_eq!(submitter["CAPTURE_TABLE"], reference("CaptureTable"));
    assert_eq!(webhook["CAPTURE_TABLE"], reference("CaptureTable"));

    let api_key = &submitter["PEEKSHOT_API_KEY_PARAMETER"];
    assert_eq!(
        parameter_default_of(api_key),
        json!("/peekshot-pipeline/api-key")
    );

    let secret = &webhook["WEBHOOK_SECRET_PARAMETER"];
    assert_eq!(
        parameter_default_of(secret),
        json!("/peekshot-pipeline/webhook-secret")
    );

    let project = &submitter["PEEKSHOT_PROJECT_ID"];
    assert!(
        project.get("Ref").is_some(),
        "PEEKSHOT_PROJECT_ID must come from a parameter, not be written into the template"
    );
}

/// The tunables are optional in the code (each has a default there), so the required lists
/// above do not cover them; the template still sets each from a parameter, so an operator can
/// change it with `sam deploy --parameter-overrides`.
#[test]
fn every_tunable_parameter_reaches_the_function_that_reads_it() {
    let wiring = [
        (
            "SubmitterFunction",
            "PEEKSHOT_BASE_URL",
            "PeekShotBaseUrl",
            json!("https://api.peekshot.com"),
        ),
        (
            "SubmitterFunction",
            "SUBMIT_CONCURRENCY",
            "SubmitConcurrency",
            json!(10),
        ),
        (
            "SubmitterFunction",
            "SUBMIT_RATE_PER_SECOND",
            "SubmitRatePerSecond",
            json!(capture_adapters::config::DEFAULT_SUBMIT_RATE_PER_SECOND as u64),
        ),
        (
            "SubmitterFunction",
            "SUBMIT_BURST",
            "SubmitBurst",
            json!(capture_adapters::config::DEFAULT_SUBMIT_BURST),
        ),
        (
            "SubmitterFunction",
            "CAPTURE_RETENTION_DAYS",
            "CaptureRetentionDays",
            json!(30),
        ),
        (
            "WebhookFunction",
            "CAPTURE_RETENTION_DAYS",
            "CaptureRetentionDays",
            json!(30),
        ),
        (
            "ReconcilerFunction",
            "PEEKSHOT_BASE_URL",
            "PeekShotBaseUrl",
            json!("https://api.peekshot.com"),
        ),
        (
            "ReconcilerFunction",
            "CAPTURE_RETENTION_DAYS",
            "CaptureRetentionDays",
            json!(30),
        ),
        (
            "ReconcilerFunction",
            "RECONCILE_AFTER_SECONDS",
            "ReconcileAfterSeconds",
            json!(capture_adapters::config::DEFAULT_RECONCILE_AFTER.as_secs()),
        ),
        (
            "ReconcilerFunction",
            "RECONCILE_GIVE_UP_SECONDS",
            "ReconcileGiveUpSeconds",
            json!(capture_adapters::config::DEFAULT_RECONCILE_GIVE_UP.as_secs()),
        ),
        (
            "ReconcilerFunction",
            "RECONCILE_CONCURRENCY",
            "ReconcileConcurrency",
            json!(capture_adapters::config::DEFAULT_RECONCILE_CONCURRENCY),
        ),
    ];

    for (function, variable, parameter_name, default) in wiring {
        assert_eq!(
            environment(function)[variable],
            reference(parameter_name),
            "{function} {variable}"
        );
        assert_eq!(
            parameter(parameter_name)["Default"],
            default,
            "{parameter_name}"
        );
    }

    for &(function, _) in FUNCTIONS {
        assert_eq!(
            environment(function)["RUST_LOG"],
            json!("info"),
            "{function}"
        );
    }
}

#[test]
fn submitter_consumes_the_capture_queue_and_reports_batch_item_failures() {
    let event = sqs_event("SubmitterFunction");

    assert_eq!(event["Queue"], get_att("CaptureQueue", "Arn"));
    assert!(
        event["FunctionResponseTypes"]
            .as_array()
            .is_some_and(|types| types.contains(&json!("ReportBatchItemFailures"))),
        "without ReportBatchItemFailures one failed capture sends its whole batch back"
    );
    assert_eq!(event["BatchSize"], reference("BatchSize"));
    assert_eq!(number(&parameter("BatchSize")["Default"]), 10.0);
    assert!(
        event["MaximumBatchingWindowInSeconds"]
            .as_f64()
            .is_some_and(|window| window >= 1.0),
        "a batching window lets a batch fill before the submitter is invoked"
    );
}

#[test]
fn submitter_concurrency_is_capped_by_a_parameter_to_respect_peekshots_rate_limit() {
    let event = sqs_event("SubmitterFunction");
    assert_eq!(
        event["ScalingConfig"]["MaximumConcurrency"],
        reference("MaximumConcurrency")
    );

    let maximum = parameter("MaximumConcurrency");
    assert_eq!(number(&maximum["Default"]), 2.0);
    assert!(
        number(&maximum["MinValue"]) >= 2.0,
        "SQS event sources accept a MaximumConcurrency of 2 or more"
    );
}

/// One round of the event source (every allowed invocation with a full batch) must find pace
/// slots within the wait a message may spend inside its invocation; otherwise a steady
/// backlog sends messages back to the queue without an attempt, and each return uses up one
/// of their `MaxReceiveCount` receives.
#[test]
fn the_default_pace_serves_a_full_round_of_batches_within_the_wait() {
    let round = number(&parameter("MaximumConcurrency")["Default"])
        * number(&parameter("BatchSize")["Default"]);
    let rate = number(&parameter("SubmitRatePerSecond")["Default"]);
    let wait = capture_adapters::config::DEFAULT_SUBMIT_MAX_WAIT.as_secs_f64();
    let burst = number(&parameter("SubmitBurst")["Default"]);
    assert!(
        round <= burst + rate * wait,
        "{round} messages a round, but only {burst} + {rate}/s x {wait} s of slots"
    );

    let timeout = number(&properties("SubmitterFunction")["Timeout"]);
    let reserve = (capture::submit::RECORD_RESERVE + capture::submit::MIN_CALL_TIME).as_secs_f64();
    assert!(
        wait + reserve <= timeout,
        "waiting {wait} s for a slot must leave the {reserve} s a create and its record need \
         inside the {timeout} s timeout"
    );
}

#[test]
fn function_logs_go_to_log_groups_kept_for_the_retention_parameter() {
    for &(function, _) in FUNCTIONS {
        let log_group = properties(function)["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{function} LoggingConfig.LogGroup must !Ref a log group"))
            .to_owned();

        assert_eq!(
            properties(function)["LoggingConfig"]["LogFormat"],
            json!("JSON"),
            "{function}: lambda_runtime's subscriber writes JSON only when Lambda sets \
             AWS_LAMBDA_LOG_FORMAT=JSON, which LogFormat: JSON does"
        );

        let group = resource(&log_group);
        assert_eq!(group["Type"], json!("AWS::Logs::LogGroup"), "{log_group}");
        assert_eq!(
            group["Properties"]["RetentionInDays"],
            reference("LogRetentionInDays"),
            "{log_group}"
        );

        let writable: Vec<Value> = statements_of_function(function)
            .into_iter()
            .filter(|statement| actions(statement).contains("logs:PutLogEvents"))
            .flat_map(|statement| resources(&statement))
            .collect();
        assert_eq!(
            writable,
            vec![get_att(&log_group, "Arn")],
            "{function} may write logs to its own log group only"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// IAM.
// ---------------------------------------------------------------------------------------------

#[test]
fn functions_use_the_templates_roles_so_sam_attaches_no_managed_policy() {
    for (function, value) in resources_of_type("AWS::Serverless::Function") {
        let props = &value["Properties"];
        let role = props["Role"]["Fn::GetAtt"][0].as_str().unwrap_or_else(|| {
            panic!("{function} Role must be !GetAtt <a role of this template>.Arn")
        });

        assert_eq!(
            resource(role)["Type"],
            json!("AWS::IAM::Role"),
            "{function} role {role}"
        );
        assert!(
            resource(role)["Properties"]
                .get("ManagedPolicyArns")
                .is_none(),
            "{role} attaches managed policies, whose resources this test cannot see"
        );
        assert!(
            props.get("Policies").is_none(),
            "{function} has Policies, which SAM ignores when Role is set"
        );
    }
}

#[test]
fn no_iam_statement_grants_a_wildcard_where_a_reference_exists() {
    let mut checked = 0;

    for (owner, statement) in all_statements() {
        checked += 1;
        assert!(
            statement.get("NotResource").is_none() && statement.get("NotAction").is_none(),
            "{owner}: NotResource and NotAction grant everything else"
        );

        let actions = actions(&statement);
        for action in &actions {
            assert!(!action.contains('*'), "{owner}: wildcard action {action}");
        }

        let wildcards: Vec<Value> = resources(&statement)
            .into_iter()
            .filter(|resource| resource_text(resource).contains('*'))
            .collect();
        if wildcards.is_empty() {
            continue;
        }

        let no_resource_level = actions
            .iter()
            .all(|action| ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS.contains(&action.as_str()));
        let decrypt_through_ssm = is_kms_decrypt_through_ssm_in_this_account(&statement);
        assert!(
            no_resource_level || decrypt_through_ssm,
            "{owner}: {wildcards:?} for {actions:?}; name the resource with !Ref, !GetAtt or !Sub"
        );
    }

    assert!(checked > 0, "the template has no IAM statement to check");
}

#[test]
fn each_function_may_read_only_the_secret_parameter_its_environment_names() {
    let expected = [
        ("SubmitterFunction", "PEEKSHOT_API_KEY_PARAMETER"),
        ("WebhookFunction", "WEBHOOK_SECRET_PARAMETER"),
        ("ReconcilerFunction", "PEEKSHOT_API_KEY_PARAMETER"),
    ];

    for (function, variable) in expected {
        let parameter_name = environment(function)[variable]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{function} {variable} must !Ref a template parameter"))
            .to_owned();
        let arn = json!({
            "Fn::Sub": format!(
                "arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter${{{parameter_name}}}"
            )
        });

        let readable: Vec<Value> = statements_of_function(function)
            .into_iter()
            .filter(|statement| {
                actions(statement)
                    .iter()
                    .any(|action| action.starts_with("ssm:"))
            })
            .flat_map(|statement| {
                assert_eq!(
                    actions(&statement),
                    BTreeSet::from(["ssm:GetParameter".to_owned()])
                );
                resources(&statement)
            })
            .collect();
        assert_eq!(
            readable,
            vec![arn],
            "{function} may read {parameter_name} and nothing else"
        );

        let pattern = parameter(&parameter_name)["AllowedPattern"]
            .as_str()
            .unwrap_or_default();
        assert!(
            pattern.starts_with("^/"),
            "{parameter_name} must only accept names that start with '/' (the ARN has no separator)"
        );
    }
}

#[test]
fn data_access_is_exactly_the_item_writes_each_function_makes() {
    let table_actions = |function: &str| -> BTreeSet<String> {
        let actions: &[&str] = match function {
            "SubmitterFunction" => &["dynamodb:PutItem", "dynamodb:UpdateItem"],
            _ => &["dynamodb:UpdateItem"],
        };
        actions.iter().map(|a| a.to_string()).collect()
    };
    let queue_actions = BTreeSet::from(
        [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
            "sqs:SendMessage",
        ]
        .map(String::from),
    );

    for function in ["SubmitterFunction", "WebhookFunction"] {
        for statement in statements_of_function(function) {
            let actions = actions(&statement);
            if actions.iter().any(|action| action.starts_with("dynamodb:")) {
                assert_eq!(actions, table_actions(function), "{function}");
                assert_eq!(
                    resources(&statement),
                    vec![get_att("CaptureTable", "Arn")],
                    "{function}"
                );
            }
            if actions.iter().any(|action| action.starts_with("sqs:")) {
                assert_eq!(
                    function, "SubmitterFunction",
                    "only the submitter touches the queue"
                );
                assert_eq!(actions, queue_actions, "{function}");
                assert_eq!(
                    resources(&statement),
                    vec![get_att("CaptureQueue", "Arn")],
                    "{function}"
                );
            }
        }
    }
}

/// The reconciler lists candidates from the awaiting-webhook index and finishes them with the
/// webhook's conditional updates: it may query that index and update items, nothing else. No
/// function may scan the table.
#[test]
fn reconciler_may_query_only_the_awaiting_webhook_index_and_update_items() {
    let index_arn = json!({
        "Fn::Sub": format!(
            "${{CaptureTable.Arn}}/index/{}",
            capture_adapters::dynamo::AWAITING_INDEX
        )
    });
    let item_actions =
        BTreeSet::from(["dynamodb:GetItem", "dynamodb:UpdateItem"].map(String::from));
    let mut queries = 0;

    for statement in statements_of_function("ReconcilerFunction") {
        let actions = actions(&statement);
        if !actions.iter().any(|action| action.starts_with("dynamodb:")) {
            continue;
        }
        if actions.contains("dynamodb:Query") {
            queries += 1;
            assert_eq!(
                actions,
                BTreeSet::from(["dynamodb:Query".to_owned()]),
                "Query gets a statement of its own, limited to the index"
            );
            assert_eq!(resources(&statement), vec![index_arn.clone()]);
        } else {
            assert!(actions.is_subset(&item_actions), "{actions:?}");
            assert_eq!(resources(&statement), vec![get_att("CaptureTable", "Arn")]);
        }
    }
    assert_eq!(
        queries, 1,
        "the reconciler must be allowed to query the index"
    );

    for (owner, statement) in all_statements() {
        assert!(
            !actions(&statement).contains("dynamodb:Scan"),
            "{owner} may scan the capture table"
        );
    }
}

#[test]
fn reconciler_runs_on_a_schedule_whose_interval_is_a_parameter() {
    let events: Vec<Value> = properties("ReconcilerFunction")["Events"]
        .as_object()
        .map(|events| events.values().cloned().collect())
        .unwrap_or_default();
    let schedules: Vec<&Value> = events
        .iter()
        .filter(|event| event["Type"] == json!("Schedule") || event["Type"] == json!("ScheduleV2"))
        .map(|event| &event["Properties"])
        .collect();
    assert_eq!(schedules.len(), 1, "ReconcilerFunction needs one schedule");

    let expression = schedules[0]["Schedule"].to_string();
    assert!(
        expression.contains("${ReconcileIntervalMinutes}"),
        "the schedule must use the ReconcileIntervalMinutes parameter: {expression}"
    );
    let interval = parameter("ReconcileIntervalMinutes");
    assert_eq!(number(&interval["Default"]), 5.0);

    // A run that outlasts the interval would overlap the next one; harmless, since every write
    // is conditional, but it reads PeekShot twice for nothing.
    let timeout = number(&properties("ReconcilerFunction")["Timeout"]);
    assert!(
        timeout <= 60.0 * number(&interval["MinValue"]),
        "Timeout {timeout} s exceeds the shortest interval"
    );
    assert!(
        number(&parameter("ReconcileGiveUpSeconds")["Default"])
            > number(&parameter("ReconcileAfterSeconds")["Default"]),
        "captures must not time out before the reconciler asks about them"
    );
}

// ---------------------------------------------------------------------------------------------
// Webhook API.
// ---------------------------------------------------------------------------------------------

#[test]
fn webhook_is_post_webhooks_peekshot_on_the_webhook_http_api_with_payload_v2() {
    let events = properties("WebhookFunction")["Events"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let routes: Vec<&Value> = events
        .values()
        .filter(|event| event["Type"] == json!("HttpApi"))
        .map(|event| &event["Properties"])
        .collect();

    assert_eq!(
        routes.len(),
        1,
        "WebhookFunction must have exactly one HttpApi event"
    );
    let route = routes[0];
    assert_eq!(route["ApiId"], reference("WebhookApi"));
    assert_eq!(
        route["Method"].as_str().map(str::to_uppercase).as_deref(),
        Some("POST")
    );
    assert_eq!(route["Path"], json!("/webhooks/peekshot"));
    assert!(
        route.get("PayloadFormatVersion").is_none()
            || route["PayloadFormatVersion"] == json!("2.0"),
        "the webhook handler parses API Gateway payload format 2.0"
    );
    assert_eq!(
        resource("WebhookApi")["Type"],
        json!("AWS::Serverless::HttpApi")
    );
}

#[test]
fn webhook_api_throttles_its_default_route() {
    let throttling = &properties("WebhookApi")["DefaultRouteSettings"];

    for limit in ["ThrottlingBurstLimit", "ThrottlingRateLimit"] {
        assert!(
            throttling[limit].as_f64().is_some_and(|value| value > 0.0),
            "WebhookApi DefaultRouteSettings.{limit} must be a positive number"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Operations.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_operational_alarm_exists_and_notifies_the_alarm_topic() {
    let expected = [
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            get_att("CaptureDeadLetterQueue", "QueueName"),
            json!(0),
        ),
        (
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "QueueName",
            get_att("CaptureQueue", "QueueName"),
            reference("QueueAgeAlarmThresholdSeconds"),
        ),
        (
            "AWS/Lambda",
            "Errors",
            "FunctionName",
            reference("SubmitterFunction"),
            json!(0),
        ),
        (
            "AWS/Lambda",
            "Errors",
            "FunctionName",
            reference("WebhookFunction"),
            json!(0),
        ),
        (
            "AWS/Lambda",
            "Errors",
            "FunctionName",
            reference("ReconcilerFunction"),
            json!(0),
        ),
        (
            "AWS/Lambda",
            "Throttles",
            "FunctionName",
            reference("SubmitterFunction"),
            json!(0),
        ),
        (
            "AWS/Lambda",
            "Throttles",
            "FunctionName",
            reference("WebhookFunction"),
            json!(0),
        ),
    ];
    let alarms = resources_of_type("AWS::CloudWatch::Alarm");

    for (namespace, metric, dimension, subject, threshold) in expected {
        let found = alarms.iter().find(|(_, alarm)| {
            let props = &alarm["Properties"];
            props["Namespace"] == json!(namespace)
                && props["MetricName"] == json!(metric)
                && props["Dimensions"] == json!([{ "Name": dimension, "Value": subject }])
        });
        let Some((id, alarm)) = found else {
            panic!("no alarm on {namespace} {metric} for {subject}");
        };

        assert!(
            alarm.get("Condition").is_none(),
            "{id} has a Condition: it would not exist in every deployment"
        );

        let props = &alarm["Properties"];
        assert_eq!(
            props["ComparisonOperator"],
            json!("GreaterThanThreshold"),
            "{id}"
        );
        assert!(
            props["Threshold"] == threshold
                || (threshold.is_number() && props["Threshold"].as_f64() == threshold.as_f64()),
            "{id}: threshold {} instead of {threshold}",
            props["Threshold"]
        );
        assert!(
            props["AlarmActions"]
                .as_array()
                .is_some_and(|actions| actions.contains(&reference("AlarmTopic"))),
            "{id} must notify AlarmTopic"
        );
    }
}

#[test]
fn every_alarm_notifies_the_alarm_topic_and_an_email_can_subscribe() {
    for (id, alarm) in resources_of_type("AWS::CloudWatch::Alarm") {
        assert_eq!(
            alarm["Properties"]["AlarmActions"],
            json!([reference("AlarmTopic")]),
            "{id}"
        );
    }
    assert_eq!(resource("AlarmTopic")["Type"], json!("AWS::SNS::Topic"));

    let subscriptions = resources_of_type("AWS::SNS::Subscription");
    let email = subscriptions
        .into_iter()
        .find(|(_, subscription)| subscription["Properties"]["Protocol"] == json!("email"));
    let Some((id, subscription)) = email else {
        panic!("no e-mail subscription to AlarmTopic");
    };
    assert_eq!(
        subscription["Properties"]["TopicArn"],
        reference("AlarmTopic"),
        "{id}"
    );
    assert!(
        subscription.get("Condition").is_some(),
        "{id} must be conditional: the e-mail address is optional"
    );
}

#[test]
fn errors_logged_by_each_function_raise_an_alarm() {
    // A deployment fault (rejected API key, no credits) is logged at ERROR but is no Lambda
    // error, so only a filter on the log group notices it before the dead-letter queue does.
    let filters = resources_of_type("AWS::Logs::MetricFilter");
    let alarms = resources_of_type("AWS::CloudWatch::Alarm");

    for &(function, _) in FUNCTIONS {
        let log_group = &properties(function)["LoggingConfig"]["LogGroup"];
        let Some((id, filter)) = filters
            .iter()
            .find(|(_, filter)| &filter["Properties"]["LogGroupName"] == log_group)
        else {
            panic!("no metric filter on the log group of {function}");
        };

        let props = &filter["Properties"];
        assert_eq!(
            props["FilterPattern"],
            json!(r#"{ $.level = "ERROR" }"#),
            "{id}"
        );
        let metric = &props["MetricTransformations"][0];
        let alarmed = alarms.iter().any(|(_, alarm)| {
            let alarm = &alarm["Properties"];
            alarm["Namespace"] == metric["MetricNamespace"]
                && alarm["MetricName"] == metric["MetricName"]
                && alarm["AlarmActions"] == json!([reference("AlarmTopic")])
        });
        assert!(alarmed, "no alarm on {id}'s metric notifies AlarmTopic");
    }
}

#[test]
fn outputs_give_operators_the_queues_the_webhook_url_the_table_and_the_topic() {
    let outputs = &TEMPLATE["Outputs"];
    let expected = [
        ("CaptureQueueUrl", reference("CaptureQueue")),
        ("CaptureQueueArn", get_att("CaptureQueue", "Arn")),
        ("DeadLetterQueueUrl", reference("CaptureDeadLetterQueue")),
        ("CaptureTableName", reference("CaptureTable")),
        ("AlarmTopicArn", reference("AlarmTopic")),
        (
            "WebhookUrl",
            json!({
                "Fn::Sub": "https://${WebhookApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/webhooks/peekshot"
            }),
        ),
    ];

    for (name, value) in expected {
        assert_eq!(outputs[name]["Value"], value, "output {name}");
    }
    assert!(
        outputs["WebhookUrl"]["Description"]
            .as_str()
            .is_some_and(|description| description.contains("?secret=")),
        "the WebhookUrl output must tell the operator to append ?secret=<the webhook secret>"
    );
}

// ---------------------------------------------------------------------------------------------
// Reading the template.
// ---------------------------------------------------------------------------------------------

/// Converts serde_yaml's value into JSON, turning short-form intrinsics into their long form.
fn to_json(yaml: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Yaml;

    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(value) => Value::Bool(value),
        Yaml::Number(number) => {
            if let Some(integer) = number.as_i64() {
                json!(integer)
            } else if let Some(integer) = number.as_u64() {
                json!(integer)
            } else {
                json!(number.as_f64())
            }
        }
        Yaml::String(text) => Value::String(text),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Yaml::Mapping(mapping) => Value::Object(
            mapping
                .into_iter()
                .map(|(key, value)| {
                    let key = match key {
                        Yaml::String(key) => key,
                        other => panic!("template mapping key {other:?} is not a string"),
                    };
                    (key, to_json(value))
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            match name {
                "Ref" | "Condition" => json!({ name: value }),
                "GetAtt" => match value {
                    Value::String(path) => {
                        let (resource, attribute) = path
                            .split_once('.')
                            .unwrap_or_else(|| panic!("!GetAtt {path} has no attribute"));
                        json!({ "Fn::GetAtt": [resource, attribute] })
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                _ => json!({ format!("Fn::{name}"): value }),
            }
        }
    }
}

/// A resource by logical id.
fn resource(id: &str) -> &'static Value {
    let resource = &TEMPLATE["Resources"][id];
    assert!(resource.is_object(), "template.yaml has no resource {id}");
    resource
}

/// A resource's Properties.
fn properties(id: &str) -> &'static Value {
    &resource(id)["Properties"]
}

/// A template parameter by name.
fn parameter(name: &str) -> &'static Value {
    let parameter = &TEMPLATE["Parameters"][name];
    assert!(
        parameter.is_object(),
        "template.yaml has no parameter {name}"
    );
    parameter
}

/// The Default of the parameter that `value` (`{"Ref": name}`) names.
fn parameter_default_of(value: &Value) -> Value {
    let name = value["Ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a !Ref to a parameter"));
    parameter(name)["Default"].clone()
}

/// Every resource of one type, by logical id.
fn resources_of_type(resource_type: &str) -> Vec<(&'static str, &'static Value)> {
    TEMPLATE["Resources"]
        .as_object()
        .expect("template.yaml has no Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"] == json!(resource_type))
        .map(|(id, resource)| (id.as_str(), resource))
        .collect()
}

/// A function's environment variables.
fn environment(function: &str) -> Map<String, Value> {
    properties(function)["Environment"]["Variables"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Asserts that a function's environment sets each variable in `required`.
fn assert_sets_every_required_variable(function: &str, required: &[&str]) {
    let variables = environment(function);
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|name| variables.get(*name).is_none_or(Value::is_null))
        .collect();

    assert!(missing.is_empty(), "{function} does not set {missing:?}");
}

/// The one SQS event of a function.
fn sqs_event(function: &str) -> Value {
    let events: Vec<Value> = properties(function)["Events"]
        .as_object()
        .map(|events| events.values().cloned().collect())
        .unwrap_or_default();
    let sqs: Vec<Value> = events
        .into_iter()
        .filter(|event| event["Type"] == json!("SQS"))
        .map(|event| event["Properties"].clone())
        .collect();

    assert_eq!(sqs.len(), 1, "{function} must have exactly one SQS event");
    sqs.into_iter().next().unwrap_or_default()
}

/// `{"Ref": id}`.
fn reference(id: &str) -> Value {
    json!({ "Ref": id })
}

/// `{"Fn::GetAtt": [id, attribute]}`.
fn get_att(id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attribute] })
}

/// A number written in the template, or the Default of the parameter it references.
fn number(value: &Value) -> f64 {
    if let Some(number) = value.as_f64() {
        return number;
    }
    if let Some(text) = value.as_str().and_then(|text| text.parse().ok()) {
        return text;
    }
    if value.get("Ref").is_some() {
        return number(&parameter_default_of(value));
    }
    panic!("{value} is not a number")
}

/// Every IAM statement in the template, with the place it was found.
fn all_statements() -> Vec<(String, Value)> {
    let mut found = Vec::new();

    for (id, role) in resources_of_type("AWS::IAM::Role") {
        for statement in role_statements(&role["Properties"]) {
            found.push((id.to_owned(), statement));
        }
    }
    for policy_type in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
        for (id, policy) in resources_of_type(policy_type) {
            for statement in as_list(&policy["Properties"]["PolicyDocument"]["Statement"]) {
                found.push((id.to_owned(), statement));
            }
        }
    }
    for (id, function) in resources_of_type("AWS::Serverless::Function") {
        for policy in as_list(&function["Properties"]["Policies"]) {
            for statement in as_list(&policy["Statement"]) {
                found.push((id.to_owned(), statement));
            }
        }
    }

    found
}

/// The inline statements of a role.
fn role_statements(role_properties: &Value) -> Vec<Value> {
    as_list(&role_properties["Policies"])
        .iter()
        .flat_map(|policy| as_list(&policy["PolicyDocument"]["Statement"]))
        .collect()
}

/// The statements of the role a function runs with.
fn statements_of_function(function: &str) -> Vec<Value> {
    let role = properties(function)["Role"]["Fn::GetAtt"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{function} has no Role of this template"));
    role_statements(&resource(role)["Properties"])
}

/// A statement's actions.
fn actions(statement: &Value) -> BTreeSet<String> {
    as_list(&statement["Action"])
        .into_iter()
        .map(|action| {
            action
                .as_str()
                .unwrap_or_else(|| panic!("action {action} is not a string"))
                .to_owned()
        })
        .collect()
}

/// A statement's resources.
fn resources(statement: &Value) -> Vec<Value> {
    as_list(&statement["Resource"])
}

/// The literal text of a resource: the string itself, or the pattern of a `Fn::Sub`. A `Ref`
/// or `Fn::GetAtt` names one resource and has no literal text.
fn resource_text(resource: &Value) -> String {
    match resource {
        Value::String(text) => text.clone(),
        other => match &other["Fn::Sub"] {
            Value::String(pattern) => pattern.clone(),
            Value::Array(parts) => parts
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        },
    }
}

/// Whether a statement allows only `kms:Decrypt`, on keys of this account and Region, and only
/// when SSM asks on the caller's behalf. The AWS managed key `alias/aws/ssm` has no id that a
/// template can reference, so this is the narrowest statement that names it.
fn is_kms_decrypt_through_ssm_in_this_account(statement: &Value) -> bool {
    let only_decrypt = actions(statement) == BTreeSet::from(["kms:Decrypt".to_owned()]);
    let keys_of_this_account = resources(statement).iter().all(|resource| {
        resource_text(resource)
            == "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"
    });
    let via_ssm = statement["Condition"]["StringEquals"]["kms:ViaService"]
        == json!({ "Fn::Sub": "ssm.${AWS::Region}.amazonaws.com" });

    only_decrypt && keys_of_this_account && via_ssm
}

/// A value that CloudFormation accepts either alone or as a list, as a list.
fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}
