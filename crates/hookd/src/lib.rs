//! The `hookd` binary's library: the command line ([`cli`]), the configuration ([`config`]) and
//! the commands ([`commands`]) that wire them to the server and the database backends.
//!
//! It owns no domain rules and no HTTP handlers: those live in `hookd-core` and `hookd-server`.
//! Errors here are `anyhow` errors with context; `main` prints their chain.

pub mod cli;
pub mod commands;
pub mod config;
