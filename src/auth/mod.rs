//! Credentials: password hashing off the async runtime, and access tokens (JWT) with a verification
//! that trusts nothing jsonwebtoken would let through by default.

pub mod jwt;
pub mod password;
pub mod refresh;

pub use jwt::{AccessClaims, JwtKeys, TokenError};
pub use password::PasswordHasher;
pub use refresh::{NewRefreshToken, hash_refresh_token};
