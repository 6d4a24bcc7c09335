//! The store's one error type.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such record.
    #[error("{kind} {ident} could not be found")]
    NotFound { kind: &'static str, ident: String },
    /// A unique field (uuid, name, MAC address, instance_uuid, hostname) is taken.
    #[error("a {kind} with {field} {value} already exists")]
    Duplicate { kind: &'static str, field: &'static str, value: String },
    /// A conditional write lost: the record changed since it was read.
    #[error("{kind} {ident} was changed by someone else; re-read and retry")]
    Stale { kind: &'static str, ident: String },
    /// The record is still referenced (a chassis with nodes, a portgroup with ports).
    #[error("{kind} {ident} is still in use: {reason}")]
    InUse { kind: &'static str, ident: String, reason: String },
    /// A stored value did not decode (a corrupt or newer database).
    #[error("stored {what} could not be decoded: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// The URL names no supported database.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// Migrations failed to apply.
    #[error("applying database migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The database itself failed (unreachable, I/O, ...).
    #[error("database error")]
    Database(#[source] sqlx::Error),
}
