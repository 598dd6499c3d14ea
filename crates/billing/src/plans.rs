//! Plans are operator data (`mtdesk admin plan …`, rows in the `plans` table), and which plan applies to an
//! account is decided here, in one place, for the limits, the meters and the billing pages.
//!
//! - Billing off (no `MTDESK_STRIPE_SECRET_KEY`, the self-hosted case): every account is on the plan named
//!   by `MTDESK_DEFAULT_PLAN` (`unlimited` unless the operator sets another). Nothing a webhook wrote counts.
//! - Billing on: the account's `plan_id` while its subscription is `active` or `trialing`, or `past_due`
//!   within its grace period (`grace_until`); otherwise the plan marked default (`is_default = 1`).

use mtdesk_domain::AccountId;
use mtdesk_storage::{AccountBilling, NewPlan, Plan, StorageError, Store};

/// The plan `MTDESK_DEFAULT_PLAN` names when unset: self-hosters get no limits.
pub const DEFAULT_SELF_HOSTED_PLAN: &str = "unlimited";

/// How plans are assigned on this instance: built once from the settings, kept in the app state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPolicy {
    /// Stripe is configured: plans come from subscriptions.
    pub billing_enabled: bool,
    /// `MTDESK_DEFAULT_PLAN`: the plan of every account while billing is off.
    pub default_plan: String,
}

impl Default for PlanPolicy {
    /// Billing off, everyone on `unlimited`: nothing is limited.
    fn default() -> Self {
        Self {
            billing_enabled: false,
            default_plan: DEFAULT_SELF_HOSTED_PLAN.to_string(),
        }
    }
}

impl PlanPolicy {
    /// The plan every account gets without a paid plan: `MTDESK_DEFAULT_PLAN` while billing is off, the
    /// plan marked default (`None`) while it is on.
    pub fn fallback_plan(&self) -> Option<&str> {
        (!self.billing_enabled).then_some(self.default_plan.as_str())
    }

    /// Checks at start-up that the plan `MTDESK_DEFAULT_PLAN` names exists (billing off), or that a default
    /// plan exists (billing on). The error names the setting and the plans there are.
    pub async fn check(&self, store: &Store) -> Result<(), String> {
        let plans = store
            .list_plans()
            .await
            .map_err(|e| format!("reading plans: {e}"))?;
        let ids = plans
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if self.billing_enabled {
            if !plans.iter().any(|p| p.is_default) {
                return Err(format!(
                    "no plan is marked default (plans: {ids}); run `mtdesk admin plan set ID --default`"
                ));
            }
        } else if !plans.iter().any(|p| p.id == self.default_plan) {
            return Err(format!(
                "MTDESK_DEFAULT_PLAN={:?} is not a plan (plans: {ids}); see `mtdesk admin plan list`",
                self.default_plan
            ));
        }
        Ok(())
    }
}

/// Whether the account's own (paid) plan applies at `now`, given its subscription state.
pub fn subscription_applies(billing: &AccountBilling, now: i64) -> bool {
    billing.plan_id.is_some()
        && match billing.billing_status.as_str() {
            "active" | "trialing" => true,
            "past_due" => billing.grace_until.is_some_and(|g| now < g),
            _ => false,
        }
}

/// The id of the plan that applies, `None` meaning "the plan marked default".
pub fn effective_plan_id(
    policy: &PlanPolicy,
    billing: &AccountBilling,
    now: i64,
) -> Option<String> {
    if !policy.billing_enabled {
        return Some(policy.default_plan.clone());
    }
    if subscription_applies(billing, now) {
        return billing.plan_id.clone();
    }
    None
}

/// The plan that applies to the account at `now`. A paid plan that no longer exists falls back to the
/// default plan rather than failing every request.
pub async fn effective_plan(
    store: &Store,
    policy: &PlanPolicy,
    account: &AccountId,
    now: i64,
) -> Result<Plan, StorageError> {
    let id = if policy.billing_enabled {
        let billing = store.find_account_billing(account).await?;
        effective_plan_id(policy, &billing, now)
    } else {
        Some(policy.default_plan.clone())
    };
    match id {
        Some(id) => match store.find_plan(&id).await {
            Err(StorageError::NotFound) if policy.billing_enabled => {
                store.find_default_plan().await
            }
            other => other,
        },
        None => store.find_default_plan().await,
    }
}

/// Why a plan given by the operator is refused; the message names the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PlanInputError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> PlanInputError {
    PlanInputError {
        field,
        message: message.into(),
    }
}

/// Checks a plan before it is stored: a slug id, a name, limits of -1 (unlimited) or more, a price of 0 or
/// more in a three-letter currency, a price id without spaces.
pub fn validate(p: &NewPlan) -> Result<(), PlanInputError> {
    if p.id.is_empty()
        || p.id.len() > 40
        || !p
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(bad(
            "id",
            format!(
                "{:?} must be 1 to 40 lowercase letters, digits, - or _ (e.g. `team`)",
                p.id
            ),
        ));
    }
    let name = p.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(bad("name", "must be 1 to 100 characters"));
    }
    if let Some(price) = &p.stripe_price_id
        && (price.is_empty() || price.len() > 200 || price.chars().any(char::is_whitespace))
    {
        return Err(bad(
            "price-id",
            format!("{price:?} is not a Stripe Price id (e.g. price_1Nx…)"),
        ));
    }
    if p.price_cents < 0 {
        return Err(bad("price-cents", "must be 0 or more"));
    }
    if p.currency.len() != 3 || !p.currency.chars().all(|c| c.is_ascii_lowercase()) {
        return Err(bad(
            "currency",
            format!(
                "{:?} must be a three-letter ISO code in lowercase, e.g. usd",
                p.currency
            ),
        ));
    }
    for (field, v) in [
        ("chatbots", p.max_chatbots),
        ("messages", p.max_messages_month),
        ("storage", p.max_storage_bytes),
        ("channels", p.max_channels),
    ] {
        if v < -1 {
            return Err(bad(
                field,
                "must be -1 (unlimited) or a number of 0 or more",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn billing(plan: Option<&str>, status: &str, grace: Option<i64>) -> AccountBilling {
        AccountBilling {
            plan_id: plan.map(str::to_string),
            billing_status: status.to_string(),
            grace_until: grace,
        }
    }

    fn plan() -> NewPlan {
        NewPlan {
            id: "team".into(),
            name: "Team".into(),
            stripe_price_id: Some("price_team".into()),
            price_cents: 4900,
            currency: "eur".into(),
            max_chatbots: 5,
            max_messages_month: -1,
            max_storage_bytes: 1_000_000,
            max_channels: 0,
            is_default: false,
            position: 4,
        }
    }

    #[test]
    fn billing_off_gives_everyone_the_configured_plan() {
        let policy = PlanPolicy {
            billing_enabled: false,
            default_plan: "free".into(),
        };
        for b in [
            billing(Some("pro"), "active", None),
            billing(None, "none", None),
        ] {
            assert_eq!(effective_plan_id(&policy, &b, 0), Some("free".into()));
        }
        assert_eq!(policy.fallback_plan(), Some("free"));
    }

    #[test]
    fn billing_on_follows_the_subscription_and_its_grace_period() {
        let policy = PlanPolicy {
            billing_enabled: true,
            default_plan: "unlimited".into(),
        };
        let cases = [
            (billing(Some("pro"), "active", None), 0, Some("pro")),
            (billing(Some("pro"), "trialing", None), 0, Some("pro")),
            (billing(Some("pro"), "past_due", Some(100)), 99, Some("pro")),
            (billing(Some("pro"), "past_due", Some(100)), 100, None),
            (billing(Some("pro"), "past_due", None), 0, None),
            (billing(Some("pro"), "unpaid", None), 0, None),
            (billing(Some("pro"), "canceled", None), 0, None),
            (billing(None, "active", None), 0, None),
            (billing(None, "none", None), 0, None),
        ];
        for (b, now, want) in cases {
            assert_eq!(
                effective_plan_id(&policy, &b, now),
                want.map(str::to_string),
                "{b:?} at {now}"
            );
        }
        assert_eq!(policy.fallback_plan(), None);
    }

    #[test]
    fn plan_input_is_validated_field_by_field() {
        assert_eq!(validate(&plan()), Ok(()));
        type Edit = Box<dyn Fn(&mut NewPlan)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("id", Box::new(|p| p.id = "Team!".into())),
            ("id", Box::new(|p| p.id = String::new())),
            ("name", Box::new(|p| p.name = "  ".into())),
            (
                "price-id",
                Box::new(|p| p.stripe_price_id = Some("price x".into())),
            ),
            ("price-cents", Box::new(|p| p.price_cents = -1)),
            ("currency", Box::new(|p| p.currency = "EURO".into())),
            ("chatbots", Box::new(|p| p.max_chatbots = -2)),
            ("messages", Box::new(|p| p.max_messages_month = -5)),
            ("storage", Box::new(|p| p.max_storage_bytes = -2)),
            ("channels", Box::new(|p| p.max_channels = -3)),
        ];
        for (field, edit) in cases {
            let mut p = plan();
            edit(&mut p);
            assert_eq!(validate(&p).map_err(|e| e.field), Err(field));
        }
    }
}
