//! The local stack: the whole capture pipeline on loopback, with no AWS account and no Docker.
//!
//! `devstack up` starts, all on 127.0.0.1:
//!
//! 1. **moto** ([`moto`]), the DynamoDB, SQS and SSM endpoint, with the capture queue, its
//!    dead-letter queue and the capture table created exactly as `template.yaml` declares them
//!    ([`template`] reads the template, [`resources`] creates them);
//! 2. **the PeekShot simulator** ([`simulator`]), which calls the webhook when a capture
//!    finishes;
//! 3. **the functions** under one `cargo lambda watch` ([`functions`]), configured through
//!    their environment the way the template configures them in AWS;
//! 4. **a stand-in for Lambda's SQS event source mapping** ([`event_source`]), which polls the
//!    capture queue and invokes the submitter with real SQS events;
//! 5. **a stand-in for the reconciler's EventBridge schedule** ([`scheduler`]), which invokes
//!    the reconciler every few seconds with short thresholds.
//!
//! [`stack`] puts these together and tears them down; every child process is supervised by
//! [`process`], so a child that dies takes the stack down with its last output lines.
//! [`ports`] checks the listening ports first, [`secrets`] makes this run's API key and webhook
//! secret, and [`env_file`] writes `.devstack/stack.env` for shells and other tools.
//!
//! Two front ends use the stack: [`demo`] (`devstack demo`) sends the sample capture requests
//! and prints how each one ended, and [`harness`] starts one stack per test process for the
//! end-to-end tests in `tests/`.

pub mod aws;
pub mod demo;
pub mod env_file;
pub mod event_source;
pub mod functions;
pub mod harness;
pub mod moto;
pub mod ports;
pub mod process;
pub mod resources;
pub mod scheduler;
pub mod secrets;
pub mod simulator;
pub mod stack;
pub mod template;

pub use stack::{StackInfo, StackOptions};
