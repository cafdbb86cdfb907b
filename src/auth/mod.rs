//! Credentials: password hashing off the async runtime, access tokens (JWT) with a verification
//! that trusts nothing jsonwebtoken would let through by default, refresh tokens, and the sign-in
//! use case (throttle, password check, new session), and the sign-up limit per client address.

pub mod account_mail;
pub mod jwt;
pub mod password;
pub mod secret;
pub mod signin;
pub mod signup;

pub use account_mail::account_mail_budgets;
pub use jwt::{AccessClaims, JwtKeys, TokenError};
pub use password::PasswordHasher;
pub use secret::{PresentedAccountToken, PresentedRefreshToken, SecretToken, hash_secret_token};
pub use signin::{Credentials, Signin, SigninError, StartedSession};
pub use signup::{SignupLimitError, reserve_signup};
