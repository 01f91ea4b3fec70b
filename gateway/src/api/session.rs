//! Sign-in: `POST /auth/login` with the token sets the session cookie, `POST /auth/logout`
//! clears it, `GET /auth/me` says whether the caller is signed in; [`require`] guards every
//! change (and the doctor and the tables, and reads with `GATEWAY_AUTH_READS=true`) with the token.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use proto::error::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use tracing::warn;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, AppState, Body, Reply};
use crate::auth::{Auth, COOKIE};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub authenticated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub authenticated: bool,
    /// Reads need the token too (`GATEWAY_AUTH_READS`).
    pub auth_reads: bool,
}

type WithCookie = ([(header::HeaderName, String); 1], Json<Session>);

/// Signs in with the token: the session cookie is set.
#[utoipa::path(
    post,
    operation_id = "login",
    path = "/auth/login",
    tag = "session",
    request_body = Login,
    responses(
        (status = 200, body = Session),
        (status = 401, description = "Not the gateway's token", body = ErrorBody),
    )
)]
pub async fn login(State(s): State<AppState>, Body(login): Body<Login>) -> Reply<WithCookie> {
    if !s.auth.token_matches(login.token.trim()) {
        return Err(Error::new(
            ErrorKind::Unauthenticated,
            "that token is not the gateway's",
        )
        .into());
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000",
        s.auth.session_value()
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(Session {
            authenticated: true,
        }),
    ))
}

#[utoipa::path(post, operation_id = "logout", path = "/auth/logout", tag = "session", responses((status = 200, body = Session)))]
pub async fn logout() -> WithCookie {
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (
        [(header::SET_COOKIE, cookie)],
        Json(Session {
            authenticated: false,
        }),
    )
}

#[utoipa::path(get, operation_id = "me", path = "/auth/me", tag = "session", responses((status = 200, body = Me)))]
pub async fn me(State(s): State<AppState>, headers: HeaderMap) -> Json<Me> {
    Json(Me {
        authenticated: s.auth.is_authenticated(&headers),
        auth_reads: s.auth.reads,
    })
}

/// Middleware: a 401 with a readable message for a request that needs the token and lacks it.
pub async fn require(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let mutating = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let open = matches!(
        request.uri().path(),
        "/health" | "/ready" | "/openapi.json" | "/auth/login" | "/auth/logout" | "/auth/me"
    );
    // The doctor and the tables read, but connect to a monitored database with its stored
    // credentials.
    let connects = request.uri().path().ends_with("/doctor")
        || (request.uri().path().starts_with("/databases/")
            && request.uri().path().ends_with("/tables"));
    if !open && (mutating || connects || auth.reads) && !auth.is_authenticated(request.headers()) {
        warn!(method = %request.method(), path = %request.uri().path(), "unauthenticated request refused");
        return ApiError::from(Error::new(
            ErrorKind::Unauthenticated,
            "authentication required: sign in, or send Authorization: Bearer <GATEWAY_TOKEN>",
        ))
        .into_response();
    }
    next.run(request).await
}
