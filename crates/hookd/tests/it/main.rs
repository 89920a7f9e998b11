//! Process-level tests of the `hookd` binary: first start, separate workers sharing one database,
//! and a worker killed with SIGKILL mid-delivery. Real processes, a real receiver on 127.0.0.1,
//! SQLite always and PostgreSQL when `HOOKD_TEST_DATABASE_URL` is set.

mod support;

/// `backend_test!(name)`: the test body `name` on SQLite and on PostgreSQL.
pub(crate) use hookd_testkit::backend_test;

mod cli;
mod observability;
mod processes;
mod secrets;
