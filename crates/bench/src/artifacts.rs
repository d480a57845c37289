//! The functions' deployment packages: built the way `sam build` builds them (`cargo lambda
//! build --release`, with the zig linker from the project's `.venv`), then zipped the way
//! `sam deploy` uploads them (one `bootstrap` entry, deflate), which is the size that counts
//! toward Lambda's package limit and that a cold start downloads.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

/// The functions, by binary name.
pub const FUNCTIONS: [&str; 3] = ["submitter", "webhook", "reconciler"];

/// One function's package.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    /// `submitter`, `webhook` or `reconciler`.
    pub function: &'static str,
    /// The built `bootstrap`.
    pub bootstrap: PathBuf,
    /// Its size.
    pub bootstrap_bytes: u64,
    /// The zip made of it.
    pub zip: PathBuf,
    /// The zip's size.
    pub zip_bytes: u64,
}

/// Builds the functions in release mode into `lambda_dir/<function>/bootstrap` and returns
/// how long the build took. Each `overrides` entry is passed to Cargo as `--config KEY=VALUE`
/// (for instance `profile.release.opt-level=3`), to measure a profile variant without
/// editing `Cargo.toml`.
pub fn build(
    workspace: &Path,
    lambda_dir: &Path,
    overrides: &[String],
) -> anyhow::Result<Duration> {
    let venv_bin = workspace.join(".venv/bin");
    let cargo_lambda = venv_bin.join("cargo-lambda");
    if !cargo_lambda.is_file() {
        bail!(
            "{} not found: run scripts/setup.sh first (scripts/bench.sh does)",
            cargo_lambda.display()
        );
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut search_path = vec![venv_bin];
    search_path.extend(std::env::split_paths(&path));

    let mut command = Command::new(&cargo_lambda);
    command
        .current_dir(workspace)
        .env("PATH", std::env::join_paths(search_path)?)
        .args(["lambda", "build", "--release", "--lambda-dir"])
        .arg(lambda_dir);
    for function in FUNCTIONS {
        command.args(["--bin", function]);
    }
    for setting in overrides {
        command.args(["--config", setting]);
    }

    eprintln!("bench: building the functions: {command:?}");
    let started = Instant::now();
    let status = command.status().context("running cargo lambda build")?;
    if !status.success() {
        bail!("cargo lambda build failed ({status})");
    }
    Ok(started.elapsed())
}

/// Zips `lambda_dir/<function>/bootstrap` into `lambda_dir/<function>/bootstrap.zip`.
pub fn package(lambda_dir: &Path, function: &'static str) -> anyhow::Result<Artifact> {
    let bootstrap = lambda_dir.join(function).join("bootstrap");
    let zip_path = lambda_dir.join(function).join("bootstrap.zip");
    let bootstrap_bytes = std::fs::metadata(&bootstrap)
        .with_context(|| format!("{} is missing: build first", bootstrap.display()))?
        .len();

    let mut archive = zip::ZipWriter::new(
        File::create(&zip_path).with_context(|| format!("creating {}", zip_path.display()))?,
    );
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o755);
    archive.start_file("bootstrap", options)?;
    std::io::copy(&mut File::open(&bootstrap)?, &mut archive)
        .with_context(|| format!("compressing {}", bootstrap.display()))?;
    archive.finish()?;

    let zip_bytes = std::fs::metadata(&zip_path)?.len();
    Ok(Artifact {
        function,
        bootstrap,
        bootstrap_bytes,
        zip: zip_path,
        zip_bytes,
    })
}
