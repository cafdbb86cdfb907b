//! Black-box tests: each test starts the real server on its own fresh database and talks to it
//! over HTTP.

mod auth;
mod contract;
mod errors;
mod helpers;
mod news;
mod service;
