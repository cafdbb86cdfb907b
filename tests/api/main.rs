//! Black-box tests: each test starts the real server on its own fresh database and talks to it
//! over HTTP.

mod account_email;
mod account_pages;
mod account_password;
mod admin;
mod attacks;
mod auth;
mod compression;
mod conditional;
mod connections;
mod contract;
mod db;
mod errors;
mod faults;
mod hashing;
mod helpers;
mod hygiene;
mod idempotency;
mod jwks;
mod lifecycle;
mod mail;
mod metrics;
mod news;
mod observability;
mod proxy;
mod replica;
mod service;
mod sessions;
mod smtp;
mod throttle;
