//! The request body extractor: `Content-Type: application/json`, within the body limit, and a
//! JSON object at the top. Every refusal is an [`ApiError`] (axum's own extractors answer in
//! plain text).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::header;
use proto::error::Error;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;

/// A request body that is a JSON object — serde would read `[]` or `["a", "b"]` as a struct,
/// filling it in order or with defaults. As `Option<Body<T>>`, an empty body is `None`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match <Self as OptionalFromRequest<S>>::from_request(request, state).await? {
            Some(body) => Ok(body),
            None => Err(Error::invalid("a JSON object is required as the request body").into()),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().map(json_media_type).unwrap_or(false));
        let bytes = Bytes::from_request(request, state).await?;
        if bytes.is_empty() && content_type != Some(false) {
            return Ok(None);
        }
        if content_type != Some(true) {
            return Err(ApiError::unsupported_media_type(
                "expected a request with Content-Type: application/json",
            ));
        }
        let first = bytes.iter().find(|b| !b" \t\r\n".contains(b));
        if first != Some(&b'{') {
            // A syntax error is a 400; well-formed JSON of the wrong shape a 422.
            return Err(match serde_json::from_slice::<Value>(&bytes) {
                Err(error) => Error::invalid(format!("the body is not valid JSON: {error}")).into(),
                Ok(_) => ApiError::unprocessable("the body must be a JSON object"),
            });
        }
        let Json(value) = Json::<T>::from_bytes(&bytes)?;
        Ok(Some(Body(value)))
    }
}

/// `application/json` or `application/<anything>+json`, with or without parameters.
fn json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::json_media_type;

    #[test]
    fn json_and_json_suffixed_media_types_are_json() {
        assert!(json_media_type("application/json"));
        assert!(json_media_type("Application/JSON; charset=utf-8"));
        assert!(json_media_type("application/merge-patch+json"));
        assert!(!json_media_type("text/plain"));
        assert!(!json_media_type("application/xml"));
    }
}
