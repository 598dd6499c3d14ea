//! The only places where SQLite and PostgreSQL need different SQL. Callers never see the split.

pub(crate) mod postgres;
pub(crate) mod sqlite;
