//! The simulator as its clients meet it: a real server on 127.0.0.1 driven
//! with reqwest, webhooks caught by a real receiver on 127.0.0.1, and the
//! built binary run as a child process. One test binary, so the crate links
//! its dependencies once.

mod api;
mod cli;
mod faults;
mod support;
mod webhooks;
