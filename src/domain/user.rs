//! Who a user is: email, password, display name and role.

use std::fmt;

use super::{Invalid, TextRule, failures};

/// Everything a signup needs, checked.
#[derive(Debug)]
pub struct NewUser {
    /// Sign-in address.
    pub email: Email,
    /// The password to hash.
    pub password: Password,
    /// Display name, if given.
    pub name: Option<UserName>,
}

impl NewUser {
    /// # Errors
    /// Every field that fails its checks.
    pub fn parse(
        email: &str,
        password: String,
        name: Option<String>,
    ) -> Result<Self, Vec<Invalid>> {
        let mut personal = vec![email];
        personal.extend(email.split('@').next());
        personal.extend(name.as_deref());
        let password = Password::parse(password, &personal);
        match (
            Email::parse(email),
            password,
            name.map(UserName::parse).transpose(),
        ) {
            (Ok(email), Ok(password), Ok(name)) => Ok(Self {
                email,
                password,
                name,
            }),
            (email, password, name) => Err(failures([email.err(), password.err(), name.err()])),
        }
    }
}

/// A syntactically valid email address of at most 254 characters, as the user typed it (trimmed).
/// Uniqueness and look-ups use its [`canonical_email`] form (stored as `users.email_canonical`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// The most bytes of UTF-8 the canonical form of an email may have. A real address of 254
/// characters has at most 1016; only compatibility characters that expand (U+FDFA is 18 letters
/// in NFKC) reach further, and such a form could not be indexed (PostgreSQL's btree takes about
/// 2.7 kB a key). No account has such an email; sign-in treats one as unknown.
pub const MAX_CANONICAL_EMAIL_BYTES: usize = 1024;

/// The one form of an email that every spelling reaching the same account maps to: the account's
/// identity for uniqueness, every look-up and every throttle key.
///
/// 1. Surrounding white space goes (`char::is_whitespace`).
/// 2. Unicode's compatibility caseless form (Unicode §3.13, D146: NFKD of full case folding of
///    NFKD of full case folding of NFD): letter case, compatibility forms (fullwidth `ａ`, `K`
///    KELVIN SIGN, ligatures) and canonical equivalents (`e` + U+0301 and `é`) all meet. Full case
///    folding maps `ß` and `ẞ` to `ss`, so `straße@…` and `strasse@…` are one account: the
///    spelling a keyboard without `ß` produces reaches it, and no second account can be made that
///    reads the same.
/// 3. U+0307 COMBINING DOT ABOVE on a base `i` or `j` goes: folding `İ` (U+0130) gives `i` + U+0307,
///    which reads as `i`, so `İris@…` is `iris@…` (as PostgreSQL's `lower()` had it).
/// 4. The result is recomposed (NFKC) and trimmed again.
#[must_use]
pub fn canonical_email(typed: &str) -> String {
    use caseless::Caseless;
    use unicode_normalization::{UnicodeNormalization, char::canonical_combining_class};

    let folded = typed
        .trim()
        .chars()
        .nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkd();
    let mut base = None;
    let undotted = folded.filter(|&c| {
        if canonical_combining_class(c) == 0 {
            base = Some(c);
            true
        } else {
            !(c == '\u{307}' && matches!(base, Some('i' | 'j')))
        }
    });
    undotted.nfkc().collect::<String>().trim().to_string()
}

/// The longest address SMTP can carry (RFC 5321 §4.5.3.1.3).
impl TextRule for Email {
    const FIELD: &'static str = "email";
    const MAX_CHARS: usize = 254;
    const FORMAT: Option<&'static str> = Some("email");
}

impl Email {
    /// # Errors
    /// An address that is too long or not an address.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim();
        Self::check(email)?;
        if !email_address::EmailAddress::is_valid(email)
            || canonical_email(email).len() > MAX_CANONICAL_EMAIL_BYTES
        {
            return Err(Invalid::new("email", "must be a valid email address"));
        }
        Ok(Self(email.to_string()))
    }

    /// The address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its [`canonical_email`] form: the account's identity.
    #[must_use]
    pub fn canonical(&self) -> String {
        canonical_email(&self.0)
    }
}

/// A password fit to hash: 8 to 72 characters as sent (the lengths `openapi.yaml` states hold for
/// the string the client sent), then normalised to Unicode NFKC (NIST SP 800-63B §5.1.1.2, so that
/// the same password typed on two keyboards is the same) and at most 72 bytes of UTF-8 in that
/// form (bcrypt ignores every byte after the 72nd, so a longer password would silently be cut),
/// and not easily guessed.
#[derive(Clone)]
pub struct Password(String);

impl TextRule for Password {
    const FIELD: &'static str = "password";
    const MIN_CHARS: usize = 8;
    /// 72 characters can be at most 72 bytes only in ASCII: [`Password::MAX_BYTES`] is the real
    /// limit, checked after this one.
    const MAX_CHARS: usize = 72;
}

impl Password {
    /// The most bytes bcrypt reads.
    pub const MAX_BYTES: usize = 72;

    /// Checks a new password. `personal` holds what the user's password must not merely be (their
    /// email, its local part, their name).
    ///
    /// # Errors
    /// A password that is too short, too long, or too easy to guess: zxcvbn (whose dictionaries of
    /// common passwords, words and names ship with the crate) estimates at most 10^6 guesses, as for
    /// `password1`, `iloveyou2` or the user's own email.
    pub fn parse(raw: String, personal: &[&str]) -> Result<Self, Invalid> {
        Self::check(&raw)?;
        let raw = Self::normalise(&raw);
        if raw.len() > Self::MAX_BYTES {
            return Err(Invalid::new(
                "password",
                format!("must be at most {} bytes in UTF-8", Self::MAX_BYTES),
            ));
        }
        if matches!(
            zxcvbn::zxcvbn(&raw, personal).score(),
            zxcvbn::Score::Zero | zxcvbn::Score::One
        ) {
            return Err(Invalid::new(
                "password",
                "is too common or too easy to guess; try a longer phrase",
            ));
        }
        Ok(Self(raw))
    }

    /// The form a password is hashed and compared in: Unicode NFKC.
    #[must_use]
    pub fn normalise(raw: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        raw.nfkc().collect()
    }

    /// The password itself, for the hasher only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

super::bounded_text!(
    /// A display name: 1 to 100 characters, not blank.
    UserName,
    "name",
    100
);

/// The email sign-in reads: any text up to the longest address an account can have (it is looked
/// up, not checked, so a typo is an unknown account rather than a 422).
pub struct SigninEmail;

impl TextRule for SigninEmail {
    const FIELD: &'static str = "email";
    const MAX_CHARS: usize = Email::MAX_CHARS;
}

/// The password sign-in reads: any text up to 1024 characters (longer than any stored password
/// can be, short enough that hashing it costs nothing extra).
pub struct SigninPassword;

impl TextRule for SigninPassword {
    const FIELD: &'static str = "password";
    const MAX_CHARS: usize = 1024;
}

/// The current password a change to the account asks for: any text up to 1024 characters, like
/// [`SigninPassword`] (it is checked against the hash, not against the rules of a new one).
pub struct CurrentPassword;

impl TextRule for CurrentPassword {
    const FIELD: &'static str = "current_password";
    const MAX_CHARS: usize = SigninPassword::MAX_CHARS;
}

/// What a user may do. Every signup is a `User`; an `Admin` may change anyone's news.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May change only their own news.
    User,
    /// May change any news.
    Admin,
}

impl Role {
    /// The name stored in the database and shown on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

impl From<String> for Role {
    /// Reads a stored role; anything unknown is the least privileged.
    fn from(stored: String) -> Self {
        match stored.as_str() {
            "admin" => Self::Admin,
            _ => Self::User,
        }
    }
}

impl From<Role> for String {
    fn from(role: Role) -> Self {
        role.as_str().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_trimmed_and_keeps_its_case() {
        assert_eq!(
            Email::parse("  Ada@Example.com ").unwrap().as_str(),
            "Ada@Example.com"
        );
    }

    #[test]
    fn every_spelling_of_one_address_has_one_canonical_form() {
        let cases = [
            ("plain", "iris@example.com", "iris@example.com"),
            ("letter case", "IRIS@Example.COM", "iris@example.com"),
            (
                "surrounding white space",
                " \t iris@example.com\u{3000}\n",
                "iris@example.com",
            ),
            (
                "U+0130 capital I with dot",
                "\u{130}ris@example.com",
                "iris@example.com",
            ),
            (
                "U+0130 inside",
                "iR\u{130}s@example.com",
                "iris@example.com",
            ),
            (
                "I + combining dot",
                "I\u{307}ris@example.com",
                "iris@example.com",
            ),
            (
                "i + combining dot",
                "i\u{307}ris@example.com",
                "iris@example.com",
            ),
            (
                "j + combining dot",
                "j\u{307}o@example.com",
                "jo@example.com",
            ),
            (
                "a dot on another letter stays",
                "e\u{307}@example.com",
                "\u{117}@example.com",
            ),
            (
                "U+212A KELVIN SIGN",
                "\u{212A}elvin@example.com",
                "kelvin@example.com",
            ),
            ("\u{df}", "stra\u{df}e@example.com", "strasse@example.com"),
            (
                "U+1E9E capital sharp s",
                "STRA\u{1E9E}E@example.com",
                "strasse@example.com",
            ),
            ("ss", "STRASSE@example.com", "strasse@example.com"),
            (
                "fullwidth",
                "\u{FF41}\u{FF44}\u{FF41}\u{FF20}example.com",
                "ada@example.com",
            ),
            (
                "fullwidth capitals",
                "\u{FF21}DA@EXAMPLE.COM",
                "ada@example.com",
            ),
            (
                "decomposed accent",
                "jose\u{301}@example.com",
                "jos\u{e9}@example.com",
            ),
            (
                "composed accent",
                "JOS\u{c9}@example.com",
                "jos\u{e9}@example.com",
            ),
            (
                "final sigma",
                "\u{3a3}\u{3bf}\u{3c6}\u{3b9}\u{3b1}\u{3c2}@example.com",
                "\u{3c3}\u{3bf}\u{3c6}\u{3b9}\u{3b1}\u{3c3}@example.com",
            ),
            ("ligature", "\u{FB01}x@example.com", "fix@example.com"),
            (
                "dotless i stays its own letter",
                "\u{131}ris@example.com",
                "\u{131}ris@example.com",
            ),
        ];
        for (case, typed, canonical) in cases {
            assert_eq!(canonical_email(typed), canonical, "{case}");
            assert_eq!(canonical_email(canonical), canonical, "{case}: idempotent");
        }
    }

    #[test]
    fn an_email_whose_canonical_form_could_not_be_indexed_is_invalid() {
        // U+FDFA is one character and 18 in NFKC.
        let expanding = format!("{}@example.com", "\u{FDFA}".repeat(60));
        assert!(canonical_email(&expanding).len() > MAX_CANONICAL_EMAIL_BYTES);
        assert!(Email::parse(&expanding).is_err());
        assert_eq!(
            Email::parse(" \u{130}ris@Example.com ")
                .unwrap()
                .canonical(),
            "iris@example.com"
        );
    }

    #[test]
    fn an_email_without_a_domain_is_invalid() {
        assert_eq!(Email::parse("ada").unwrap_err().field, "email");
        assert!(Email::parse("").is_err());
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    fn password(raw: &str) -> Result<Password, Invalid> {
        Password::parse(raw.to_string(), &["ada@example.com", "ada"])
    }

    #[test]
    fn a_password_of_seven_characters_is_too_short_and_eight_is_enough() {
        assert!(password("k9#Vq2!").is_err());
        assert!(password("k9#Vq2!x").is_ok());
    }

    #[test]
    fn password_lengths_count_the_characters_as_sent_not_their_nfkc_form() {
        // U+FB03 LATIN SMALL LIGATURE FFI is one character as sent, three in NFKC.
        let seven_as_sent = "k9#V\u{FB03}!x";
        assert_eq!(seven_as_sent.chars().count(), 7);
        assert_eq!(Password::normalise(seven_as_sent).chars().count(), 9);
        assert_eq!(
            password(seven_as_sent).unwrap_err().message,
            "must be at least 8 characters"
        );
        // 72 characters as sent whose NFKC form is longer are still within the character
        // limit; the 72-byte limit applies to the normalised form.
        let ligatures = "\u{FB03}".repeat(25);
        assert_eq!(
            password(&ligatures).unwrap_err().message,
            "must be at most 72 bytes in UTF-8"
        );
    }

    #[test]
    fn a_password_is_limited_to_72_bytes_not_72_characters() {
        let ascii = "k9#Vq2!xZ".repeat(8);
        assert!(password(&ascii).is_ok());
        assert!(password(&format!("{ascii}a")).is_err());
        // 36 two-byte characters are 72 bytes; 37 are 74.
        let two_byte = "éàüöñçßø".repeat(5);
        assert!(password(&two_byte.chars().take(36).collect::<String>()).is_ok());
        assert_eq!(
            password(&two_byte.chars().take(37).collect::<String>())
                .unwrap_err()
                .field,
            "password"
        );
    }

    #[test]
    fn common_passwords_and_the_users_own_email_are_refused() {
        for common in [
            "password",
            "password1",
            "12345678",
            "iloveyou",
            "qwertyuiop",
            "P@ssw0rd",
            "ada@example.com",
        ] {
            assert!(password(common).is_err(), "{common} was accepted");
        }
        assert!(password("correct horse battery staple").is_ok());
    }

    #[test]
    fn passwords_are_normalised_to_nfkc() {
        // U+212B ANGSTROM SIGN and U+00C5 are the same letter; so are the full-width digits and 1.
        let typed_one_way = password("\u{212B}ngstr\u{00F6}m-\u{FF11}\u{FF12}\u{FF13}x").unwrap();
        let typed_another = password("\u{00C5}ngstro\u{0308}m-123x").unwrap();
        assert_eq!(typed_one_way.expose(), typed_another.expose());
        assert_eq!(Password::normalise("\u{FF21}"), "A");
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let password = password("hunter2hunter2-lazy-dog").unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
    }

    #[test]
    fn a_blank_name_is_invalid() {
        assert!(UserName::parse("   ".into()).is_err());
        assert!(UserName::parse("x".repeat(101)).is_err());
        assert!(UserName::parse("Ada".into()).is_ok());
    }
}
