//! The pages the mailed links open, `GET /password/reset` and `GET /email/verify`: when
//! `PUBLIC_BASE_URL` is this server (the default), a person who clicks a link gets a small page
//! that does the matching POST, not a 405. A front end can serve its own pages at these paths.
//!
//! Each page is self-contained (one inline style, one inline script, nothing loaded) and is sent
//! with a `Content-Security-Policy` that allows exactly those by their SHA-256, requests to this
//! server only, and nothing else. The server never reads the `token` of the address: the page's
//! script does, removes it from the address bar, and sends it only in the POST. The page is the
//! same for every request, so nothing of the request can be reflected into it.

use std::sync::LazyLock;

use poem_openapi::{ApiResponse, payload::Html};

use crate::api::{NO_STORE, spec::inline_hashes};

/// The script both pages share, pasted in place of this marker in each page's script.
const SHARED_SCRIPT_MARKER: &str = "/* page.js */";
const SHARED_SCRIPT: &str = include_str!("pages/page.js");

/// `Referrer-Policy` of the pages: their address carries a token, so no request of theirs names it.
const NO_REFERRER: &str = "no-referrer";

/// A page, rendered once, and its policy.
pub(super) struct Page {
    html: String,
    policy: String,
}

impl Page {
    fn new(template: &str) -> Self {
        assert_eq!(
            template.matches(SHARED_SCRIPT_MARKER).count(),
            1,
            "a page of src/api/account/pages has no `{SHARED_SCRIPT_MARKER}` in its script"
        );
        let html = template.replacen(SHARED_SCRIPT_MARKER, SHARED_SCRIPT, 1);
        let policy = format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            inline_hashes(&html, "script"),
            inline_hashes(&html, "style"),
        );
        Self { html, policy }
    }

    pub(super) fn response(&'static self) -> PageResponse {
        PageResponse::Ok(
            Html(self.html.as_str()),
            NO_STORE.to_string(),
            self.policy.clone(),
            NO_REFERRER.to_string(),
        )
    }
}

/// `GET /password/reset`: a new password, typed twice, for `POST /password/reset`.
pub(super) static RESET_PASSWORD: LazyLock<Page> =
    LazyLock::new(|| Page::new(include_str!("pages/reset.html")));

/// `GET /email/verify`: a button that confirms the email with `POST /email/verify`.
pub(super) static VERIFY_EMAIL: LazyLock<Page> =
    LazyLock::new(|| Page::new(include_str!("pages/verify.html")));

#[derive(ApiResponse)]
pub(super) enum PageResponse {
    /// The page
    #[oai(status = 200)]
    Ok(
        Html<&'static str>,
        /// `no-store`: the page's address carries a token.
        #[oai(header = "Cache-Control")]
        String,
        /// Lets only the page's own inline script and style run, and its script talk only to this
        /// server; nothing is loaded, no form is submitted, and no other site may frame the page.
        #[oai(header = "Content-Security-Policy")]
        String,
        /// `no-referrer`: the page's address carries a token.
        #[oai(header = "Referrer-Policy")]
        String,
    ),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_page_has_the_shared_script_and_a_policy_for_exactly_its_script_and_style() {
        for page in [&*RESET_PASSWORD, &*VERIFY_EMAIL] {
            assert!(page.html.contains("history.replaceState"));
            assert!(!page.html.contains(SHARED_SCRIPT_MARKER));
            assert_eq!(page.html.matches("<script").count(), 1);
            assert_eq!(page.html.matches("<style").count(), 1);
            assert_eq!(page.policy.matches("'sha256-").count(), 2);
            for loose in ["unsafe", "http", "*", "data:"] {
                assert!(!page.policy.contains(loose), "{loose} in {}", page.policy);
            }
        }
    }

    #[test]
    fn the_pages_load_nothing() {
        for page in [&*RESET_PASSWORD, &*VERIFY_EMAIL] {
            for loads in ["src=", "href=", "<link", "@import", "url(", "action="] {
                assert!(!page.html.contains(loads), "{loads}");
            }
        }
    }
}
