//! Plans and usage limits, and billing with Stripe (external-apis.md §8).
//!
//! - [`plans`] and [`limits`]: plans are operator data; limits are checked where the work happens
//!   (creating a chatbot, ingesting, answering, connecting a channel).
//! - [`stripe`]: a thin client on reqwest (Checkout Session §8.2, Customer Portal §8.3), base URL from
//!   `MTDESK_STRIPE_API_BASE`, an idempotency key on every POST.
//! - [`signature`] and [`webhook`]: `Stripe-Signature` verification (§8.4) and the events that move an
//!   account's plan and billing state.

pub mod limits;
pub mod plans;
pub mod signature;
pub mod stripe;
pub mod webhook;
