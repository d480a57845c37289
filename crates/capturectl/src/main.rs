//! `capturectl`: the operator's command line. It talks to the pipeline's queues and table with
//! the usual AWS configuration (profile, Region, credentials; `AWS_ENDPOINT_URL` for the local
//! stack), and takes their names from flags or from the variables the local stack writes to
//! `.devstack/stack.env` (`CAPTURE_TABLE`, `CAPTURE_QUEUE_URL`, `DEAD_LETTER_QUEUE_URL`).

use std::process::ExitCode;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use capturectl::dead_letters::Pipeline;
use clap::{Args, Parser, Subcommand};
use comfy_table::{ContentArrangement, Table};

/// Inspect and repair a running capture pipeline.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    names: Names,
    #[command(subcommand)]
    command: Command,
}

/// Where the pipeline's resources are (the stack's outputs).
#[derive(Debug, Args)]
struct Names {
    /// The capture table (output CaptureTableName).
    #[arg(long, env = "CAPTURE_TABLE", global = true)]
    table: Option<String>,
    /// The capture queue (output CaptureQueueUrl).
    #[arg(long, env = "CAPTURE_QUEUE_URL", global = true)]
    queue_url: Option<String>,
    /// The dead-letter queue (output DeadLetterQueueUrl).
    #[arg(long, env = "DEAD_LETTER_QUEUE_URL", global = true)]
    dead_letter_queue_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The dead-letter queue.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Put one capture request on the capture queue, as a producer does; prints the message
    /// id (the capture id when the request names none).
    Send {
        /// The request: JSON text, or `@path` for a file holding it.
        request: String,
    },
    /// Print one capture's record.
    Show {
        /// The capture id (the body's captureId, or the SQS message id).
        capture_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLetterCommand {
    /// List dead-lettered messages with the reason each failed.
    List {
        /// Most messages to list.
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Move dead-lettered messages back to the capture queue (after fixing their cause).
    Redrive {
        /// Most messages to move.
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("capturectl: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let required = |value: Option<String>, flag: &str, env: &str| {
        value.with_context(|| format!("set {flag} or {env}"))
    };
    match cli.command {
        Command::Send { request } => {
            let queue_url = required(cli.names.queue_url, "--queue-url", "CAPTURE_QUEUE_URL")?;
            send(&aws_sdk_sqs::Client::new(&aws), &queue_url, &request).await
        }
        Command::Show { capture_id } => {
            let table = required(cli.names.table, "--table", "CAPTURE_TABLE")?;
            show(&aws_sdk_dynamodb::Client::new(&aws), &table, &capture_id).await
        }
        Command::DeadLetters(command) => {
            let pipeline = Pipeline {
                sqs: aws_sdk_sqs::Client::new(&aws),
                dynamodb: aws_sdk_dynamodb::Client::new(&aws),
                table: required(cli.names.table, "--table", "CAPTURE_TABLE")?,
                queue_url: required(cli.names.queue_url, "--queue-url", "CAPTURE_QUEUE_URL")?,
                dead_letter_queue_url: required(
                    cli.names.dead_letter_queue_url,
                    "--dead-letter-queue-url",
                    "DEAD_LETTER_QUEUE_URL",
                )?,
            };
            match command {
                DeadLetterCommand::List { max } => list(&pipeline, max).await,
                DeadLetterCommand::Redrive { max } => {
                    let redriven = pipeline.redrive(max).await?;
                    println!(
                        "moved {} message(s) back to the capture queue ({} given their original \
                         message id as captureId)",
                        redriven.moved, redriven.keyed
                    );
                    Ok(())
                }
            }
        }
    }
}

async fn list(pipeline: &Pipeline, max: usize) -> anyhow::Result<()> {
    let letters = pipeline.list(max).await?;
    if letters.is_empty() {
        println!("the dead-letter queue is empty");
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["message id", "capture id", "receives", "record", "why"]);
    for letter in &letters {
        table.add_row([
            letter.message_id.clone(),
            letter.capture_id.clone(),
            letter.receives.to_string(),
            letter.status.clone().unwrap_or_else(|| "-".into()),
            letter.reason.clone(),
        ]);
    }
    println!("{table}");
    println!(
        "{} message(s). Fix the cause, then: capturectl dead-letters redrive",
        letters.len()
    );
    Ok(())
}

async fn send(sqs: &aws_sdk_sqs::Client, queue_url: &str, request: &str) -> anyhow::Result<()> {
    let body = match request.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => request.to_owned(),
    };
    let message_id = sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .send()
        .await
        .context("sending to the capture queue")?
        .message_id
        .unwrap_or_default();
    println!("{message_id}");
    Ok(())
}

async fn show(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    capture_id: &str,
) -> anyhow::Result<()> {
    let item = dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("capture#{capture_id}")))
        .consistent_read(true)
        .send()
        .await
        .with_context(|| format!("reading capture {capture_id}"))?
        .item
        .with_context(|| format!("no record for capture {capture_id}"))?;
    let mut fields: Vec<(String, String)> = item
        .iter()
        .map(|(name, value)| (name.clone(), display(value)))
        .collect();
    fields.sort();
    for (name, value) in fields {
        println!("{name:<18} {value}");
    }
    Ok(())
}

/// An attribute as one line of text.
fn display(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(text) | AttributeValue::N(text) => text.clone(),
        AttributeValue::Bool(flag) => flag.to_string(),
        AttributeValue::M(map) => {
            let mut entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", display(v)))
                .collect();
            entries.sort();
            format!("{{{}}}", entries.join(", "))
        }
        AttributeValue::L(items) => {
            format!(
                "[{}]",
                items.iter().map(display).collect::<Vec<_>>().join(", ")
            )
        }
        other => format!("{other:?}"),
    }
}
