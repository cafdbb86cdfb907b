//! newsapi: a spec-first News REST API secured with JWT, over PostgreSQL.
//!
//! A tour, from the outside in (`docs/architecture.md` has the whole picture):
//! - [`config`] reads the environment once; [`telemetry`] sets up logging.
//! - [`startup`] migrates the database, builds the routes and serves them.
//! - [`server`] accepts connections and serves them under the connection deadlines and the
//!   per-address cap, the request deadline and the shutdown; [`cancel`] is how it cancels a request
//!   so that nothing of it is committed.
//! - [`api`] holds the operations of `openapi.yaml`, one module per area, the bearer scheme and
//!   the extractors that carry the signed-in user and the request's database connection.
//! - [`domain`] holds the checked types every request is parsed into, and the rules they enforce.
//! - [`auth`] hashes passwords (off the async runtime), signs and verifies tokens, and signs in.
//! - [`db`] holds the schema, the rows and the queries, which take domain values.
//! - [`error`] renders every failure as RFC 9457 problem+json; [`panics`] makes a panic one.
//! - [`metrics`] counts requests and outcomes and writes them for Prometheus (`/metrics`).
//! - [`admin`] runs the administrative commands (`create-admin`, `promote`).

pub mod admin;
pub mod api;
pub mod auth;
pub mod cancel;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod mail;
pub mod metrics;
pub mod panics;
pub mod server;
pub mod startup;
pub mod telemetry;
