//! A tour of `#[cached]` and `#[invalidates]` on the in-memory cache: reads of
//! users and team rosters from a small in-process table with a simulated query
//! cost, writes that invalidate a key, a tag and a version, and the counters
//! that show what happened.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cache_runtime::{SiteStats, cached, invalidates};
use serde::{Deserialize, Serialize};

/// A row of the `users` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct User {
    id: u64,
    org_id: u64,
    team_id: u64,
    name: String,
}

/// The tables, with a fixed cost per query standing in for a database round trip.
struct Db {
    users: Mutex<HashMap<u64, User>>,
    query_cost: Duration,
}

impl Db {
    fn seeded(users: u64, query_cost: Duration) -> Self {
        let rows = (1..=users)
            .map(|id| (id, User { id, org_id: id % 10, team_id: id % 25, name: format!("user {id}") }))
            .collect();
        Self { users: Mutex::new(rows), query_cost }
    }

    async fn query<T>(&self, read: impl FnOnce(&HashMap<u64, User>) -> T) -> T {
        tokio::time::sleep(self.query_cost).await;
        let users = self.users.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        read(&users)
    }
}

#[cached(key = "user:<id>", ttl = 300, jitter = 30, tags = ["org:<org_id>"], skip = [db])]
async fn get_user(db: &Db, id: u64, org_id: u64) -> Option<User> {
    db.query(|users| users.get(&id).filter(|user| user.org_id == org_id).cloned()).await
}

#[cached(key = "team:<team_id>:members", version = "team:<team_id>", ttl = 600, skip = [db])]
async fn team_members(db: &Db, team_id: u64) -> Vec<u64> {
    db.query(|users| {
        let mut ids: Vec<u64> = users.values().filter(|u| u.team_id == team_id).map(|u| u.id).collect();
        ids.sort_unstable();
        ids
    })
    .await
}

#[invalidates(keys = ["user:<id>"], tags = ["org:<org_id>"], versions = ["team:<team_id>"], skip = [db, name])]
async fn rename_user(db: &Db, id: u64, org_id: u64, team_id: u64, name: String) -> Result<(), String> {
    let mut users = db.users.lock().map_err(|_| "table poisoned".to_owned())?;
    let user = users.get_mut(&id).ok_or_else(|| format!("no user {id}"))?;
    user.name = name;
    Ok(())
}

fn counters(function: &str) -> SiteStats {
    cache_runtime::stats().into_iter().find(|s| s.function.ends_with(function)).unwrap_or_default()
}

fn report(label: &str, started: Instant) {
    let (users, teams) = (counters("::get_user"), counters("::team_members"));
    println!(
        "{label:<44} {:>6.1} ms   get_user {:>4} hits {:>4} misses   team_members {:>3} hits {:>3} misses",
        started.elapsed().as_secs_f64() * 1e3,
        users.hits,
        users.misses,
        teams.hits,
        teams.misses
    );
}

#[tokio::main]
async fn main() {
    let db = Db::seeded(1_000, Duration::from_millis(2));
    println!("1,000 users, each query costs {:?}; the in-memory cache is the default\n", db.query_cost);

    let started = Instant::now();
    for id in 1..=200 {
        get_user(&db, id, id % 10).await;
    }
    report("200 reads, cold cache", started);

    let started = Instant::now();
    for id in 1..=200 {
        get_user(&db, id, id % 10).await;
    }
    report("the same 200 reads, warm cache", started);

    let started = Instant::now();
    for team in 0..25 {
        team_members(&db, team).await;
        team_members(&db, team).await;
    }
    report("25 team rosters, each read twice", started);

    let started = Instant::now();
    rename_user(&db, 7, 7, 7, "Ada".into()).await.unwrap_or_else(|e| eprintln!("{e}"));
    report("rename user 7: key, tag org:7, version team:7", started);

    let started = Instant::now();
    for id in 1..=200 {
        get_user(&db, id, id % 10).await;
    }
    report("200 reads again: org 7's 20 users reload", started);
    let renamed = get_user(&db, 7, 7).await.map(|user| user.name).unwrap_or_default();
    println!("{:<44} {renamed}", "user 7 is now");

    let started = Instant::now();
    for team in 0..25 {
        team_members(&db, team).await;
    }
    report("25 rosters again: team 7 reloads", started);

    let users = counters("::get_user");
    println!("\nget_user hit ratio {:.0} %, {} loads", users.hit_ratio() * 100.0, users.loads);
}
