//! Integration tests of the Graph API client against a scripted loopback server (no network beyond
//! 127.0.0.1). One binary for the crate (STYLE.md, Tests).

mod fake;
mod graph;
