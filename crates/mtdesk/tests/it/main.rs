//! Integration tests: the real server on 127.0.0.1:0 against a fresh database per test (a temp SQLite
//! file, or a uuid-named PostgreSQL database when MTDESK_TEST_DATABASE_URL is set). `TEST_LOG=1` prints
//! the server's logs.

mod accounts;
mod analytics;
mod answering;
mod auth_mail;
mod bad_input;
mod billing;
mod browser;
mod channels;
mod chatbots;
mod cli;
mod contact;
mod dashboard;
mod deletion;
mod export;
mod helpers;
mod isolation;
mod knowledge;
mod knowledge_pages;
mod ops;
mod plans;
mod privacy;
mod privacy_ops;
mod tab;
