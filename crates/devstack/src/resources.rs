//! Creates the local stack's queues, table and secret parameters in moto, from the
//! specifications [`crate::template`] read out of `template.yaml`.

use anyhow::{Context, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ProvisionedThroughput, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_ssm::types::ParameterType;

use crate::secrets::LocalSecrets;
use crate::template::{
    KeyElement, LocalResources, QueueSpec, TableSpec, TemplateContext, Throughput,
};

/// What was created, with the names and addresses clients need.
#[derive(Debug, Clone)]
pub struct CreatedResources {
    /// The capture queue's URL.
    pub queue_url: String,
    /// The capture queue's ARN (the event source's `eventSourceARN`).
    pub queue_arn: String,
    /// The dead-letter queue's URL.
    pub dead_letter_queue_url: String,
    /// The capture table's name.
    pub table_name: String,
}

/// The AWS clients that talk to moto.
#[derive(Debug, Clone)]
pub struct Clients {
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SSM Parameter Store.
    pub ssm: aws_sdk_ssm::Client,
}

impl Clients {
    /// Clients built from one SDK configuration.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
        }
    }
}

/// Creates both queues (dead-letter queue first, since the capture queue's redrive policy
/// names it), the table, and the SSM parameters holding this run's secrets.
pub async fn create(
    clients: &Clients,
    resources: &LocalResources,
    context: &TemplateContext,
    secrets: &LocalSecrets,
) -> anyhow::Result<CreatedResources> {
    let (dead_letter_queue_url, _) =
        create_queue(&clients.sqs, &resources.dead_letter_queue, context).await?;
    let (queue_url, queue_arn) =
        create_queue(&clients.sqs, &resources.capture_queue, context).await?;
    create_table(&clients.dynamodb, &resources.capture_table).await?;

    let names = &resources.secret_parameters;
    for (name, value) in [
        (&names.api_key, secrets.api_key()),
        (&names.webhook_secret, secrets.webhook_secret()),
    ] {
        if let Some(name) = name {
            put_secure_string(&clients.ssm, name, value).await?;
        }
    }

    Ok(CreatedResources {
        queue_url,
        queue_arn,
        dead_letter_queue_url,
        table_name: resources.capture_table.table_name.clone(),
    })
}

/// Creates one queue and returns its URL and ARN. The ARN must be the one the template's
/// `!GetAtt` resolved to, or a redrive policy naming it would point nowhere.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    spec: &QueueSpec,
    context: &TemplateContext,
) -> anyhow::Result<(String, String)> {
    let mut request = sqs.create_queue().queue_name(&spec.queue_name);
    for (name, value) in &spec.attributes {
        request = request.attributes(QueueAttributeName::from(name.as_str()), value);
    }
    let created = request
        .send()
        .await
        .with_context(|| format!("creating queue {} ({})", spec.queue_name, spec.logical_id))?;
    let url = created
        .queue_url
        .context("CreateQueue answered without a queue URL")?;

    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("reading the ARN of queue {}", spec.queue_name))?;
    let arn = attributes
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .context("GetQueueAttributes answered without QueueArn")?;
    let expected = context.queue_arn(&spec.queue_name);
    if arn != expected {
        bail!(
            "queue {} has ARN {arn}, but the template resolved it to {expected}",
            spec.queue_name
        );
    }
    Ok((url, arn))
}

/// Creates the table and switches on its TTL attribute.
pub async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    spec: &TableSpec,
) -> anyhow::Result<()> {
    let provisioned = spec.billing_mode.as_deref().unwrap_or("PROVISIONED") == "PROVISIONED";
    let mut request = dynamodb
        .create_table()
        .table_name(&spec.table_name)
        .set_key_schema(Some(key_schema(&spec.key_schema)?))
        .billing_mode(if provisioned {
            BillingMode::Provisioned
        } else {
            BillingMode::PayPerRequest
        });
    for definition in &spec.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&definition.attribute_name)
                .attribute_type(ScalarAttributeType::from(
                    definition.attribute_type.as_str(),
                ))
                .build()?,
        );
    }
    if provisioned {
        request = request.provisioned_throughput(throughput(spec.provisioned_throughput.as_ref())?);
    }
    for index in &spec.global_secondary_indexes {
        let mut projection = Projection::builder().set_projection_type(
            index
                .projection
                .projection_type
                .as_deref()
                .map(ProjectionType::from),
        );
        for attribute in &index.projection.non_key_attributes {
            projection = projection.non_key_attributes(attribute);
        }
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(&index.index_name)
            .set_key_schema(Some(key_schema(&index.key_schema)?))
            .projection(projection.build());
        if provisioned {
            gsi = gsi.provisioned_throughput(throughput(index.provisioned_throughput.as_ref())?);
        }
        request = request.global_secondary_indexes(gsi.build()?);
    }
    request
        .send()
        .await
        .with_context(|| format!("creating table {}", spec.table_name))?;

    if let Some(ttl) = spec
        .time_to_live_specification
        .as_ref()
        .filter(|t| t.enabled)
    {
        dynamodb
            .update_time_to_live()
            .table_name(&spec.table_name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(&ttl.attribute_name)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("enabling TTL on table {}", spec.table_name))?;
    }
    Ok(())
}

fn key_schema(elements: &[KeyElement]) -> anyhow::Result<Vec<KeySchemaElement>> {
    elements
        .iter()
        .map(|element| {
            Ok(KeySchemaElement::builder()
                .attribute_name(&element.attribute_name)
                .key_type(KeyType::from(element.key_type.as_str()))
                .build()?)
        })
        .collect()
}

/// The template's capacity, or 5/5 when a provisioned table names none (moto ignores it).
fn throughput(spec: Option<&Throughput>) -> anyhow::Result<ProvisionedThroughput> {
    let (read, write) = spec.map_or((5, 5), |t| (t.read_capacity_units, t.write_capacity_units));
    Ok(ProvisionedThroughput::builder()
        .read_capacity_units(read)
        .write_capacity_units(write)
        .build()?)
}

async fn put_secure_string(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    value: &str,
) -> anyhow::Result<()> {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .with_context(|| format!("storing SSM parameter {name}"))?;
    Ok(())
}
