//! Throwaway databases for tests, shared by every crate's test suite.
//!
//! ```no_run
//! # async fn example() {
//! use ferric_store::{testing, Store};
//!
//! // PostgreSQL: a fresh, empty database per test (None: skip the test).
//! if let Some(db) = testing::fresh_postgres().await {
//!     let store = Store::connect(db.url()).await.expect("connect");
//!     // ... the test ...
//!     store.close().await;
//!     db.cleanup().await;
//! }
//!
//! // SQLite: a fresh file in the temporary directory.
//! let db = testing::fresh_sqlite();
//! let store = Store::connect(db.url()).await.expect("connect");
//! store.close().await;
//! db.cleanup().await;
//! # }
//! ```
//!
//! The PostgreSQL server comes from `FERRIC_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); its user must be allowed to
//! create databases. If the server is unreachable, [`fresh_postgres`]
//! prints why and returns `None` — except when `CI=true`, where a missing
//! database is a failure and it panics.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::Connection;
use uuid::Uuid;

/// The environment variable naming the PostgreSQL server tests use.
pub const POSTGRES_URL_ENV: &str = "FERRIC_TEST_POSTGRES_URL";
/// The server used when [`POSTGRES_URL_ENV`] is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A database that exists for one test. Call [`TempDatabase::cleanup`] when
/// done (after closing every pool on it); nothing is removed on drop.
#[derive(Debug)]
pub struct TempDatabase {
    url: String,
    location: Location,
}

#[derive(Debug)]
enum Location {
    Postgres { server_url: String, name: String },
    Sqlite { path: PathBuf },
}

impl TempDatabase {
    /// The URL to pass to [`crate::Store::connect`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Removes the database (best effort: failures are printed, not raised).
    pub async fn cleanup(self) {
        match self.location {
            Location::Postgres { server_url, name } => {
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                if let Err(err) = run_on_server(&server_url, &sql).await {
                    eprintln!("could not drop test database {name}: {err}");
                }
            }
            Location::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    // A missing file (never created, or no WAL) is fine.
                    let _ = std::fs::remove_file(file);
                }
            }
        }
    }
}

/// A new, empty PostgreSQL database named `ferric_test_<random hex>`, or
/// `None` (with the reason printed) if the server cannot be used. Panics
/// instead of returning `None` when the environment has `CI=true`.
pub async fn fresh_postgres() -> Option<TempDatabase> {
    let server_url =
        std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let name = format!("ferric_test_{}", Uuid::new_v4().simple());
    match run_on_server(&server_url, &format!("CREATE DATABASE {name}")).await {
        Ok(()) => Some(TempDatabase {
            url: with_database(&server_url, &name),
            location: Location::Postgres { server_url, name },
        }),
        Err(err) => {
            let reason = format!("PostgreSQL ({POSTGRES_URL_ENV}) is not usable: {err}");
            if in_ci() {
                panic!("{reason} (CI=true: tests must not be skipped)");
            }
            eprintln!("skipping the PostgreSQL test: {reason}");
            None
        }
    }
}

/// A path for a new SQLite database file in the temporary directory (the
/// store creates it on connect).
pub fn fresh_sqlite() -> TempDatabase {
    let path = std::env::temp_dir().join(format!("ferric_test_{}.db", Uuid::new_v4().simple()));
    TempDatabase {
        url: format!("sqlite://{}", path.display()),
        location: Location::Sqlite { path },
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// Runs one statement on the server's database named by `server_url`.
async fn run_on_server(server_url: &str, sql: &str) -> Result<(), String> {
    let connect = sqlx::PgConnection::connect(server_url);
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(connected) => connected.map_err(|err| err.to_string())?,
        Err(_) => return Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    };
    let result = sqlx::query(sql).execute(&mut conn).await;
    // Closing is a courtesy; the statement's outcome is what matters.
    let _ = conn.close().await;
    result.map(drop).map_err(|err| err.to_string())
}

/// `server_url` with its database (the URL path) replaced by `name`.
fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server_url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{root}/{name}{query}")
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(with_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
