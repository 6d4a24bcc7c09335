//! The backend plumbing: opening pools, bind values, and running one SQL
//! text on whichever backend the store uses.
//!
//! Every statement is written once with `$1, $2, ...` placeholders (SQLite
//! reads `$N` as "argument N", like PostgreSQL). [`on_conn!`] expands a body
//! once per backend, so the same generic sqlx code is type-checked against
//! each database separately.

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments, Database, Encode, FromRow, Postgres, Sqlite, Transaction, Type};

use crate::{Backend, Result, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per SQLite file: readers run in parallel under WAL; writers
/// queue on SQLite's lock (see the busy timeout). Each connection has its own
/// page cache and worker thread, so more than a few costs memory for nothing
/// on the small machines a lab runs on.
const SQLITE_POOL_SIZE: u32 = 4;
/// Page cache per SQLite connection, in KiB (SQLite's default is 2 MiB).
const SQLITE_CACHE_KIB: i64 = 1024;
const POSTGRES_POOL_SIZE: u32 = 16;
/// How long an SQLite writer waits for another writer's lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens the pool `url` names and brings its schema up to date.
pub(crate) async fn connect(url: &str) -> Result<Backend> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = PgPoolOptions::new()
            .max_connections(POSTGRES_POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(StoreError::Database)?;
        POSTGRES_MIGRATIONS.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Backend::Postgres(pool))
    } else if url.starts_with("sqlite:") {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Database)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"));
        let mut pool = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        if in_memory {
            // One connection that never closes: an in-memory database lives
            // as long as its last connection, and is private to it.
            pool = pool.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
        } else {
            options =
                options.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal);
            pool = pool.max_connections(SQLITE_POOL_SIZE);
        }
        let pool = pool.connect_with(options).await.map_err(StoreError::Database)?;
        SQLITE_MIGRATIONS.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Backend::Sqlite(pool))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// The few places where the two SQL dialects differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// One bind value. Each variant is bound with its Rust type, so both
/// backends see a properly typed parameter (NULL included).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Float(Option<f64>),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Text(Some(v)) => f.write_str(v),
            Value::Int(Some(v)) => write!(f, "{v}"),
            Value::Bool(Some(v)) => write!(f, "{v}"),
            Value::Float(Some(v)) => write!(f, "{v}"),
            _ => f.write_str("null"),
        }
    }
}

macro_rules! value_from {
    ($($ty:ty => $variant:ident),* $(,)?) => {$(
        impl From<$ty> for Value {
            fn from(value: $ty) -> Self {
                Value::$variant(Some(value.into()))
            }
        }
        impl From<Option<$ty>> for Value {
            fn from(value: Option<$ty>) -> Self {
                Value::$variant(value.map(Into::into))
            }
        }
    )*};
}

value_from!(String => Text, &str => Text, i64 => Int, bool => Bool, f64 => Float);

/// A statement: SQL text with `$N` placeholders and the values to bind.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>, values: Vec<Value>) -> Self {
        Self { text: text.into(), values }
    }
}

/// Binds `values` in order for database `DB`.
fn arguments<'q, DB: Database>(values: Vec<Value>) -> sqlx::Result<DB::Arguments<'q>>
where
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<bool>: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
{
    let mut args = DB::Arguments::<'q>::default();
    for value in values {
        match value {
            Value::Text(v) => args.add(v),
            Value::Int(v) => args.add(v),
            Value::Bool(v) => args.add(v),
            Value::Float(v) => args.add(v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// A row type either backend can decode.
pub(crate) trait Decodable:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Decodable for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A connection of either backend, plain or inside a transaction.
pub(crate) enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
    SqliteTx(Transaction<'static, Sqlite>),
    PostgresTx(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$c` bound to the backend's `&mut Connection` and `$db`
/// naming its database type.
macro_rules! on_conn {
    ($conn:expr, |$c:ident, $db:ident| $body:expr) => {
        match $conn {
            Conn::Sqlite(conn) => {
                type $db = Sqlite;
                let $c: &mut sqlx::SqliteConnection = &mut *conn;
                $body
            }
            Conn::SqliteTx(conn) => {
                type $db = Sqlite;
                let $c: &mut sqlx::SqliteConnection = &mut *conn;
                $body
            }
            Conn::Postgres(conn) => {
                type $db = Postgres;
                let $c: &mut sqlx::PgConnection = &mut *conn;
                $body
            }
            Conn::PostgresTx(conn) => {
                type $db = Postgres;
                let $c: &mut sqlx::PgConnection = &mut *conn;
                $body
            }
        }
    };
}

impl Conn {
    /// A pooled connection.
    pub(crate) async fn acquire(backend: &Backend) -> sqlx::Result<Conn> {
        Ok(match backend {
            Backend::Sqlite(pool) => Conn::Sqlite(pool.acquire().await?),
            Backend::Postgres(pool) => Conn::Postgres(pool.acquire().await?),
        })
    }

    /// A transaction. SQLite takes the write lock up front (`BEGIN
    /// IMMEDIATE`): a deferred transaction that upgrades from read to write
    /// fails at once with "database is locked" instead of waiting.
    pub(crate) async fn begin(backend: &Backend) -> sqlx::Result<Conn> {
        Ok(match backend {
            Backend::Sqlite(pool) => Conn::SqliteTx(pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres(pool) => Conn::PostgresTx(pool.begin().await?),
        })
    }

    /// Commits a transaction (a plain connection has nothing to commit).
    /// Dropping a transaction without committing rolls it back.
    pub(crate) async fn commit(self) -> sqlx::Result<()> {
        match self {
            Conn::SqliteTx(tx) => tx.commit().await,
            Conn::PostgresTx(tx) => tx.commit().await,
            Conn::Sqlite(_) | Conn::Postgres(_) => Ok(()),
        }
    }

    /// Runs a statement; returns the number of rows it affected.
    pub(crate) async fn execute(&mut self, sql: Sql) -> sqlx::Result<u64> {
        on_conn!(self, |c, Db| {
            let args = arguments::<Db>(sql.values)?;
            Ok(sqlx::query_with::<Db, _>(&sql.text, args).execute(c).await?.rows_affected())
        })
    }

    pub(crate) async fn fetch_all<T: Decodable>(&mut self, sql: Sql) -> sqlx::Result<Vec<T>> {
        on_conn!(self, |c, Db| {
            let args = arguments::<Db>(sql.values)?;
            sqlx::query_as_with::<Db, T, _>(&sql.text, args).fetch_all(c).await
        })
    }

    pub(crate) async fn fetch_one<T: Decodable>(&mut self, sql: Sql) -> sqlx::Result<T> {
        on_conn!(self, |c, Db| {
            let args = arguments::<Db>(sql.values)?;
            sqlx::query_as_with::<Db, T, _>(&sql.text, args).fetch_one(c).await
        })
    }

    pub(crate) async fn fetch_optional<T: Decodable>(
        &mut self,
        sql: Sql,
    ) -> sqlx::Result<Option<T>> {
        on_conn!(self, |c, Db| {
            let args = arguments::<Db>(sql.values)?;
            sqlx::query_as_with::<Db, T, _>(&sql.text, args).fetch_optional(c).await
        })
    }
}
