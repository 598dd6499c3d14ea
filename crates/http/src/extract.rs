//! Extractors whose rejections are `ApiError`s, so a bad body gets the same JSON error shape as
//! everything else.

use crate::error::ApiError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// `Json<T>` with our error mapping: 400 for malformed JSON, 415 for a wrong Content-Type, 413 for a body
/// over the limit, 422 for a body that does not fit the schema.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => ApiError::Schema(clean(&e.body_text())),
        JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(clean(&e.body_text())),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("the request body is larger than the server's limit".into())
        }
        other => ApiError::BadRequest(clean(&other.body_text())),
    }
}

/// axum's messages start with "Failed to deserialize the JSON body into the target type: "; keep the part
/// that says what is wrong.
fn clean(s: &str) -> String {
    s.rsplit_once("target type: ")
        .map(|(_, m)| m)
        .unwrap_or(s)
        .to_string()
}

/// Parses an id from the path. Anything malformed is simply "not found", like an id of another account.
pub fn path_id<T>(raw: &str, parse: fn(&str) -> Option<T>) -> Result<T, ApiError> {
    parse(raw).ok_or(ApiError::NotFound)
}
