//! The REST API: users, organisations and teams, cached with `#[cached]` and
//! invalidated with `#[invalidates]` — no hand-written cache calls.
//!
//! | route | cache |
//! | --- | --- |
//! | `GET /users/{id}` | key `user:<id>`, tagged `org:<org_id>` |
//! | `PUT /users/{id}` | removes `user:<id>`, invalidates `org:<org_id>`, bumps `team:<team_id>` |
//! | `GET /orgs/{id}/users?page=&limit=` | key per page, tagged `org:<org_id>` |
//! | `GET /orgs/{id}/directory?page=` | the whole HTML page, by the page cache, tagged `org:<id>` |
//! | `GET /teams/{id}/members` | versioned namespace `team:<team_id>` |
//! | `GET /metrics` | Prometheus text of the cache counters |

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cache_runtime::http::{CachedJson, PageCache};
use cache_runtime::{Cache, cached, capture, invalidates};
use serde::Deserialize;

use crate::db::{Db, Home, Member, User};

/// What handlers share.
pub struct App {
    /// The database.
    pub db: Db,
    /// The cache every route uses.
    pub cache: Cache,
}

/// An error answered as JSON: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 404: no such resource.
    NotFound(String),
    /// 500: the database failed.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, message),
            Self::Internal(message) => (StatusCode::INTERNAL_SERVER_ERROR, message),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(error: crate::db::DbError) -> Self {
        Self::Internal(error.to_string())
    }
}

/// The organisation and team of a user: what an update must invalidate.
///
/// # Errors
/// [`ApiError::NotFound`] for an unknown user.
#[cached(key = "user-home:<id>", ttl = 3600, jitter = 300, cache = cache, skip = [cache, db])]
pub async fn user_home(cache: &Cache, db: &Db, id: u64) -> Result<Home, ApiError> {
    let user = db.user(id).await?.ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
    Ok(Home { org_id: user.org_id, team_id: user.team_id })
}

/// One user, tagged by organisation.
///
/// # Errors
/// [`ApiError::NotFound`] for an unknown user.
#[cached(key = "user:<id>", ttl = 300, jitter = 30, tags = ["org:<org_id>"], cache = cache, skip = [cache, db])]
pub async fn get_user(cache: &Cache, db: &Db, id: u64, org_id: u64) -> Result<User, ApiError> {
    db.user(id).await?.ok_or_else(|| ApiError::NotFound(format!("no user {id}")))
}

/// A page of an organisation's users.
///
/// # Errors
/// When the database fails.
#[cached(key = "org:<org_id>:users:<page>:<limit>", ttl = 120, jitter = 15, tags = ["org:<org_id>"], cache = cache, skip = [cache, db])]
pub async fn org_users(
    cache: &Cache,
    db: &Db,
    org_id: u64,
    page: u32,
    limit: u32,
) -> Result<Vec<User>, ApiError> {
    Ok(db.org_users(org_id, page, limit).await?)
}

/// A team's members, in the team's versioned namespace.
///
/// # Errors
/// [`ApiError::NotFound`] for a team without members.
#[cached(key = "team:<team_id>:members", version = "team:<team_id>", ttl = 600, cache = cache, skip = [cache, db])]
pub async fn team_members(cache: &Cache, db: &Db, team_id: u64) -> Result<Vec<Member>, ApiError> {
    let members = db.team_members(team_id).await?;
    if members.is_empty() {
        return Err(ApiError::NotFound(format!("no team {team_id}")));
    }
    Ok(members)
}

/// What `PUT /users/{id}` takes.
#[derive(Debug, Clone, Deserialize)]
pub struct UserInput {
    /// New display name.
    pub name: String,
    /// New e-mail address.
    pub email: String,
}

/// Updates a user; on success its entry, its organisation's tag and its team's version go.
///
/// # Errors
/// [`ApiError::NotFound`] for an unknown user.
#[invalidates(keys = ["user:<id>"], tags = ["org:<org_id>"], versions = ["team:<team_id>"], cache = cache, skip = [cache, db, input])]
pub async fn update_user(
    cache: &Cache,
    db: &Db,
    id: u64,
    org_id: u64,
    team_id: u64,
    input: UserInput,
) -> Result<User, ApiError> {
    db.update_user(id, input.name, input.email)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))
}

fn parse_id(text: &str, what: &str) -> Result<u64, ApiError> {
    match text.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::BadRequest(format!("{what} must be a positive integer, not {text:?}"))),
    }
}

async fn show_user(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<CachedJson<User>, ApiError> {
    let id = parse_id(&id, "user id")?;
    let home = user_home(&app.cache, &app.db, id).await?;
    let (user, entry) = capture(get_user(&app.cache, &app.db, id, home.org_id)).await;
    Ok(CachedJson::new(user?, entry, &headers))
}

async fn change_user(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    input: Result<Json<UserInput>, JsonRejection>,
) -> Result<Json<User>, ApiError> {
    let id = parse_id(&id, "user id")?;
    let Json(input) = input.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    if input.name.trim().is_empty() || !input.email.contains('@') {
        return Err(ApiError::BadRequest("name must not be empty and email must contain '@'".into()));
    }
    let home = user_home(&app.cache, &app.db, id).await?;
    Ok(Json(update_user(&app.cache, &app.db, id, home.org_id, home.team_id, input).await?))
}

/// `?page=&limit=` as given, checked by hand for JSON errors.
#[derive(Debug, Deserialize)]
struct Paging {
    page: Option<String>,
    limit: Option<String>,
}

async fn list_org_users(
    State(app): State<Arc<App>>,
    Path(org): Path<String>,
    paging: Result<Query<Paging>, QueryRejection>,
    headers: HeaderMap,
) -> Result<CachedJson<Vec<User>>, ApiError> {
    let org = parse_id(&org, "organisation id")?;
    let Query(paging) = paging.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let page =
        match paging.page.as_deref() {
            None => 1,
            Some(text) => text.parse::<u32>().ok().filter(|p| *p >= 1).ok_or_else(|| {
                ApiError::BadRequest(format!("page must be an integer from 1, not {text:?}"))
            })?,
        };
    let limit = match paging.limit.as_deref() {
        None => 20,
        Some(text) => text.parse::<u32>().ok().filter(|l| (1..=100).contains(l)).ok_or_else(|| {
            ApiError::BadRequest(format!("limit must be an integer from 1 to 100, not {text:?}"))
        })?,
    };
    let (users, entry) = capture(org_users(&app.cache, &app.db, org, page, limit)).await;
    Ok(CachedJson::new(users?, entry, &headers))
}

/// An organisation's users as an HTML page, rendered from the database on
/// every call: the page cache in front of it is the only cache.
async fn org_directory(
    State(app): State<Arc<App>>,
    Path(org): Path<String>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Response, ApiError> {
    let org = parse_id(&org, "organisation id")?;
    let Query(paging) = paging.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let page =
        match paging.page.as_deref() {
            None => 1,
            Some(text) => text.parse::<u32>().ok().filter(|p| *p >= 1).ok_or_else(|| {
                ApiError::BadRequest(format!("page must be an integer from 1, not {text:?}"))
            })?,
        };
    let users = app.db.org_users(org, page, 20).await?;
    let mut html = format!(
        "<!doctype html>\n<title>Organisation {org}</title>\n<h1>Organisation {org}, page {page}</h1>\n<ul>\n"
    );
    for user in &users {
        let _ = writeln!(html, "<li>{} &lt;{}&gt;</li>", escape_html(&user.name), escape_html(&user.email));
    }
    html.push_str("</ul>\n");
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page cache of `GET /orgs/{id}/directory`: tagged `org:<id>`, so
/// [`update_user`]'s `tags = ["org:<org_id>"]` drops the pages of the
/// user's organisation, as it drops [`org_users`]' entries.
///
/// # Errors
/// Never for this fixed policy (a test builds it).
pub fn directory_pages(cache: &Cache) -> Result<PageCache, cache_runtime::ConfigError> {
    PageCache::builder(Duration::from_secs(120))
        .jitter(Duration::from_secs(15))
        .name("org_directory")
        .cache(cache.clone())
        .route("/orgs/{id}/directory")
        .tag("org:<id>")
        .build()
}

async fn list_team_members(
    State(app): State<Arc<App>>,
    Path(team): Path<String>,
    headers: HeaderMap,
) -> Result<CachedJson<Vec<Member>>, ApiError> {
    let team = parse_id(&team, "team id")?;
    let (members, entry) = capture(team_members(&app.cache, &app.db, team)).await;
    Ok(CachedJson::new(members?, entry, &headers))
}

async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::observe::render())
}

/// The routes.
///
/// # Errors
/// When a page cache policy is invalid (never for the fixed ones here).
pub fn router(app: Arc<App>) -> Result<Router, cache_runtime::ConfigError> {
    let directory = directory_pages(&app.cache)?;
    crate::observe::recorder();
    crate::observe::count_keys_every(&app.cache, Duration::from_secs(10));
    let measure = axum::middleware::from_fn_with_state(app.db.clone(), crate::observe::measure);
    Ok(Router::new()
        .route("/users/{id}", get(show_user).put(change_user))
        .route("/orgs/{id}/users", get(list_org_users))
        .route("/orgs/{id}/directory", get(org_directory).layer(directory))
        .route("/teams/{id}/members", get(list_team_members))
        .route("/metrics", get(metrics))
        .route_layer(measure)
        .with_state(app))
}
