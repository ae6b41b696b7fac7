//! The endpoint the showcase measures, modelled on the seed articles' user
//! profile endpoint that "made three database queries": the user's row, then
//! (concurrently) the user's team and the first page of the organisation.
//!
//! One cached entry per profile, keyed by the user id alone: the team and the
//! organisation come from the loaded row, so a request misses at most once
//! and never needs a second cached lookup to learn its dependencies. A write
//! drops (or replaces) the written user's profile by key. Tagging profiles
//! with the team learned from the row (`cache_runtime::add_tag`) would also
//! drop the team-mates' profiles, which list the written user; the showcase
//! measures the user's own row and leaves that out (see BENCHMARKS.md).

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use cache_runtime::http::PageCache;
use cache_runtime::{Cache, cache_put, cached, invalidates};
use serde::{Deserialize, Serialize};
use tower_service::Service as _;

use crate::api::ApiError;
use crate::db::{Db, Member, User};

/// What `GET /profiles/{id}` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The user's row; its `version` is what staleness is measured on.
    pub user: User,
    /// The user's team.
    pub team: Vec<Member>,
    /// The first users of the user's organisation.
    pub colleagues: Vec<User>,
}

/// Loads a profile with three queries: the row, then its team and its
/// organisation at once.
///
/// # Errors
/// [`ApiError::NotFound`] for an unknown user.
pub async fn load_profile(db: &Db, id: u64) -> Result<Profile, ApiError> {
    let user = db.user(id).await?.ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
    profile_of(db, user).await
}

/// The profile of a loaded `user`: its team and its organisation, at once.
async fn profile_of(db: &Db, user: User) -> Result<Profile, ApiError> {
    let (team, colleagues) = tokio::join!(db.team_members(user.team_id), db.org_users(user.org_id, 1, 5));
    Ok(Profile { user, team: team?, colleagues: colleagues? })
}

/// A profile, cached for 300 s.
#[cached(key = "profile:<id>", ttl = 300, jitter = 30, cache = cache, skip = [cache, db])]
pub async fn profile(cache: &Cache, db: &Db, id: u64) -> Result<Profile, ApiError> {
    load_profile(db, id).await
}

/// A profile in the user's versioned namespace: a write bumps the version.
#[cached(key = "vprofile:<id>", version = "profile:<id>", ttl = 300, jitter = 30, cache = cache, skip = [cache, db])]
pub async fn profile_versioned(cache: &Cache, db: &Db, id: u64) -> Result<Profile, ApiError> {
    load_profile(db, id).await
}

/// A profile fresh for 5 s, then served stale for up to 300 s more while one
/// refresh runs in the background; the body owns its parameters, as a
/// background refresh outlives the caller.
#[cached(key = "swr-profile:<id>", ttl = 5, stale = 300, cache = cache, skip = [cache, db])]
pub async fn profile_swr(cache: Cache, db: Db, id: u64) -> Result<Profile, ApiError> {
    load_profile(&db, id).await
}

/// A profile that writes store rather than drop (write-through), so a read
/// after a write is a hit.
#[cached(key = "wt-profile:<id>", ttl = 300, jitter = 30, cache = cache, skip = [cache, db])]
pub async fn profile_written_through(cache: &Cache, db: &Db, id: u64) -> Result<Profile, ApiError> {
    load_profile(db, id).await
}

/// A changed name and e-mail address, numbered by `round`.
fn renamed(id: u64, round: u64) -> (String, String) {
    (format!("User {id} rev {round}"), format!("user{id}.{round}@example.com"))
}

async fn store_update(db: &Db, id: u64, round: u64) -> Result<User, ApiError> {
    let (name, email) = renamed(id, round);
    db.update_user(id, name, email).await?.ok_or_else(|| ApiError::NotFound(format!("no user {id}")))
}

/// An update that leaves the caches alone: entries expire with their TTL.
///
/// # Errors
/// [`ApiError::NotFound`] for an unknown user.
pub async fn update_only(db: &Db, id: u64, round: u64) -> Result<User, ApiError> {
    store_update(db, id, round).await
}

/// An update that drops the user's profile from `cache`.
///
/// # Errors
/// [`ApiError::NotFound`] for an unknown user.
#[invalidates(keys = ["profile:<id>"], cache = cache, skip = [cache, db, round])]
pub async fn update_profile(cache: &Cache, db: &Db, id: u64, round: u64) -> Result<User, ApiError> {
    store_update(db, id, round).await
}

/// An update that bumps the user's namespace version.
///
/// # Errors
/// [`ApiError::NotFound`] for an unknown user.
#[invalidates(versions = ["profile:<id>"], cache = cache, skip = [cache, db, round])]
pub async fn update_profile_versioned(cache: &Cache, db: &Db, id: u64, round: u64) -> Result<User, ApiError> {
    store_update(db, id, round).await
}

/// An update that drops the stale-while-revalidate profile.
///
/// # Errors
/// [`ApiError::NotFound`] for an unknown user.
#[invalidates(keys = ["swr-profile:<id>"], cache = cache, skip = [cache, db, round])]
pub async fn update_profile_swr(cache: &Cache, db: &Db, id: u64, round: u64) -> Result<User, ApiError> {
    store_update(db, id, round).await
}

/// An update that stores the user's new profile into its entry
/// (write-through): the updated row, then its team and organisation.
///
/// # Errors
/// [`ApiError::NotFound`] for an unknown user.
#[cache_put(profile_written_through(id), cache = cache)]
pub async fn update_profile_through(
    cache: &Cache,
    db: &Db,
    id: u64,
    round: u64,
) -> Result<Profile, ApiError> {
    let user = store_update(db, id, round).await?;
    profile_of(db, user).await
}

/// An update that drops the user's profile pages (tag `profile:<id>`).
///
/// # Errors
/// [`ApiError::NotFound`] for an unknown user.
#[invalidates(tags = ["profile:<id>"], cache = cache, skip = [cache, db, round])]
pub async fn update_profile_page(cache: &Cache, db: &Db, id: u64, round: u64) -> Result<User, ApiError> {
    store_update(db, id, round).await
}

/// `GET /profiles/{id}` as JSON, loaded on every call: the page cache in
/// front of it is the only cache.
async fn profile_json(State(db): State<Db>, Path(id): Path<u64>) -> Result<axum::Json<Profile>, ApiError> {
    Ok(axum::Json(load_profile(&db, id).await?))
}

/// The profile pages, each tagged `profile:<id>`, over `cache`.
///
/// # Errors
/// Never for this fixed policy.
pub fn profile_pages(cache: &Cache, db: &Db) -> Result<Router, cache_runtime::ConfigError> {
    let pages = PageCache::builder(Duration::from_secs(300))
        .jitter(Duration::from_secs(30))
        .name("showcase::profile_page")
        .cache(cache.clone())
        .route("/profiles/{id}")
        .tag("profile:<id>")
        .build()?;
    Ok(Router::new().route("/profiles/{id}", get(profile_json).layer(pages)).with_state(db.clone()))
}

/// One read through the page cache, in process: the request goes through the
/// router and the layer, and the JSON answer is decoded.
///
/// # Errors
/// When the page cannot be rendered or decoded.
pub async fn read_page(pages: &Router, id: u64) -> Result<Profile, ApiError> {
    let request = axum::http::Request::get(format!("/profiles/{id}"))
        .header("host", "showcase")
        .body(axum::body::Body::empty())
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let Ok(response) = pages.clone().call(request).await;
    if !response.status().is_success() {
        return Err(ApiError::Internal(format!("status {}", response.status())));
    }
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    serde_json::from_slice(&body).map_err(|error| ApiError::Internal(error.to_string()))
}

/// Names (suffixes of `module::function`) of the lookups a read makes, for
/// the hit rate.
pub const READ_FUNCTIONS: [&str; 5] =
    ["::profile", "::profile_versioned", "::profile_swr", "::profile_page", "::profile_written_through"];
