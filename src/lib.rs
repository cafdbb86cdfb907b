//! newsapi: a spec-first News REST API secured with JWT, over PostgreSQL.
//!
//! A tour, from the outside in:
//! - [`config`] reads the environment once; [`telemetry`] sets up logging.
//! - [`startup`] migrates the database, builds the routes and serves them.
//! - [`api`] holds the operations of `openapi.yaml`, one module per area, and the bearer scheme.
//! - [`domain`] holds the checked types every request is parsed into.
//! - [`auth`] hashes passwords (off the async runtime) and signs and verifies access tokens.
//! - [`db`] holds the schema, the rows and the queries.
//! - [`error`] renders every failure as RFC 9457 problem+json.

pub mod admin;
pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod startup;
pub mod telemetry;
