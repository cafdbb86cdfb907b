//! bcrypt hashing and verification, always off the async runtime: a hash at cost 12 takes about a
//! quarter of a second of CPU, which on the runtime would stall every other request.
//!
//! The work runs on a pool of its own rather than tokio's blocking pool: one thread per core, each
//! under Linux's `SCHED_IDLE` policy. bcrypt then uses the CPU that serving requests leaves idle:
//! alone, sign-ins run at the machine's full bcrypt rate; during a sign-in storm, reads keep the
//! CPU instead of sharing it evenly with a dozen hashing threads (tokio's blocking pool would start
//! one per concurrent sign-in, at the same priority as everything else).
//!
//! Why `SCHED_IDLE` and not a nice value: Linux shares CPU between groups of processes before it
//! shares it between threads, and PostgreSQL on the same host is in another group, so nice-10
//! hashing threads still left PostgreSQL's backends waiting to run; under `SCHED_IDLE` those stalls
//! went away (decision log D1 in BENCHMARKS.md, with the measurements).

use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, mpsc},
};

use tokio::sync::{OnceCell, oneshot};

use crate::domain::Password;

/// Hashes and verifies passwords at the configured bcrypt cost.
#[derive(Debug)]
pub struct PasswordHasher {
    cost: u32,
    pool: HashPool,
    /// A hash of a random password at the same cost, verified against when the email is unknown,
    /// so that sign-in costs the same whether or not the account exists. Made on first use, to
    /// keep start-up fast.
    dummy_hash: OnceCell<String>,
}

/// Hashing failed; only a broken bcrypt setting or a dead blocking pool can cause it.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl PasswordHasher {
    /// A hasher at bcrypt cost `cost`.
    #[must_use]
    pub fn new(cost: u32) -> Self {
        Self {
            cost,
            pool: HashPool::start(),
            dummy_hash: OnceCell::new(),
        }
    }

    /// Hashes a new password.
    ///
    /// # Errors
    /// bcrypt refused the cost, or the hashing threads died.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let cost = self.cost;
        self.pool
            .run(move || {
                bcrypt::hash(password.expose(), cost).map_err(|e| HashError(e.to_string()))
            })
            .await?
    }

    /// Checks `candidate` (normalised as at signup) against `stored`, or against a dummy hash when
    /// there is no stored hash, so that the answer takes as long either way. A candidate over 72
    /// bytes never matches (no such password can have been set, and bcrypt would compare only its
    /// first 72 bytes).
    ///
    /// # Errors
    /// The hashing threads died, or the dummy hash could not be made.
    pub async fn verify(
        &self,
        candidate: String,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let (hash, exists) = match stored {
            Some(hash) => (hash, true),
            None => (self.dummy_hash().await?.to_string(), false),
        };
        let candidate = Password::normalise(&candidate);
        let fits = candidate.len() <= Password::MAX_BYTES;
        let matches = self
            .pool
            .run(move || bcrypt::verify(candidate, &hash).unwrap_or(false))
            .await?;
        Ok(exists && fits && matches)
    }

    async fn dummy_hash(&self) -> Result<&str, HashError> {
        let cost = self.cost;
        self.dummy_hash
            .get_or_try_init(|| async move {
                let random = uuid::Uuid::new_v4().to_string();
                self.pool
                    .run(move || bcrypt::hash(random, cost).map_err(|e| HashError(e.to_string())))
                    .await?
            })
            .await
            .map(String::as_str)
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads for CPU-bound work, one per core, at the lowest scheduling priority (see the module
/// documentation). They end when the pool is dropped.
#[derive(Debug)]
struct HashPool {
    jobs: mpsc::Sender<Job>,
}

impl HashPool {
    fn start() -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("bcrypt-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job, not while running it.
                        let next = queue.lock().map(|queue| queue.recv());
                        let Ok(Ok(job)) = next else { break };
                        // A panicking job loses its answer (the caller sees an error), not the thread.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a password hashing thread");
            }
        }
        Self { jobs }
    }

    /// Runs `work` on the pool, inside the caller's tracing span, and waits for its answer.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (answer, answered) = oneshot::channel();
        let span = tracing::Span::current();
        self.jobs
            .send(Box::new(move || {
                let _ = answer.send(span.in_scope(work));
            }))
            .map_err(|_| HashError("the password hashing threads have stopped".into()))?;
        answered
            .await
            .map_err(|_| HashError("a password hashing job failed".into()))
    }
}

/// `SCHED_IDLE` for the calling thread, or nice 19 where that policy is refused.
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_current_thread_priority, unix,
    };
    let idle = unix::set_thread_priority_and_policy(
        unix::thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    );
    if let Err(err) = idle.or_else(|_| set_current_thread_priority(ThreadPriority::Min)) {
        // Still correct, only less kind to other requests under a sign-in storm.
        tracing::warn!(error = %err, "cannot lower the priority of a password hashing thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(raw: &str) -> Password {
        Password::parse(raw.to_string(), &[]).unwrap()
    }

    #[tokio::test]
    async fn the_right_password_verifies_and_a_wrong_one_does_not() {
        let hasher = PasswordHasher::new(4);
        let hash = hasher.hash(password("correct horse")).await.unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse!".into(), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashing_threads_run_under_sched_idle() {
        let hasher = PasswordHasher::new(4);
        let stat = hasher
            .pool
            .run(|| std::fs::read_to_string("/proc/thread-self/stat"))
            .await
            .unwrap()
            .unwrap();
        // Field 41 of /proc/<tid>/stat is the scheduling policy; the name in field 2 has no
        // spaces here.
        let policy: i32 = stat.split_whitespace().nth(40).unwrap().parse().unwrap();
        const SCHED_IDLE: i32 = 5;
        assert_eq!(policy, SCHED_IDLE);
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(4);
        assert!(!hasher.verify("anything at all".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_candidate_longer_than_72_bytes_never_matches_its_truncation() {
        let hasher = PasswordHasher::new(4);
        let stored = "k9#Vq2!xZ".repeat(8);
        let hash = hasher.hash(password(&stored)).await.unwrap();
        assert!(
            !hasher
                .verify(format!("{stored}extra"), Some(hash))
                .await
                .unwrap()
        );
    }
}
