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
//!
//! Every hash and every check goes through one bounded queue: at most `HASH_QUEUE_MAX` jobs waiting
//! or running in all, and at most `HASH_QUEUE_MAX_PER_IP` from one client address. A request beyond
//! either bound is refused at once, before any bcrypt work ([`HashError::QueueFull`],
//! [`HashError::ClientBusy`]), so one address cannot fill the queue and a flood cannot make it
//! long. A job whose caller has gone (its request's future was dropped, which is what a client
//! closing its connection does: `crate::server` drops a connection that fails, never polling it
//! again) leaves the queue at once and is never hashed;
//! one already running finishes, as bcrypt cannot be interrupted, and keeps its slot until then.
//! `Retry-After` for a refusal is the time the threads need to work through the queue as it stands,
//! from the recent run time of a job: about 8 s for a full default queue at cost 12 on 2 cores.
//!
//! Behind a balancer, the per-address share is counted across all replicas
//! ([`PasswordHasher::counted_across_replicas`], what the server does): before a job of an address
//! is queued, its replica takes one of the address's `HASH_QUEUE_MAX_PER_IP` slots in PostgreSQL
//! (`db::hash_slots`, one statement serialised per address), and refuses the job with the same 429
//! when every slot is taken, on whichever replicas. The slot is given back (one more statement)
//! when the job ends, is refused by the queue, or is withdrawn because its request was dropped;
//! no connection is held while bcrypt runs. A replica that dies leaves its slots behind: each is a
//! lease of `REQUEST_TIMEOUT_SECS`, as long as the request that took it can run before it is
//! cancelled (which gives the slot back), so a live slot never expires and a dead one is counted
//! for at most that long. The whole queue, `HASH_QUEUE_MAX`, stays per replica: it bounds that
//! process's own CPU and memory. A database that cannot be reached makes the request a 503, as
//! any other query would.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    panic::AssertUnwindSafe,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    config::HashQueueConfig,
    db::{
        DbPool,
        hash_slots::{self, SlotError},
    },
    domain::{Password, client_share},
};

/// Hashes and verifies passwords at the configured bcrypt cost, through the bounded queue.
#[derive(Debug)]
pub struct PasswordHasher {
    cost: u32,
    pool: HashPool,
    /// A well-formed hash at the same cost that no stored hash equals, verified against when the
    /// email is unknown, so that sign-in costs the same bcrypt work whether or not the account
    /// exists. bcrypt's work depends only on the cost and the salt, so it needs no hashing to make
    /// (and no first-use job that a flood could keep restarting).
    dummy_hash: String,
    /// Where the per-address share is counted across replicas, if it is.
    shared: Option<SharedShare>,
}

/// The per-address share kept in PostgreSQL: the pool its slots are taken on, and their lease.
#[derive(Clone)]
struct SharedShare {
    pool: DbPool,
    lease: Duration,
}

impl std::fmt::Debug for SharedShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedShare")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// Why a password was not hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The client's address already has its share of the queue waiting or running; retry after
    /// this many seconds.
    #[error("this client address has its share of the password-hashing queue in use")]
    ClientBusy {
        /// Seconds to wait: about how long the queue takes to work through what it holds.
        retry_after: u64,
    },
    /// The whole queue is full; retry after this many seconds.
    #[error("the password-hashing queue is full")]
    QueueFull {
        /// Seconds to wait: about how long the queue takes to work through what it holds.
        retry_after: u64,
    },
    /// bcrypt refused the cost, the job panicked, or the hashing threads died.
    #[error("password hashing failed: {0}")]
    Failed(String),
    /// The address's share could not be counted: the database failed (a 503 when it is an outage).
    #[error("the password-hashing share could not be counted: {0}")]
    Share(#[from] SlotError),
}

impl PasswordHasher {
    /// A hasher at bcrypt cost `cost`, with one hashing thread per core and the queue bounded by
    /// `limits`.
    #[must_use]
    pub fn new(cost: u32, limits: HashQueueConfig) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::with_threads(cost, limits, threads)
    }

    fn with_threads(cost: u32, limits: HashQueueConfig, threads: usize) -> Self {
        Self {
            cost,
            pool: HashPool::start(threads, limits),
            // bcrypt's base64 has '.' for 0: a zero salt and a zero hash, both well-formed.
            dummy_hash: format!("$2b${cost:02}${}", ".".repeat(53)),
            shared: None,
        }
    }

    /// The same hasher, with each address's share (`HASH_QUEUE_MAX_PER_IP`) counted across every
    /// replica on `pool`'s database, each slot a lease of `lease` (see the module documentation).
    #[must_use]
    pub fn counted_across_replicas(mut self, pool: DbPool, lease: Duration) -> Self {
        self.shared = Some(SharedShare { pool, lease });
        self
    }

    /// Takes one of `client`'s slots across replicas, when the share is counted there and the
    /// client has an address.
    async fn take_slot(&self, client: Option<IpAddr>) -> Result<Option<Slot>, HashError> {
        let (Some(shared), Some(client)) = (&self.shared, client) else {
            return Ok(None);
        };
        // The guard exists before the statement is sent: a request dropped while it runs still
        // gives back whatever it took.
        let mut slot = Slot {
            pool: shared.pool.clone(),
            holder: Uuid::new_v4(),
            held: true,
            runtime: tokio::runtime::Handle::current(),
        };
        let max = self.pool.queue.limits.max_per_ip;
        let client = hash_slots::client_key(client);
        let taken = hash_slots::take(&shared.pool, &client, slot.holder, max, shared.lease).await;
        match taken {
            Ok(true) => Ok(Some(slot)),
            Ok(false) => {
                slot.held = false;
                Err(HashError::ClientBusy {
                    retry_after: self.pool.queue.retry_after_now(),
                })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Runs `work` through the queue for `client`, holding one of its slots across replicas for
    /// as long as the job waits or runs: the job keeps the slot too, so a request dropped while
    /// its job runs (bcrypt cannot be stopped) gives the slot back only when the job ends.
    async fn run<T: Send + 'static>(
        &self,
        client: Option<IpAddr>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let slot = self.take_slot(client).await?.map(Arc::new);
        let kept = slot.clone();
        let outcome = self
            .pool
            .run(client, move || {
                let _kept = kept;
                work()
            })
            .await;
        // The job, and its hold on the slot, has ended (a job drops what it holds before its
        // answer is handed over): given back now, before the answer, so a client that has it
        // never finds its own slot taken.
        if let Some(slot) = slot.and_then(Arc::into_inner) {
            slot.release().await;
        }
        outcome
    }

    /// Hashes a new password for `client` (`None` when there is no client address: the command
    /// line).
    ///
    /// # Errors
    /// The queue refused the job ([`HashError::ClientBusy`], [`HashError::QueueFull`]), bcrypt
    /// refused the cost, or the hashing threads died.
    pub async fn hash(
        &self,
        password: Password,
        client: Option<IpAddr>,
    ) -> Result<String, HashError> {
        let cost = self.cost;
        self.run(client, move || {
            bcrypt::hash(password.expose(), cost).map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    /// Checks `candidate` (normalised as at signup) against `stored`, or against a dummy hash when
    /// there is no stored hash, so that the answer takes as long either way. A candidate over 72
    /// bytes never matches (no such password can have been set, and bcrypt would compare only its
    /// first 72 bytes).
    ///
    /// # Errors
    /// The queue refused the job ([`HashError::ClientBusy`], [`HashError::QueueFull`]), or the
    /// hashing threads died.
    pub async fn verify(
        &self,
        candidate: String,
        stored: Option<String>,
        client: Option<IpAddr>,
    ) -> Result<bool, HashError> {
        let (hash, exists) = match stored {
            Some(hash) => (hash, true),
            None => (self.dummy_hash.clone(), false),
        };
        let candidate = Password::normalise(&candidate);
        let fits = candidate.len() <= Password::MAX_BYTES;
        let matches = self
            .run(client, move || {
                bcrypt::verify(candidate, &hash).unwrap_or(false)
            })
            .await?;
        Ok(exists && fits && matches)
    }

    /// Jobs waiting or running in the queue now, in all (the `password_hash_queue_depth` metric).
    #[must_use]
    pub fn queue_depth(&self) -> usize {
        self.pool.queue.lock().in_use
    }
}

/// One of an address's slots across replicas, held while its job waits or runs. Dropped unreleased
/// (the request's future dropped, and the job withdrawn or ended), it is given back by a task of
/// its own on `runtime`, as the last holder may be a hashing thread.
struct Slot {
    pool: DbPool,
    holder: Uuid,
    held: bool,
    runtime: tokio::runtime::Handle,
}

impl Slot {
    /// Gives the slot back now. A failure is only logged: the slot ends with its lease.
    async fn release(mut self) {
        self.held = false;
        if let Err(err) = hash_slots::release(&self.pool, self.holder).await {
            tracing::warn!(error = %err, "a password-hashing slot was not given back; it expires");
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let (pool, holder) = (self.pool.clone(), self.holder);
        // A runtime shutting down drops the task: the slot then ends with its lease.
        self.runtime.spawn(async move {
            if let Err(err) = hash_slots::release(&pool, holder).await {
                tracing::warn!(error = %err, "a withdrawn hashing slot was not given back; it expires");
            }
        });
    }
}

/// A job runs bcrypt and returns how to hand over its answer, or `None` when it found its caller
/// gone and did nothing. The hand-over comes after the job's slot is given back, so a caller that
/// has its answer never sees its own finished job still counted.
type Job = Box<dyn FnOnce() -> Option<Delivery> + Send>;
type Delivery = Box<dyn FnOnce() + Send>;

struct Entry {
    share: Option<IpAddr>,
    job: Job,
}

/// The jobs waiting, and the count of those waiting or running, in all and per share.
#[derive(Default)]
struct QueueState {
    /// Waiting jobs by ticket number: taken oldest first, withdrawn by number.
    waiting: BTreeMap<u64, Entry>,
    next_ticket: u64,
    /// Jobs waiting or running.
    in_use: usize,
    /// The same, per client address share; a share with none is removed.
    per_share: HashMap<IpAddr, usize>,
    /// How long a job has taken to run, recently (a moving average), for `Retry-After`.
    typical_run: Duration,
    stopped: bool,
}

/// The bounded queue between requests and the hashing threads.
struct Queue {
    limits: HashQueueConfig,
    threads: usize,
    state: Mutex<QueueState>,
    work: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Nothing panics while the lock is held; if something did, the counts are still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` for `share`, or refuses it: 429 first (this address is over its share, whether
    /// or not the whole queue is full too), then 503.
    fn admit(&self, share: Option<IpAddr>, job: Job) -> Result<u64, HashError> {
        let mut state = self.lock();
        if state.stopped {
            return Err(HashError::Failed(
                "the password hashing threads have stopped".into(),
            ));
        }
        let of_share = share.map_or(0, |share| state.per_share.get(&share).copied().unwrap_or(0));
        if share.is_some() && of_share >= self.limits.max_per_ip {
            return Err(HashError::ClientBusy {
                retry_after: self.retry_after(&state),
            });
        }
        if state.in_use >= self.limits.max {
            return Err(HashError::QueueFull {
                retry_after: self.retry_after(&state),
            });
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.in_use += 1;
        if let Some(share) = share {
            *state.per_share.entry(share).or_default() += 1;
        }
        state.waiting.insert(ticket, Entry { share, job });
        drop(state);
        self.work.notify_one();
        Ok(ticket)
    }

    /// Takes `ticket`'s job out of the queue if it is still waiting, giving its slot back; a job
    /// already taken by a thread gives its slot back when it ends.
    fn withdraw(&self, ticket: u64) {
        let mut state = self.lock();
        let withdrawn = state.waiting.remove(&ticket);
        if let Some(entry) = &withdrawn {
            state.release(entry.share);
        }
        drop(state);
        // The job (and its answer channel) is dropped outside the lock.
        drop(withdrawn);
    }

    /// The oldest waiting job, waiting for one; `None` once the pool is stopped.
    fn next(&self) -> Option<Entry> {
        let mut state = self.lock();
        loop {
            if state.stopped {
                return None;
            }
            if let Some((_, entry)) = state.waiting.pop_first() {
                return Some(entry);
            }
            state = self
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A job of `share` ended, after running for `ran` (`None`: it was skipped).
    fn finish(&self, share: Option<IpAddr>, ran: Option<Duration>) {
        let mut state = self.lock();
        state.release(share);
        if let Some(ran) = ran {
            state.typical_run = if state.typical_run.is_zero() {
                ran
            } else {
                (state.typical_run * 4 + ran) / 5
            };
        }
    }

    /// Seconds for the threads to work through every job waiting or running now, at the recent
    /// run time of a job; at least 1. (At cost 12, ~0.25 s a job on 2 cores, a full default queue
    /// of 64 says 8 s.) A client told this much will not find the same queue still there.
    fn retry_after(&self, state: &QueueState) -> u64 {
        let drain =
            state.typical_run.as_secs_f64() * state.in_use as f64 / self.threads.max(1) as f64;
        // `as` saturates: a drain too long for u64 seconds says u64::MAX.
        (drain.ceil() as u64).max(1)
    }

    /// [`Queue::retry_after`] for the queue as it stands now.
    fn retry_after_now(&self) -> u64 {
        self.retry_after(&self.lock())
    }

    fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        let waiting = std::mem::take(&mut state.waiting);
        drop(state);
        // Their callers see the answer channel close.
        drop(waiting);
        self.work.notify_all();
    }

    #[cfg(test)]
    fn load(&self, share: Option<IpAddr>) -> (usize, usize) {
        let state = self.lock();
        let of_share = share
            .map(client_share)
            .and_then(|share| state.per_share.get(&share).copied())
            .unwrap_or(0);
        (state.in_use, of_share)
    }
}

impl QueueState {
    fn release(&mut self, share: Option<IpAddr>) {
        self.in_use = self.in_use.saturating_sub(1);
        let Some(share) = share else { return };
        if let Some(count) = self.per_share.get_mut(&share) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_share.remove(&share);
            }
        }
    }
}

/// A queued job's claim: dropping it (the request's future dropped, or the answer received)
/// withdraws the job if no thread has taken it yet.
struct Ticket<'a> {
    queue: &'a Queue,
    number: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.queue.withdraw(self.number);
    }
}

/// Threads for CPU-bound work at the lowest scheduling priority (see the module documentation),
/// fed by the bounded queue. They end when the pool is dropped.
struct HashPool {
    queue: Arc<Queue>,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("threads", &self.queue.threads)
            .field("limits", &self.queue.limits)
            .finish_non_exhaustive()
    }
}

impl HashPool {
    fn start(threads: usize, limits: HashQueueConfig) -> Self {
        let queue = Arc::new(Queue {
            limits,
            threads,
            state: Mutex::new(QueueState::default()),
            work: Condvar::new(),
        });
        let mut running = 0;
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("bcrypt-{n}"))
                .spawn(move || {
                    lower_priority();
                    while let Some(Entry { share, job }) = queue.next() {
                        let started = Instant::now();
                        // A job catches its own panic; this only keeps the thread alive regardless.
                        let delivery = std::panic::catch_unwind(AssertUnwindSafe(job))
                            .ok()
                            .flatten();
                        queue.finish(share, delivery.is_some().then(|| started.elapsed()));
                        if let Some(deliver) = delivery {
                            deliver();
                        }
                    }
                });
            match spawned {
                Ok(_) => running += 1,
                Err(err) => {
                    tracing::error!(error = %err, "cannot start a password hashing thread");
                }
            }
        }
        if running == 0 {
            // Nothing would ever take a job: refuse them (500) rather than let them wait.
            queue.stop();
        }
        Self { queue }
    }

    /// Queues `work` for `client`, to run on the pool inside the caller's tracing span, and waits
    /// for its answer. Refused at once when the queue is full or `client` has its share in use.
    /// Dropping the returned future before a thread takes the job withdraws it unrun.
    async fn run<T: Send + 'static>(
        &self,
        client: Option<IpAddr>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (answer, answered) = oneshot::channel::<std::thread::Result<T>>();
        let span = tracing::Span::current();
        let job: Job = Box::new(move || {
            // Taken in the instant its caller went away: still nobody to hash for.
            if answer.is_closed() {
                return None;
            }
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| span.in_scope(work)));
            Some(Box::new(move || {
                let _ = answer.send(outcome);
            }))
        });
        let number = self.queue.admit(client.map(client_share), job)?;
        let _ticket = Ticket {
            queue: &self.queue,
            number,
        };
        match answered.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_panic)) => Err(HashError::Failed("a password hashing job panicked".into())),
            Err(_) => Err(HashError::Failed(
                "the password hashing threads have stopped".into(),
            )),
        }
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        self.queue.stop();
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
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    const LIMITS: HashQueueConfig = HashQueueConfig {
        max: 64,
        max_per_ip: 4,
    };

    fn password(raw: &str) -> Password {
        Password::parse(raw.to_string(), &[]).unwrap()
    }

    fn ip(raw: &str) -> Option<IpAddr> {
        Some(raw.parse().unwrap())
    }

    /// Waits, a few milliseconds at a time and for at most 5 s, until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "waited 5 s in vain for {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A one-thread pool whose thread is held by a job (from no address) until the returned
    /// sender is dropped.
    async fn held_pool(limits: HashQueueConfig) -> (Arc<HashPool>, std::sync::mpsc::Sender<()>) {
        let pool = Arc::new(HashPool::start(1, limits));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let started = Arc::new(AtomicBool::new(false));
        tokio::spawn({
            let (pool, started) = (Arc::clone(&pool), Arc::clone(&started));
            async move {
                pool.run(None, move || {
                    started.store(true, Ordering::SeqCst);
                    let _ = held.recv();
                })
                .await
            }
        });
        until("the thread to take the holding job", || {
            started.load(Ordering::SeqCst)
        })
        .await;
        (pool, release)
    }

    #[tokio::test]
    async fn the_right_password_verifies_and_a_wrong_one_does_not() {
        let hasher = PasswordHasher::new(4, LIMITS);
        let client = ip("192.0.2.1");
        let hash = hasher
            .hash(password("correct horse"), client)
            .await
            .unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()), client)
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse!".into(), Some(hash), None)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashing_threads_run_under_sched_idle() {
        let hasher = PasswordHasher::new(4, LIMITS);
        let stat = hasher
            .pool
            .run(None, || std::fs::read_to_string("/proc/thread-self/stat"))
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
        let hasher = PasswordHasher::new(4, LIMITS);
        assert!(
            !hasher
                .verify("anything at all".into(), None, None)
                .await
                .unwrap()
        );
    }

    /// Known answers from two implementations other than ours, each checked with Go's x/crypto
    /// bcrypt package: jBCrypt's test vectors (`$2a$`, the same bytes as `$2b$` below 255-byte
    /// passwords) and Apache's `htpasswd -B` (`$2y$`). `verify` recomputes the
    /// whole hash from the salt and compares all of it, so these pass only if the Blowfish the
    /// server runs (the patched copy in `vendor/blowfish`, see its PATCH.md) is bit-identical.
    #[test]
    fn known_bcrypt_vectors_verify_bit_for_bit() {
        let vectors = [
            (
                "",
                "$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
            ),
            (
                "a",
                "$2a$06$m0CrhHm10qJ3lXRY.5zDGO3rS2KdeeWLuGmsfGlMfOxih58VYVfxe",
            ),
            (
                "abc",
                "$2b$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i",
            ),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "$2a$06$.rCVZVOThsIa97pEDOxvGuRRgzG64bvtJ0938xuqzv18d3ZpQhstC",
            ),
            (
                "~!@#$%^&*()      ~!@#$%^&*()PNBFRD",
                "$2a$06$fPIsBO8qRqkjj273rfaOI.HtSV9jLDpTbZn782DC6/t7qT67P6FfO",
            ),
            (
                "correct horse battery staple",
                "$2y$05$kmAQ90DPEs0ONT.aPm/O1.gkHzsv7MJKd0zC0t4edTntUfzG9z0vG",
            ),
            (
                "Zürich-ß-72",
                "$2y$05$t7kxbOiu3rqru/Iol2COzOto..C1.og/QOWFTTMS/lken6fjUlbgO",
            ),
        ];
        for (password, hash) in vectors {
            assert_eq!(bcrypt::verify(password, hash).ok(), Some(true), "{hash}");
            let wrong = format!("{password}!");
            assert_eq!(bcrypt::verify(&wrong, hash).ok(), Some(false), "{hash}");
        }
        // Hashing, too, is byte for byte what it was: jBCrypt's salt for "a", given as bytes.
        let salt = [
            0xa3, 0x61, 0x2d, 0x8c, 0x9a, 0x37, 0xda, 0xc2, 0xf9, 0x9d, 0x94, 0xda, 0x03, 0xbd,
            0x45, 0x21,
        ];
        let hashed = bcrypt::hash_with_salt("a", 6, salt).unwrap();
        assert_eq!(
            hashed.format_for_version(bcrypt::Version::TwoA),
            "$2a$06$m0CrhHm10qJ3lXRY.5zDGO3rS2KdeeWLuGmsfGlMfOxih58VYVfxe"
        );
        // And what the server stores: `$2b$`, the cost, 22 salt and 31 hash characters.
        let fresh = bcrypt::hash("correct horse battery staple", 4).unwrap();
        assert!(fresh.starts_with("$2b$04$") && fresh.len() == 60, "{fresh}");
        assert_eq!(
            bcrypt::verify("correct horse battery staple", &fresh).ok(),
            Some(true)
        );
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does_and_matches_nothing() {
        let dummy = PasswordHasher::with_threads(12, LIMITS, 1).dummy_hash;
        let parts: bcrypt::HashParts = dummy.parse().expect("a well-formed bcrypt hash");
        assert_eq!(parts.get_cost(), 12);
        let cheap = PasswordHasher::with_threads(4, LIMITS, 1).dummy_hash;
        assert_eq!(bcrypt::verify("anything at all", &cheap).ok(), Some(false));
    }

    #[tokio::test]
    async fn a_candidate_longer_than_72_bytes_never_matches_its_truncation() {
        let hasher = PasswordHasher::new(4, LIMITS);
        let stored = "k9#Vq2!xZ".repeat(8);
        let hash = hasher.hash(password(&stored), None).await.unwrap();
        assert!(
            !hasher
                .verify(format!("{stored}extra"), Some(hash), None)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_slot_is_given_back_when_its_job_is_done() {
        let pool = HashPool::start(1, LIMITS);
        let client = ip("192.0.2.1");
        assert_eq!(pool.run(client, || 7).await.unwrap(), 7);
        // Given back before the answer is handed over: no wait needed.
        assert_eq!(pool.queue.load(client), (0, 0));
    }

    #[tokio::test]
    async fn beyond_its_share_an_address_gets_429_and_beyond_the_queue_anyone_gets_503_at_once() {
        let (pool, release) = held_pool(HashQueueConfig {
            max: 3,
            max_per_ip: 2,
        })
        .await;
        let a = ip("192.0.2.1");
        let mut waiting = Vec::new();
        for _ in 0..2 {
            let pool = Arc::clone(&pool);
            waiting.push(tokio::spawn(async move { pool.run(a, || ()).await }));
        }
        until("two jobs of A to wait", || pool.queue.load(a) == (3, 2)).await;

        // Both bounds are reached; A's own is named first.
        let refused = pool.run(a, || panic!("never runs")).await;
        assert!(
            matches!(refused, Err(HashError::ClientBusy { retry_after }) if retry_after >= 1),
            "{refused:?}"
        );
        let refused = pool.run(ip("192.0.2.2"), || panic!("never runs")).await;
        assert!(
            matches!(refused, Err(HashError::QueueFull { retry_after }) if retry_after >= 1),
            "{refused:?}"
        );
        let refused = pool.run(None, || panic!("never runs")).await;
        assert!(
            matches!(refused, Err(HashError::QueueFull { .. })),
            "{refused:?}"
        );
        assert_eq!(pool.queue.load(a), (3, 2), "refusals take no slot");

        drop(release);
        for job in waiting {
            job.await.unwrap().unwrap();
        }
        assert_eq!(pool.queue.load(a), (0, 0));
        pool.run(a, || ()).await.unwrap();
    }

    #[tokio::test]
    async fn a_job_whose_caller_is_gone_gives_its_slot_back_at_once_and_never_runs() {
        let (pool, release) = held_pool(LIMITS).await;
        let a = ip("192.0.2.1");
        let ran = Arc::new(AtomicBool::new(false));
        let gone = tokio::spawn({
            let (pool, ran) = (Arc::clone(&pool), Arc::clone(&ran));
            async move { pool.run(a, move || ran.store(true, Ordering::SeqCst)).await }
        });
        until("A's job to wait", || pool.queue.load(a) == (2, 1)).await;

        // What hyper does when the client closes its connection: the request future is dropped.
        gone.abort();
        assert!(gone.await.unwrap_err().is_cancelled());
        assert_eq!(pool.queue.load(a), (1, 0), "only the holding job is left");

        drop(release);
        // One thread takes jobs oldest first: once a later job has run, the withdrawn one would
        // have run before it.
        pool.run(a, || ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst), "the withdrawn job ran");
        assert_eq!(pool.queue.load(a), (0, 0));
    }

    #[tokio::test]
    async fn a_job_that_panics_gives_its_slot_back_and_the_thread_lives_on() {
        let pool = HashPool::start(1, LIMITS);
        let a = ip("192.0.2.1");
        let failed = pool.run(a, || -> u32 { panic!("a job panics") }).await;
        assert!(matches!(failed, Err(HashError::Failed(_))), "{failed:?}");
        assert_eq!(pool.queue.load(a), (0, 0));
        assert_eq!(pool.run(a, || 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn without_a_thread_jobs_are_refused_not_left_waiting() {
        let pool = HashPool::start(0, LIMITS);
        let refused = pool.run(ip("192.0.2.1"), || 7).await;
        assert!(matches!(refused, Err(HashError::Failed(_))), "{refused:?}");
        assert_eq!(pool.queue.load(ip("192.0.2.1")), (0, 0));
    }

    #[test]
    fn retry_after_is_the_time_to_work_through_the_queue_and_at_least_a_second() {
        let pool = HashPool::start(2, LIMITS);
        let queue = &pool.queue;
        let mut state = QueueState::default();
        assert_eq!(queue.retry_after(&state), 1, "nothing measured yet");
        state.typical_run = Duration::from_millis(250);
        state.in_use = 64;
        assert_eq!(queue.retry_after(&state), 8);
        state.in_use = 5;
        assert_eq!(queue.retry_after(&state), 1);
    }
}
