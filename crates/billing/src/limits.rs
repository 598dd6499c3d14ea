//! Usage limits, checked where the work happens, and the meters that show usage against the plan.
//!
//! - Creating a chatbot: [`check_new_chatbot`]. Adding knowledge: [`check_storage`] (files count with
//!   their size, websites with the text crawled from them; a website is refused once storage is full).
//!   Connecting a channel: [`check_new_channel`] (reconnecting one already connected is always allowed).
//!   Each refusal is a [`LimitExceeded`] whose message names the limit and the plan; the API maps it to a
//!   403 with the code `plan_limit`.
//! - Answering: [`MessageLimiter::check`] runs once per message (one small query, two when the plan has a
//!   monthly limit). Over the limit the chatbot sends its fallback reply without asking a model, and the
//!   owner is mailed once per month (claimed with one conditional UPDATE, so concurrent answers send one
//!   mail). Answered messages are counted from `daily_stats`, written in the same transaction as each
//!   answer; fallback replies do not count, so the count is exactly what answering recorded.
//! - Meters: [`usage_report`] for My Account, `GET /api/v1/usage` and the billing page.
//!
//! Checks and the work they guard are not one transaction: two requests racing at the very limit can
//! both pass, overshooting by one. That is the accepted price of not locking the account on every write.

use crate::plans::{self, PlanPolicy};
use mtdesk_domain::{AccountId, Month};
use mtdesk_storage::{NewMail, Plan, StorageError, Store, UsageCounts};
use serde::Serialize;

/// A limited resource of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Chatbots,
    Messages,
    Storage,
    Channels,
}

impl Resource {
    fn describe(self, limit: i64) -> String {
        match self {
            Resource::Chatbots => plural(limit, "chatbot", "chatbots"),
            Resource::Messages => format!(
                "{} per month",
                plural(limit, "answered message", "answered messages")
            ),
            Resource::Storage => format!("{} of knowledge storage", human_bytes(limit)),
            Resource::Channels => plural(limit, "connected channel", "connected channels"),
        }
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `10 MB`, `1.5 GB`: binary units, as the limits are set.
pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut v = n.max(0) as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || (v - v.round()).abs() < 0.05 {
        format!("{} {}", v.round() as i64, UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A refusal: the work would go over the plan's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LimitExceeded {
    pub resource: Resource,
    pub limit: i64,
    pub used: i64,
    pub plan_id: String,
    pub plan_name: String,
    /// What the user reads: the limit, the plan and what to do.
    pub message: String,
}

/// Why a check did not pass.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error(transparent)]
    Exceeded(#[from] LimitExceeded),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn exceeded(plan: &Plan, resource: Resource, limit: i64, used: i64, what: &str) -> LimitExceeded {
    LimitExceeded {
        resource,
        limit,
        used,
        plan_id: plan.id.clone(),
        plan_name: plan.name.clone(),
        message: format!(
            "Your {} plan allows {}: {what}. See your plan and usage under My Account.",
            plan.name,
            resource.describe(limit)
        ),
    }
}

/// Refuses a new chatbot when the account already has as many as its plan allows.
pub async fn check_new_chatbot(
    store: &Store,
    policy: &PlanPolicy,
    account: &AccountId,
    now: i64,
) -> Result<(), LimitError> {
    let plan = plans::effective_plan(store, policy, account, now).await?;
    if plan.max_chatbots < 0 {
        return Ok(());
    }
    let used = store.count_chatbots(account).await?;
    if used >= plan.max_chatbots {
        return Err(exceeded(
            &plan,
            Resource::Chatbots,
            plan.max_chatbots,
            used,
            "delete a chatbot before creating another",
        )
        .into());
    }
    Ok(())
}

/// Refuses knowledge that would take storage over the plan's limit: `adding` bytes for a file (its size);
/// 0 for a website (its size is known only after the crawl), refused once storage is full.
pub async fn check_storage(
    store: &Store,
    policy: &PlanPolicy,
    account: &AccountId,
    adding: i64,
    now: i64,
) -> Result<(), LimitError> {
    let plan = plans::effective_plan(store, policy, account, now).await?;
    if plan.max_storage_bytes < 0 {
        return Ok(());
    }
    let used = store.storage_bytes(account).await?;
    let over = if adding > 0 {
        used.saturating_add(adding) > plan.max_storage_bytes
    } else {
        used >= plan.max_storage_bytes
    };
    if over {
        let what = if adding > 0 {
            format!(
                "{} are in use and this adds {}; delete some knowledge first",
                human_bytes(used),
                human_bytes(adding)
            )
        } else {
            format!(
                "{} are in use; delete some knowledge first",
                human_bytes(used)
            )
        };
        return Err(exceeded(
            &plan,
            Resource::Storage,
            plan.max_storage_bytes,
            used,
            &what,
        )
        .into());
    }
    Ok(())
}

/// How many bytes of text a crawl of `source` may still store under the account's plan: the limit minus
/// what the account uses, plus the text the source holds now (a re-crawl replaces it). `None`: unlimited.
pub async fn crawl_budget(
    store: &Store,
    policy: &PlanPolicy,
    account: &AccountId,
    source: &mtdesk_domain::SourceId,
    now: i64,
) -> Result<Option<i64>, StorageError> {
    let plan = plans::effective_plan(store, policy, account, now).await?;
    if plan.max_storage_bytes < 0 {
        return Ok(None);
    }
    let used = store.storage_bytes(account).await?;
    let own = store.source_text_bytes(source).await?;
    Ok(Some(
        plan.max_storage_bytes
            .saturating_sub(used)
            .saturating_add(own)
            .max(0),
    ))
}

/// Refuses connecting a new channel when the account has as many as its plan allows. `kind` is
/// `messenger`, `instagram` or `whatsapp`; `platform_id` the Page id (Messenger, Instagram) or phone number
/// id (WhatsApp). Reconnecting a channel the account already has is always allowed.
pub async fn check_new_channel(
    store: &Store,
    policy: &PlanPolicy,
    account: &AccountId,
    kind: &str,
    platform_id: &str,
    now: i64,
) -> Result<(), LimitError> {
    let plan = plans::effective_plan(store, policy, account, now).await?;
    if plan.max_channels < 0 {
        return Ok(());
    }
    let (used, reconnect) = store
        .count_channels_for_connect(account, kind, platform_id.trim())
        .await?;
    if !reconnect && used >= plan.max_channels {
        return Err(exceeded(
            &plan,
            Resource::Channels,
            plan.max_channels,
            used,
            "disconnect a channel before connecting another",
        )
        .into());
    }
    Ok(())
}

/// [`check_new_channel`] for a connect request: the platform id is the phone number id for WhatsApp,
/// the Page id otherwise. A request missing its id passes here and is refused by the connect itself.
pub async fn check_connect(
    store: &Store,
    policy: &PlanPolicy,
    account: &AccountId,
    kind: &str,
    page_id: Option<&str>,
    phone_number_id: Option<&str>,
    now: i64,
) -> Result<(), LimitError> {
    let id = if kind == "whatsapp" {
        phone_number_id
    } else {
        page_id
    };
    check_new_channel(store, policy, account, kind, id.unwrap_or(""), now).await
}

/// Usage of one resource against its limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Meter {
    pub used: i64,
    /// `None`: unlimited.
    pub limit: Option<i64>,
    /// `used / limit` in whole percent, capped at 100; `None` when unlimited.
    pub percent: Option<u8>,
}

impl Meter {
    /// A meter from a plan limit (-1 = unlimited).
    pub fn new(used: i64, limit: i64) -> Self {
        if limit < 0 {
            return Self {
                used,
                limit: None,
                percent: None,
            };
        }
        let percent = if limit == 0 {
            100
        } else {
            ((used.max(0) as f64 / limit as f64) * 100.0)
                .floor()
                .min(100.0) as u8
        };
        Self {
            used,
            limit: Some(limit),
            percent: Some(percent),
        }
    }

    /// At or over the limit.
    pub fn is_full(&self) -> bool {
        self.limit.is_some_and(|l| self.used >= l)
    }
}

/// An account's plan with its four meters (this month's messages).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    pub plan: Plan,
    /// `2026-12` (UTC).
    pub month: String,
    /// Billing is on: the plan comes from a subscription (else from `MTDESK_DEFAULT_PLAN`).
    pub billing_enabled: bool,
    pub chatbots: Meter,
    pub messages: Meter,
    pub storage: Meter,
    pub channels: Meter,
}

impl UsageReport {
    /// The meters with their resource, in display order.
    pub fn meters(&self) -> [(Resource, &Meter); 4] {
        [
            (Resource::Messages, &self.messages),
            (Resource::Chatbots, &self.chatbots),
            (Resource::Channels, &self.channels),
            (Resource::Storage, &self.storage),
        ]
    }
}

/// Days since 1970-01-01 (UTC) covered by a month: `[first, next month's first)`.
pub fn month_days(month: Month) -> (i64, i64) {
    let (from, to) = month.range_ms();
    (from / 86_400_000, to / 86_400_000)
}

/// The account's plan and usage at `now`: what My Account, `GET /api/v1/usage` and the billing page show.
pub async fn usage_report(
    store: &Store,
    policy: &PlanPolicy,
    account: &AccountId,
    now: i64,
) -> Result<UsageReport, StorageError> {
    let plan = plans::effective_plan(store, policy, account, now).await?;
    let month = Month::of_ms(now);
    let (from, to) = month_days(month);
    let u: UsageCounts = store.usage_counts(account, from, to).await?;
    Ok(UsageReport {
        month: month.to_string(),
        billing_enabled: policy.billing_enabled,
        chatbots: Meter::new(u.chatbots, plan.max_chatbots),
        messages: Meter::new(u.messages, plan.max_messages_month),
        storage: Meter::new(u.storage_bytes, plan.max_storage_bytes),
        channels: Meter::new(u.channels, plan.max_channels),
        plan,
    })
}

/// What answering may do for an account this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageGate {
    Allowed,
    /// The month's answered messages reached the plan's limit: send the fallback reply.
    OverLimit {
        plan_name: String,
        limit: i64,
    },
}

/// The once-per-message check of the monthly message limit, with the owner's notice mail. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MessageLimiter {
    store: Store,
    policy: PlanPolicy,
    /// The operator's name and public URL, for the notice mail.
    site: mtdesk_email::Site,
}

impl MessageLimiter {
    pub fn new(store: Store, policy: PlanPolicy, site: mtdesk_email::Site) -> Self {
        Self {
            store,
            policy,
            site,
        }
    }

    pub fn policy(&self) -> &PlanPolicy {
        &self.policy
    }

    /// Whether another message may be answered at `now`. The first refusal of a month queues one mail to
    /// the owner (a failure to queue it is logged; the refusal stands).
    pub async fn check(&self, account: &AccountId, now: i64) -> Result<MessageGate, StorageError> {
        let l = self
            .store
            .message_limits(account, self.policy.fallback_plan())
            .await?;
        let own = if self.policy.billing_enabled && plans::subscription_applies(&l.billing, now) {
            l.own.clone()
        } else {
            None
        };
        let (plan_name, limit) = match (own, l.fallback) {
            (Some(own), _) => own,
            (None, Some((_, name, limit))) => (name, limit),
            // No plan at all (cannot happen after the start-up check): nothing to enforce.
            (None, None) => return Ok(MessageGate::Allowed),
        };
        if limit < 0 {
            return Ok(MessageGate::Allowed);
        }
        let month = Month::of_ms(now);
        let (from, to) = month_days(month);
        let used = self.store.answered_messages(account, from, to).await?;
        if used < limit {
            return Ok(MessageGate::Allowed);
        }
        if self
            .store
            .claim_limit_notice(account, &month.to_string())
            .await?
            && let Err(e) = self.notify(account, &plan_name, limit, month).await
        {
            tracing::warn!(error = %e, "queueing the message-limit mail failed");
        }
        Ok(MessageGate::OverLimit { plan_name, limit })
    }

    async fn notify(
        &self,
        account: &AccountId,
        plan: &str,
        limit: i64,
        month: Month,
    ) -> anyhow::Result<()> {
        let owner = self.store.find_account(account).await?;
        let rendered = mtdesk_email::messages::message_limit_reached(
            &self.site,
            &owner.name,
            plan,
            limit,
            &month_name(month),
        )?;
        self.store
            .enqueue_mail(&NewMail {
                account_id: Some(account.clone()),
                kind: rendered.kind.to_string(),
                to_addr: owner.email.clone(),
                subject: rendered.subject,
                body_text: rendered.text,
                body_html: rendered.html,
            })
            .await?;
        tracing::info!("message limit reached; owner notified");
        Ok(())
    }
}

/// `March 2026`.
pub fn month_name(m: Month) -> String {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let name = usize::try_from(m.month)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("Month");
    format!("{name} {}", m.year)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_show_percent_and_unlimited() {
        assert_eq!(
            Meter::new(5, -1),
            Meter {
                used: 5,
                limit: None,
                percent: None
            }
        );
        assert_eq!(Meter::new(50, 200).percent, Some(25));
        assert_eq!(Meter::new(300, 200).percent, Some(100));
        assert_eq!(Meter::new(0, 0).percent, Some(100));
        assert!(Meter::new(2, 2).is_full());
        assert!(!Meter::new(1, 2).is_full());
        assert!(!Meter::new(9, -1).is_full());
    }

    #[test]
    fn sizes_and_limits_read_well() {
        assert_eq!(human_bytes(10_485_760), "10 MB");
        assert_eq!(human_bytes(1_073_741_824), "1 GB");
        assert_eq!(human_bytes(1536), "1.5 KB");
        assert_eq!(human_bytes(12), "12 bytes");
        assert_eq!(Resource::Chatbots.describe(1), "1 chatbot");
        assert_eq!(
            Resource::Messages.describe(100),
            "100 answered messages per month"
        );
        assert_eq!(
            month_name(Month {
                year: 2026,
                month: 3
            }),
            "March 2026"
        );
    }

    #[test]
    fn a_month_covers_its_days() {
        let m = Month::parse("2026-02").expect("month");
        let (from, to) = month_days(m);
        assert_eq!(to - from, 28);
    }
}
