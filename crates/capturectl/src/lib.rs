//! Operating the pipeline from a terminal: what is in the dead-letter queue and why
//! ([`dead_letters`]), and moving it back once the cause is fixed.
//!
//! The submitter never deletes a message it could not finish, so SQS's redrive policy moves
//! a message that keeps failing to the dead-letter queue as it is: its body and its message id.
//! The reason is on the capture's record (`lastError`), keyed by the capture id the body
//! names or, when it names none, by that message id; this crate joins the two.

pub mod dead_letters;
