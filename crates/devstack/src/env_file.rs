//! `.devstack/stack.env`: the running stack's endpoints and secrets as `KEY=VALUE` lines, for
//! a shell (`set -a; . .devstack/stack.env; set +a`) or any tool that reads env files. The
//! file holds secrets, so it is created readable by its owner only (mode 0600), and the stack
//! removes it when it stops.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::stack::StackInfo;

/// The variables written, in order. Every value is a URL, name or random alphanumeric text,
/// none of which needs quoting in a POSIX shell.
pub fn variables(info: &StackInfo) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_REGION", info.region.clone()),
        // The AWS CLI and boto3 read this one, not AWS_REGION.
        ("AWS_DEFAULT_REGION", info.region.clone()),
        ("AWS_ENDPOINT_URL", info.moto_url.clone()),
        (
            "AWS_ACCESS_KEY_ID",
            crate::aws::LOCAL_ACCESS_KEY_ID.to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            crate::aws::LOCAL_SECRET_ACCESS_KEY.to_owned(),
        ),
        ("CAPTURE_QUEUE_URL", info.queue_url.clone()),
        ("CAPTURE_QUEUE_ARN", info.queue_arn.clone()),
        ("DEAD_LETTER_QUEUE_URL", info.dead_letter_queue_url.clone()),
        ("CAPTURE_TABLE", info.table_name.clone()),
        ("PEEKSHOT_BASE_URL", info.simulator_url.clone()),
        ("PEEKSHOT_PROJECT_ID", info.project_id.clone()),
        ("PEEKSHOT_API_KEY", info.api_key.clone()),
        ("LAMBDA_URL", info.lambda_url.clone()),
        ("WEBHOOK_URL", info.webhook_url.clone()),
        ("WEBHOOK_SECRET", info.webhook_secret.clone()),
    ]
}

/// Writes the env file at `path` (creating its directory), readable by the owner only.
pub fn write(path: &Path, info: &StackInfo) -> anyhow::Result<PathBuf> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = String::from("# Written by `devstack up`; removed when the stack stops.\n");
    for (key, value) in variables(info) {
        text.push_str(&format!("{key}={value}\n"));
    }

    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // `mode` applies only when the file is new; an older file keeps its mode otherwise.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {} to its owner", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_owned())
}
