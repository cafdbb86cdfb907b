//! A panic while serving a request: answered 500 problem+json like any internal error (the
//! client sees "internal error", never the panic's message), and logged once, at error, with its
//! message, where it happened and a backtrace, inside the request's span (so with its
//! `request_id`). No route panics on purpose; this is the net under the ones nobody foresaw.
//!
//! A panic's backtrace exists only while it unwinds, so a panic hook (installed once, by
//! [`answer_panics`]) captures it into a slot of the request's task; poem's `CatchPanic` then
//! catches the unwind, and [`answer_panics`]' handler renders what the slot holds. A panic in no
//! request (a task of its own, start-up) goes to the hook that was there before, Rust's default
//! message on stderr.

use std::{any::Any, backtrace::Backtrace, cell::RefCell, fmt, panic::PanicHookInfo, sync::Once};

use poem::{
    Endpoint, EndpointExt, Request, Response, error::ResponseError, middleware::CatchPanic,
};

use crate::{error::ApiError, telemetry::loggable};

/// A panic that unwound out of a request's handler: the source of the [`ApiError::Internal`] it is
/// answered with, which logs it with its backtrace.
#[derive(Debug)]
pub struct Panicked {
    /// The panic's message, its control characters escaped (it may quote what a client sent).
    pub message: String,
    /// Where it panicked (`file:line:column`), when known.
    pub location: Option<String>,
    /// The backtrace captured while it unwound, when the hook saw it.
    pub backtrace: Option<String>,
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request's handler panicked: {}", self.message)
    }
}

impl std::error::Error for Panicked {}

impl Panicked {
    fn from_hook(info: &PanicHookInfo<'_>) -> Self {
        Self {
            message: message(info.payload()),
            location: info.location().map(ToString::to_string),
            backtrace: Some(Backtrace::force_capture().to_string()),
        }
    }

    fn from_payload(payload: &(dyn Any + Send)) -> Self {
        Self {
            message: message(payload),
            location: None,
            backtrace: None,
        }
    }
}

/// The text of a panic's payload (`panic!("…")` gives a `&str` or a `String`).
fn message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    loggable(text).into_owned()
}

tokio::task_local! {
    /// The panic the request being served hit, as the hook saw it.
    static PANIC: RefCell<Option<Panicked>>;
}

/// Installs, once per process, the hook that keeps a request's panic for its answer.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_request = PANIC
                .try_with(|slot| {
                    if let Ok(mut slot) = slot.try_borrow_mut() {
                        *slot = Some(Panicked::from_hook(info));
                    }
                })
                .is_ok();
            if !in_request {
                previous(info);
            }
        }));
    });
}

/// `endpoint`, answering a panic in it with a 500 problem+json and logging it (see the module).
pub fn answer_panics(endpoint: impl Endpoint + 'static) -> impl Endpoint<Output = Response> {
    install_hook();
    endpoint
        .with(CatchPanic::new().with_handler(answer))
        .around(|caught, req: Request| {
            PANIC.scope(RefCell::new(None), async move { caught.call(req).await })
        })
}

fn answer(payload: Box<dyn Any + Send>) -> Response {
    let panicked = PANIC
        .try_with(|slot| slot.borrow_mut().take())
        .ok()
        .flatten()
        .unwrap_or_else(|| Panicked::from_payload(payload.as_ref()));
    ApiError::internal(panicked).as_response()
}
