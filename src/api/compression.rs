//! Compressed responses: a JSON body (`application/json`, `application/problem+json`) of at least
//! `COMPRESSION_MIN_BYTES` is sent zstd-, brotli- or gzip-encoded when the request's
//! `Accept-Encoding` accepts one of them, with `Vary: Accept-Encoding` on every JSON answer.
//!
//! The encoders are poem's (`poem::web::Compress`, async-compression underneath); its
//! `Compression` middleware is not used, as poem 3.1.12's would need more wrapping than this:
//! it never selects zstd by name (it reads `zsdt`), treats `gzip;q=0` as acceptable, skips a
//! weight written `; q=`, compresses every body whatever its size and type, writes no `Vary`, and
//! decompresses request bodies (which would change what the API accepts).
//!
//! Not compressed: a body whose size is not known up front (a stream), one under the threshold
//! (204, 304 and most errors), anything but JSON (the pages, `/metrics`), and every response with
//! `Cache-Control: no-store` — they carry a token or account data, and a compressed secret beside
//! text the client chose is what BREACH-style length attacks read. `ETag`s are left as they are:
//! they name the news item's version for `If-Match`/`If-None-Match`, and `Vary` keeps caches from
//! mixing encodings.

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response,
    http::{HeaderMap, HeaderValue, header},
    web::{Compress, CompressionAlgo, CompressionLevel},
};

use super::NO_STORE;
use crate::{error::render_any_error, telemetry::body_size};

/// Every coding's fastest useful level (gzip 1, brotli 1, zstd 1): higher levels buy a few per
/// cent fewer bytes for 1.5–4× the CPU, and level 1 already costs 1–2× a page's own (BENCHMARKS.md,
/// D11).
const LEVEL: CompressionLevel = CompressionLevel::Precise(1);

/// The default of `COMPRESSION_MIN_BYTES`: below about a kilobyte a body fits a packet or two and
/// compressing it saves little.
pub const DEFAULT_MIN_BYTES: u64 = 1024;

/// The middleware; see the module's documentation.
#[derive(Debug, Clone, Copy)]
pub struct ResponseCompression {
    min_bytes: u64,
}

impl ResponseCompression {
    /// Compresses JSON bodies of at least `min_bytes`.
    #[must_use]
    pub fn new(min_bytes: u64) -> Self {
        Self { min_bytes }
    }
}

impl Default for ResponseCompression {
    fn default() -> Self {
        Self::new(DEFAULT_MIN_BYTES)
    }
}

impl<E: Endpoint> Middleware<E> for ResponseCompression {
    type Output = CompressionEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        CompressionEndpoint {
            inner,
            min_bytes: self.min_bytes,
        }
    }
}

/// The endpoint [`ResponseCompression`] wraps.
pub struct CompressionEndpoint<E> {
    inner: E,
    min_bytes: u64,
}

impl<E: Endpoint> Endpoint for CompressionEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let coding = negotiate(req.headers());
        let mut response = self.inner.call(req).await?.into_response();
        if !is_json(response.headers()) || is_no_store(response.headers()) {
            return Ok(response);
        }
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept-encoding"));
        let Some(algo) = coding else {
            return Ok(response);
        };
        if response.headers().contains_key(header::CONTENT_ENCODING)
            || body_size(&mut response).is_none_or(|size| size < self.min_bytes)
        {
            return Ok(response);
        }
        // The body is already in memory (its size was known); compressing it whole lets the answer
        // keep a `Content-Length` and the access log its byte count.
        // Neither step can fail on bytes in memory; were one to, the answer is still problem+json
        // (the body could not be read) or the body as it is (it could not be encoded).
        let body = match response.take_body().into_bytes().await {
            Ok(body) => body,
            Err(err) => return Ok(render_any_error(err.into()).await),
        };
        let compressed = Compress::new(body.clone(), algo)
            .with_quality(LEVEL)
            .into_response()
            .into_body()
            .into_bytes()
            .await;
        match compressed {
            Ok(compressed) if compressed.len() < body.len() => {
                response.set_body(compressed);
                response.headers_mut().insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(name(algo)),
                );
            }
            _ => response.set_body(body),
        }
        Ok(response)
    }
}

/// `application/json` or `application/problem+json`, whatever the parameters.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            let media = media.trim();
            media.eq_ignore_ascii_case("application/json")
                || media.eq_ignore_ascii_case("application/problem+json")
        })
}

fn is_no_store(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|directive| directive.trim().eq_ignore_ascii_case(NO_STORE))
}

fn name(algo: CompressionAlgo) -> &'static str {
    match algo {
        CompressionAlgo::BR => "br",
        CompressionAlgo::DEFLATE => "deflate",
        CompressionAlgo::GZIP => "gzip",
        CompressionAlgo::ZSTD => "zstd",
    }
}

/// The codings offered, from least to most preferred at equal weight (zstd is the fastest of the
/// three for the smallest output).
const OFFERED: [(&str, CompressionAlgo); 3] = [
    ("gzip", CompressionAlgo::GZIP),
    ("br", CompressionAlgo::BR),
    ("zstd", CompressionAlgo::ZSTD),
];

/// The coding to answer with under RFC 9110 §12.5.3, or none for the body as it is: among the
/// [`OFFERED`] codings the request accepts (weight above 0, named or through `*`), the one of
/// highest weight, unless `identity` is named with a higher one. `x-gzip` is `gzip`. A weight that
/// does not parse drops its item. When the request excludes identity too (`identity;q=0`) and
/// accepts none of these, the body is sent as it is: the RFC lets a server disregard the header
/// rather than answer 406, and a client that cannot read JSON as it is cannot use this API.
fn negotiate(headers: &HeaderMap) -> Option<CompressionAlgo> {
    // Weights in thousandths, as the RFC writes them (three decimals at most).
    let mut named: [Option<u16>; OFFERED.len()] = [None; OFFERED.len()];
    let mut star = None;
    let mut identity = None;
    let items = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for item in items {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let weight = parts
            .map(str::trim)
            .find_map(|param| param.strip_prefix("q=").or(param.strip_prefix("Q=")))
            .map_or(Some(1000), parse_weight);
        let Some(weight) = weight else {
            continue;
        };
        if coding == "*" {
            star = Some(weight);
        } else if coding.eq_ignore_ascii_case("identity") {
            identity = Some(weight);
        } else if let Some(index) = OFFERED.iter().position(|(name, _)| {
            coding.eq_ignore_ascii_case(name)
                || (*name == "gzip" && coding.eq_ignore_ascii_case("x-gzip"))
        }) {
            named[index] = Some(weight);
        }
    }
    let (weight, algo) = OFFERED
        .iter()
        .zip(named)
        .filter_map(|((_, algo), weight)| Some((weight.or(star)?, *algo)))
        .filter(|(weight, _)| *weight > 0)
        .enumerate()
        .max_by_key(|(preference, (weight, _))| (*weight, *preference))
        .map(|(_, chosen)| chosen)?;
    (identity.is_none_or(|identity| weight >= identity)).then_some(algo)
}

/// `0`, `1`, `0.5`, `1.000`: a weight in thousandths, or `None` when it is not one.
fn parse_weight(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(accept: &[&str]) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        for value in accept {
            headers.append(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        negotiate(&headers).map(name)
    }

    #[test]
    fn the_highest_weight_wins_then_zstd_br_gzip() {
        assert_eq!(chosen(&[]), None);
        assert_eq!(chosen(&["gzip"]), Some("gzip"));
        assert_eq!(chosen(&["gzip, deflate, br"]), Some("br"));
        assert_eq!(chosen(&["gzip, br, zstd"]), Some("zstd"));
        assert_eq!(chosen(&["zstd;q=0.5, gzip"]), Some("gzip"));
        assert_eq!(chosen(&["gzip;q=0.8", "br; q=0.9"]), Some("br"));
        assert_eq!(chosen(&["X-GZIP"]), Some("gzip"));
    }

    #[test]
    fn weight_zero_refuses_and_star_stands_for_the_rest() {
        assert_eq!(chosen(&["gzip;q=0"]), None);
        assert_eq!(chosen(&["gzip;q=0, br"]), Some("br"));
        assert_eq!(chosen(&["*"]), Some("zstd"));
        assert_eq!(chosen(&["*;q=0.5, zstd;q=0, br;q=0"]), Some("gzip"));
        assert_eq!(chosen(&["*;q=0"]), None);
    }

    #[test]
    fn identity_preferred_or_only_means_none() {
        assert_eq!(chosen(&["identity"]), None);
        assert_eq!(chosen(&["identity;q=0"]), None);
        assert_eq!(chosen(&["identity, gzip;q=0.5"]), None);
        assert_eq!(chosen(&["identity;q=0.5, gzip"]), Some("gzip"));
        assert_eq!(chosen(&["compress, deflate"]), None);
    }

    #[test]
    fn a_malformed_weight_drops_its_item() {
        assert_eq!(chosen(&["gzip;q=2, br;q=1.0001"]), None);
        assert_eq!(chosen(&["gzip;q=abc, br;q=0.001"]), Some("br"));
        assert_eq!(parse_weight("1.000"), Some(1000));
        assert_eq!(parse_weight("0.25"), Some(250));
        assert_eq!(parse_weight("1.5"), None);
        assert_eq!(parse_weight(""), None);
    }
}
