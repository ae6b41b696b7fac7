//! The database: users, organisations and teams, in SQLite (embedded, the
//! default) or PostgreSQL (when a `DATABASE_URL` is given).
//!
//! Every user row carries a `version`, incremented by each update, so readers
//! can tell whether what they were served is current.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// Rows seeded on first run.
pub const SEED_USERS: u64 = 100_000;
/// Organisations the users are spread over.
pub const SEED_ORGS: u64 = 1_000;
/// Teams the users are spread over.
pub const SEED_TEAMS: u64 = 5_000;

/// A user as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Primary key.
    pub id: u64,
    /// Organisation.
    pub org_id: u64,
    /// Team.
    pub team_id: u64,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Incremented by every update.
    pub version: u64,
}

/// Where a user belongs: what an update of the user must invalidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Home {
    /// Organisation.
    pub org_id: u64,
    /// Team.
    pub team_id: u64,
}

/// A member of a team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// User id.
    pub id: u64,
    /// Display name.
    pub name: String,
}

/// A database failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbError(pub String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "database error: {}", self.0)
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(error: rusqlite::Error) -> Self {
        Self(error.to_string())
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self(error.to_string())
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    /// Added to every query, to model a database across a network.
    pub extra_latency: std::time::Duration,
    /// Up to this much more, drawn uniformly per query (a database whose
    /// queries take 50–150 ms: 50 ms here and 100 ms of spread).
    pub extra_latency_spread: std::time::Duration,
    queries: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone)]
enum Backend {
    /// A few connections, so reads run in parallel (WAL mode).
    Sqlite(Arc<Vec<Mutex<rusqlite::Connection>>>),
    Postgres(Arc<tokio_postgres::Client>),
}

const SQLITE_SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL,
    team_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS users_org ON users (org_id, id);
CREATE INDEX IF NOT EXISTS users_team ON users (team_id, id);
";

const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id BIGINT PRIMARY KEY,
    org_id BIGINT NOT NULL,
    team_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS users_org ON users (org_id, id);
CREATE INDEX IF NOT EXISTS users_team ON users (team_id, id);
";

fn seed_user(id: u64) -> (u64, u64, String, String) {
    (id % SEED_ORGS + 1, id % SEED_TEAMS + 1, format!("User {id}"), format!("user{id}@example.com"))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Db {
    /// Opens (creating and seeding on first use) the SQLite database at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or written.
    pub fn sqlite(path: &Path) -> Result<Self, DbError> {
        let mut first = rusqlite::Connection::open(path)?;
        first.busy_timeout(std::time::Duration::from_secs(5))?;
        first.execute_batch(SQLITE_SCHEMA)?;
        let count: i64 = first.query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))?;
        if count == 0 {
            let tx = first.transaction()?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO users (id, org_id, team_id, name, email) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for id in 1..=SEED_USERS {
                    let (org, team, name, email) = seed_user(id);
                    insert.execute(rusqlite::params![to_i64(id), to_i64(org), to_i64(team), name, email])?;
                }
            }
            tx.commit()?;
        }
        let mut connections = vec![Mutex::new(first)];
        for _ in 1..4 {
            let connection = rusqlite::Connection::open(path)?;
            connection.busy_timeout(std::time::Duration::from_secs(5))?;
            connections.push(Mutex::new(connection));
        }
        Ok(Self::new(Backend::Sqlite(Arc::new(connections))))
    }

    /// Connects to PostgreSQL at `url` (creating and seeding the table on first use).
    ///
    /// # Errors
    /// When the server cannot be reached or written.
    pub async fn postgres(url: &str) -> Result<Self, DbError> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                eprintln!("PostgreSQL connection closed: {error}");
            }
        });
        client.batch_execute(POSTGRES_SCHEMA).await?;
        let count: i64 = client.query_one("SELECT COUNT(*) FROM users", &[]).await?.get(0);
        if count == 0 {
            client
                .execute(
                    "INSERT INTO users (id, org_id, team_id, name, email)
                     SELECT g, g % $2 + 1, g % $3 + 1, 'User ' || g, 'user' || g || '@example.com'
                     FROM generate_series(1, $1::BIGINT) AS g",
                    &[&to_i64(SEED_USERS), &to_i64(SEED_ORGS), &to_i64(SEED_TEAMS)],
                )
                .await?;
        }
        Ok(Self::new(Backend::Postgres(Arc::new(client))))
    }

    fn new(backend: Backend) -> Self {
        Self {
            backend,
            extra_latency: std::time::Duration::ZERO,
            extra_latency_spread: std::time::Duration::ZERO,
            queries: Arc::default(),
        }
    }

    /// Queries run so far.
    #[must_use]
    pub fn queries(&self) -> u64 {
        self.queries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Which database this is, for printing.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }

    async fn before_query(&self) {
        self.queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let added = self.extra_latency + self.extra_latency_spread.mul_f64(fastrand::f64());
        if !added.is_zero() {
            tokio::time::sleep(added).await;
        }
    }

    /// Runs `query` on a free SQLite connection, off the async threads.
    async fn run_sqlite<T: Send + 'static>(
        connections: &Arc<Vec<Mutex<rusqlite::Connection>>>,
        query: impl FnOnce(&mut rusqlite::Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let connections = Arc::clone(connections);
        tokio::task::spawn_blocking(move || {
            let index = connections.iter().position(|c| c.try_lock().is_ok()).unwrap_or(0);
            let mut connection = connections[index].lock().unwrap_or_else(PoisonError::into_inner);
            query(&mut connection)
        })
        .await
        .map_err(|error| DbError(error.to_string()))?
    }

    /// One user.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn user(&self, id: u64) -> Result<Option<User>, DbError> {
        self.before_query().await;
        const SQL: &str = "SELECT id, org_id, team_id, name, email, version FROM users WHERE id = ";
        match &self.backend {
            Backend::Sqlite(connections) => {
                Self::run_sqlite(connections, move |c| {
                    let mut statement = c.prepare_cached(&format!("{SQL}?1"))?;
                    let mut rows = statement.query_map([to_i64(id)], sqlite_user)?;
                    Ok(rows.next().transpose()?)
                })
                .await
            }
            Backend::Postgres(client) => {
                let row = client.query_opt(&format!("{SQL}$1"), &[&to_i64(id)]).await?;
                Ok(row.map(|row| postgres_user(&row)))
            }
        }
    }

    /// A page of an organisation's users, by id.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn org_users(&self, org_id: u64, page: u32, limit: u32) -> Result<Vec<User>, DbError> {
        self.before_query().await;
        let offset = i64::from(page.saturating_sub(1)) * i64::from(limit);
        const SQL: &str = "SELECT id, org_id, team_id, name, email, version FROM users WHERE org_id = ";
        match &self.backend {
            Backend::Sqlite(connections) => {
                Self::run_sqlite(connections, move |c| {
                    let mut statement =
                        c.prepare_cached(&format!("{SQL}?1 ORDER BY id LIMIT ?2 OFFSET ?3"))?;
                    let rows = statement.query_map(
                        rusqlite::params![to_i64(org_id), i64::from(limit), offset],
                        sqlite_user,
                    )?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await
            }
            Backend::Postgres(client) => {
                let rows = client
                    .query(
                        &format!("{SQL}$1 ORDER BY id LIMIT $2 OFFSET $3"),
                        &[&to_i64(org_id), &i64::from(limit), &offset],
                    )
                    .await?;
                Ok(rows.iter().map(postgres_user).collect())
            }
        }
    }

    /// The members of a team, by id.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn team_members(&self, team_id: u64) -> Result<Vec<Member>, DbError> {
        self.before_query().await;
        match &self.backend {
            Backend::Sqlite(connections) => {
                Self::run_sqlite(connections, move |c| {
                    let mut statement =
                        c.prepare_cached("SELECT id, name FROM users WHERE team_id = ?1 ORDER BY id")?;
                    let rows = statement.query_map([to_i64(team_id)], |row| {
                        Ok(Member { id: to_u64(row.get(0)?), name: row.get(1)? })
                    })?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await
            }
            Backend::Postgres(client) => {
                let rows = client
                    .query("SELECT id, name FROM users WHERE team_id = $1 ORDER BY id", &[&to_i64(team_id)])
                    .await?;
                Ok(rows.iter().map(|row| Member { id: to_u64(row.get(0)), name: row.get(1) }).collect())
            }
        }
    }

    /// Updates a user's name and e-mail, bumping its version; `None` if there is no such user.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn update_user(&self, id: u64, name: String, email: String) -> Result<Option<User>, DbError> {
        self.before_query().await;
        const SQL: &str = "UPDATE users SET name = $2, email = $3, version = version + 1 WHERE id = $1
                           RETURNING id, org_id, team_id, name, email, version";
        match &self.backend {
            Backend::Sqlite(connections) => {
                Self::run_sqlite(connections, move |c| {
                    let sql = SQL.replace('$', "?");
                    let mut statement = c.prepare_cached(&sql)?;
                    let mut rows =
                        statement.query_map(rusqlite::params![to_i64(id), name, email], sqlite_user)?;
                    Ok(rows.next().transpose()?)
                })
                .await
            }
            Backend::Postgres(client) => {
                let row = client.query_opt(SQL, &[&to_i64(id), &name, &email]).await?;
                Ok(row.map(|row| postgres_user(&row)))
            }
        }
    }
}

fn sqlite_user(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: to_u64(row.get(0)?),
        org_id: to_u64(row.get(1)?),
        team_id: to_u64(row.get(2)?),
        name: row.get(3)?,
        email: row.get(4)?,
        version: to_u64(row.get(5)?),
    })
}

fn postgres_user(row: &tokio_postgres::Row) -> User {
    User {
        id: to_u64(row.get(0)),
        org_id: to_u64(row.get(1)),
        team_id: to_u64(row.get(2)),
        name: row.get(3),
        email: row.get(4),
        version: to_u64(row.get(5)),
    }
}
