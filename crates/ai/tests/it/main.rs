//! Integration tests of the LLM provider clients against the loopback fake of external-apis.md §7.6.
//! One binary for the crate (STYLE.md, Tests); no network beyond 127.0.0.1.

mod chat;
mod errors;
mod helpers;
mod models;
mod secrets;
mod streaming;
