//! The text of every mail the server sends: what each says, in one place.

use super::Outgoing;

/// To a new account's address: follow `link` to verify it.
#[must_use]
pub fn verify_email(to: &str, link: &str) -> Outgoing {
    Outgoing {
        to: to.to_string(),
        subject: "Verify your email for newsapi".to_string(),
        body: format!(
            "Hello,\n\n\
             please confirm that this address is yours by opening this link (or sending its \
             token to POST /email/verify):\n\n\
             {link}\n\n\
             The link works once. If you did not sign up for newsapi, ignore this mail.\n"
        ),
    }
}

/// To the address an account wants to switch to: follow `link` to make it the account's.
#[must_use]
pub fn confirm_new_email(to: &str, link: &str) -> Outgoing {
    Outgoing {
        to: to.to_string(),
        subject: "Confirm your new email for newsapi".to_string(),
        body: format!(
            "Hello,\n\n\
             a newsapi account asked to use this address from now on. To confirm, open this link \
             (or send its token to POST /email/verify):\n\n\
             {link}\n\n\
             Until then the account keeps its old address. If you did not ask for this, ignore \
             this mail.\n"
        ),
    }
}

/// To an account's old address, once the change to `new_email` is confirmed.
#[must_use]
pub fn email_changed(old_email: &str, new_email: &str) -> Outgoing {
    Outgoing {
        to: old_email.to_string(),
        subject: "Your newsapi email was changed".to_string(),
        body: format!(
            "Hello,\n\n\
             the email of your newsapi account was changed to {new_email}; this address no \
             longer signs in.\n\n\
             If you did not do this, someone who knows your password has your account: contact \
             the operator of this newsapi at once.\n"
        ),
    }
}

/// To an account that asked to reset its password: follow `link` within `minutes`.
#[must_use]
pub fn reset_password(to: &str, link: &str, minutes: u64) -> Outgoing {
    Outgoing {
        to: to.to_string(),
        subject: "Reset your password".to_string(),
        body: format!(
            "Someone, hopefully you, asked to reset the password of the account {to}.\n\n\
             To choose a new password, open this link within {minutes} minutes:\n\n{link}\n\n\
             The link works once. If you did not ask for it, ignore this mail: your password \
             stays as it is.\n"
        ),
    }
}

/// The notice that the password was changed (by the owner, or through a reset link).
#[must_use]
pub fn password_changed(to: &str) -> Outgoing {
    Outgoing {
        to: to.to_string(),
        subject: "Your password was changed".to_string(),
        body: format!(
            "The password of the account {to} was just changed, and every other session of it \
             was signed out.\n\n\
             If this was not you, reset your password at once with \"Forgot password\" and \
             check your account.\n"
        ),
    }
}
