//! My Account → "Download my data": a button that starts an export, and the recent exports with their
//! status and download link. Works without JavaScript: the button posts a form and comes back to the card
//! with a fixed notice; the page shows the new status when reloaded. The download link is the API's
//! download route, which accepts the dashboard session (no token in the URL).

use crate::web::{self, CsrfForm, CsrfOnly, User, see_other};
use axum::extract::State;
use axum::response::Response;
use mtdesk_domain::AccountId;
use mtdesk_http::{ApiError, AppState};
use mtdesk_privacy::export::{ExportError, Exporter};
use mtdesk_storage::export::{Export, ExportStatus};

/// One export as the card lists it.
pub struct ExportRowView {
    pub id: String,
    pub status: &'static str,
    pub created: String,
    pub size: String,
    pub expires: String,
    pub error: Option<String>,
    /// While the link is valid.
    pub download: Option<String>,
}

/// A fixed message after the button was pressed (never text from the request).
pub struct ExportNotice {
    pub text: &'static str,
    pub error: bool,
}

/// Everything the card shows.
pub struct ExportsCard {
    pub rows: Vec<ExportRowView>,
    /// An export is queued or being built: say the page must be reloaded.
    pub in_progress: bool,
    pub notice: Option<ExportNotice>,
}

/// "1.4 MB".
fn size(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn row(e: Export, now: i64) -> ExportRowView {
    let downloadable = Exporter::downloadable(&e, now);
    let status = match e.status {
        ExportStatus::Pending => "Queued",
        ExportStatus::Running => "Preparing…",
        ExportStatus::Ready if downloadable => "Ready",
        ExportStatus::Ready => "Expired",
        ExportStatus::Failed => "Failed",
    };
    ExportRowView {
        download: downloadable.then(|| format!("/api/v1/account/export/{}/download", e.id)),
        status,
        created: web::date_time(e.created_at),
        size: e.size_bytes.map(size).unwrap_or_else(|| "—".into()),
        expires: if downloadable {
            web::date_time(e.expires_at)
        } else {
            "—".into()
        },
        error: e.error,
        id: e.id,
    }
}

/// The card for `account` (without a notice).
pub async fn card(state: &AppState, account: &AccountId) -> Result<ExportsCard, ApiError> {
    let now = mtdesk_domain::now_ms();
    let rows: Vec<ExportRowView> = state
        .exporter
        .list(account)
        .await?
        .into_iter()
        .map(|e| row(e, now))
        .collect();
    Ok(ExportsCard {
        in_progress: rows
            .iter()
            .any(|r| matches!(r.status, "Queued" | "Preparing…")),
        rows,
        notice: None,
    })
}

/// The notice named by the query string after the button (`?export=requested`).
pub fn notice(query: Option<&str>) -> Option<ExportNotice> {
    let (text, error) = match web::query_value(query, "export")? {
        "requested" => (
            "We are preparing your data. Reload this page in a minute to download it.",
            false,
        ),
        "busy" => (
            "Your data is already being prepared. Reload this page in a minute to download it.",
            true,
        ),
        "limit" => (
            "You have requested 5 exports in the last 24 hours. Download one of them, or try again tomorrow.",
            true,
        ),
        _ => return None,
    };
    Some(ExportNotice { text, error })
}

/// `POST /account/export`: starts an export and goes back to the card.
pub async fn request(
    State(state): State<AppState>,
    user: User,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    match state.exporter.request(&user.account.id).await {
        Ok(_) => see_other("/account?export=requested#export"),
        Err(ExportError::InProgress) => see_other("/account?export=busy#export"),
        Err(ExportError::TooMany { .. }) => see_other("/account?export=limit#export"),
        Err(e) => web::api_error(user.chrome("account"), e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_words() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(1_400_000), "1.4 MB");
        assert_eq!(size(2_000_000_000), "2.0 GB");
    }
}
