//! The local resources created in a real moto server: what moto reports back must be what
//! `template.yaml` declares.

use std::path::Path;

use aws_sdk_dynamodb::types::TimeToLiveStatus;
use aws_sdk_sqs::types::QueueAttributeName;
use devstack::moto;
use devstack::ports::{PortRequest, resolve_ports};
use devstack::resources::{Clients, create, create_table};
use devstack::secrets::LocalSecrets;
use devstack::template::{Template, TemplateContext};

#[tokio::test]
async fn template_resources_are_created_in_moto_as_declared() {
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
        .expect("moto starts");
    let clients = Clients::new(&devstack::aws::moto_config(&moto.url, "us-east-1").await);
    let context = TemplateContext::local("peekshot-local", "us-east-1");
    let template = Template::from_path(&workspace.join("template.yaml")).expect("template");
    let resources = template.local_resources(&context).expect("resources");
    let secrets = LocalSecrets::generate();

    let created = create(&clients, &resources, &context, &secrets)
        .await
        .expect("created");

    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&created.queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    assert_eq!(
        attributes.get(&QueueAttributeName::VisibilityTimeout),
        resources.capture_queue.attributes.get("VisibilityTimeout")
    );
    let policy: serde_json::Value = serde_json::from_str(
        attributes
            .get(&QueueAttributeName::RedrivePolicy)
            .expect("a redrive policy"),
    )
    .expect("policy JSON");
    assert_eq!(
        policy["deadLetterTargetArn"],
        "arn:aws:sqs:us-east-1:123456789012:peekshot-local-captures-dlq"
    );
    assert_eq!(
        policy["maxReceiveCount"].as_u64(),
        resources.capture_queue.max_receive_count().map(u64::from)
    );

    let ttl = clients
        .dynamodb
        .describe_time_to_live()
        .table_name(&created.table_name)
        .send()
        .await
        .expect("TTL")
        .time_to_live_description
        .expect("a TTL description");
    assert_eq!(ttl.time_to_live_status, Some(TimeToLiveStatus::Enabled));
    let expected = resources.capture_table.time_to_live_specification.as_ref();
    assert_eq!(
        ttl.attribute_name.as_deref(),
        expected.map(|t| t.attribute_name.as_str())
    );

    let api_key_parameter = resources
        .secret_parameters
        .api_key
        .expect("a parameter name");
    let stored = clients
        .ssm
        .get_parameter()
        .name(&api_key_parameter)
        .with_decryption(true)
        .send()
        .await
        .expect("the API key parameter");
    assert_eq!(
        stored.parameter.and_then(|p| p.value).as_deref(),
        Some(secrets.api_key())
    );
}

#[tokio::test]
async fn a_table_with_a_secondary_index_is_created_with_it() {
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
        .expect("moto starts");
    let dynamodb =
        aws_sdk_dynamodb::Client::new(&devstack::aws::moto_config(&moto.url, "us-east-1").await);
    let text = r#"
Resources:
  CaptureTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: indexed
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: awaiting, AttributeType: S}
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      GlobalSecondaryIndexes:
        - IndexName: awaiting-webhook
          KeySchema: [{AttributeName: awaiting, KeyType: HASH}]
          Projection: {ProjectionType: KEYS_ONLY}
"#;
    let context = TemplateContext::local("t", "us-east-1");
    let spec = Template::parse(text, "inline")
        .expect("parses")
        .table("CaptureTable", &context);

    create_table(&dynamodb, &spec.expect("resolves"))
        .await
        .expect("created");

    let table = dynamodb
        .describe_table()
        .table_name("indexed")
        .send()
        .await
        .expect("describe")
        .table
        .expect("a table");
    let indexes: Vec<_> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name.as_deref())
        .collect();
    assert_eq!(indexes, vec!["awaiting-webhook"]);
}
