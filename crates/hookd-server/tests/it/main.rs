//! Black-box tests of hookd's API and worker: a real server on 127.0.0.1, a real receiver, a
//! fresh database per test, on SQLite and (with `HOOKD_TEST_DATABASE_URL`) PostgreSQL.

mod support;

/// `backend_test!(name)`: the test body `name` on SQLite and on PostgreSQL.
pub(crate) use hookd_testkit::backend_test;

mod auth;
mod delivery;
mod delivery_stats;
mod events;
mod faults;
mod inbound;
mod intake;
mod isolation;
mod migrations;
mod openapi;
mod plans;
mod proxy;
mod route_calls;
mod schedules;
mod secrets;
mod templates;
mod tls;
mod ui;
mod ui_dashboard;
mod ui_inbound;
mod webdriver;
mod webhooks;
