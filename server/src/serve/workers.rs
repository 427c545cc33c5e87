//! The threads that run link decisions and the one that makes them durable.
//!
//! A link download is a short piece of blocking work: read the share, decide, append the audit
//! record, open and position the file (and, for a small file, read it). Run on tokio's
//! blocking pool, 64 concurrent downloads become 64 threads contending for the vault's commit
//! lock, and the machine spends its time switching between them. [`VaultWorkers`] runs that
//! work on a few long-lived threads fed by one queue instead: a busy worker takes the next job
//! without sleeping. Only one of them runs at a time while it keeps up; the others take over
//! jobs from one stuck on the disk (see [`QueueState::should_run`]).
//!
//! A counted download must be on disk before its bytes go out
//! ([`kinko_core::vault::AccessDurability::SyncCounted`]). A worker that waited for its own
//! fsync would stall the queue behind it, so the workers only commit, and [`GroupCommit`]'s
//! thread flushes for everyone: one fsync covers every decision committed before it started,
//! however many there are. A worker hands a decision that needs the flush to the flusher
//! with its answer ([`VaultWorkers::run_durable`]), so the request is woken once, when the
//! answer may go out: waking it for the decision and again for the flush cost about a tenth
//! of the server's CPU per 1 KiB link download.
//!
//! Under load the flusher waits a little before it flushes, for the decisions still in
//! progress (see [`GroupCommit::announce`]): each flush then covers more downloads. Every
//! flush costs a journal write and its `fdatasync` (and sled's flush after a general
//! commit); fewer of them leave more of the machine to the requests. Alone, a request never
//! waits: nothing else is in progress.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kinko_core::vault::Vault;
use tokio::sync::oneshot;

use super::error::ApiError;
use super::metrics::Metrics;

type Job = Box<dyn FnOnce(&Vault) + Send>;

/// A fixed set of threads running short vault jobs from one queue.
#[derive(Debug)]
pub(crate) struct VaultWorkers {
    queue: Arc<Queue>,
}

struct Queue {
    state: Mutex<QueueState>,
    /// One per worker, so that a job wakes the worker chosen for it (see
    /// [`QueueState::wake`]) and no other.
    ready: Vec<Condvar>,
}

struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
    workers: Vec<Slot>,
}

/// What a worker is doing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Waiting on its condvar for a job.
    Idle,
    /// Running a job since then, or woken then to run one.
    Busy(Instant),
    /// Awake without a job (woken spuriously, or finding another worker on the job).
    Free,
}

/// How long a worker may be on one job before another worker takes the next one. A decision
/// takes tens of microseconds; one that takes longer waits for the disk (a blob that is not in
/// the page cache) or for the CPU.
const STALL: Duration = Duration::from_millis(1);

impl QueueState {
    /// Whether worker `me` (`None`: a worker about to be woken) should take a job now: there
    /// is one, and no other worker is on a job, or the one on a job has been on it longer
    /// than [`STALL`].
    ///
    /// One worker at a time, however many there are. Two of them deciding side by side
    /// contend for the store's locks: on 2 cores with 64 connections (`wrk`) that cost about
    /// 15% more CPU per 1 KiB link download (56 against 47 µs) and 5–10% fewer requests per
    /// second than one worker. The others stand by for a worker stuck on the disk, so that
    /// one slow read does not hold up every link.
    fn should_run(&self, me: Option<usize>, now: Instant) -> bool {
        !self.jobs.is_empty()
            && self.workers.iter().enumerate().all(|(i, w)| match w {
                Slot::Busy(since) => Some(i) == me || now.duration_since(*since) > STALL,
                Slot::Idle | Slot::Free => true,
            })
    }

    /// The worker to wake for a job just queued, if one should be: the first idle one, so
    /// that the same worker (its caches warm) takes the jobs while it keeps up. It is marked
    /// busy from now, so that the next job does not wake a second one.
    fn wake(&mut self, now: Instant) -> Option<usize> {
        if !self.should_run(None, now) {
            return None;
        }
        let i = self.workers.iter().position(|w| *w == Slot::Idle)?;
        self.workers[i] = Slot::Busy(now);
        Some(i)
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queue(..)")
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl VaultWorkers {
    /// Starts `threads` workers over `vault`.
    pub(crate) fn start(vault: &Arc<Vault>, threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                closed: false,
                workers: vec![Slot::Free; threads],
            }),
            ready: (0..threads).map(|_| Condvar::new()).collect(),
        });
        for i in 0..threads {
            let (queue, vault) = (queue.clone(), vault.clone());
            std::thread::Builder::new()
                .name(format!("kinko-vault-{i}"))
                .spawn(move || worker(&queue, &vault, i))?;
        }
        Ok(VaultWorkers { queue })
    }

    /// Runs `f` on a worker and returns its result.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Vault) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.queue(Box::new(move |v: &Vault| {
            let _ = tx.send(f(v));
        }))?;
        rx.await.map_err(job_failed)
    }

    /// Runs `f`, the decision `announced`, on a worker and returns its result: at once when
    /// it needs no flush (its second value is false), else once a flush that started after it
    /// has made it durable.
    ///
    /// The worker hands the result to the flusher itself, so the request is woken once, when
    /// its answer is ready, not once for the decision and again for the flush.
    pub(crate) async fn run_durable<T, F>(&self, announced: Announced, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Vault) -> (T, bool) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.queue(Box::new(move |v: &Vault| {
            let (t, must_flush) = f(v);
            if must_flush {
                announced.then_tell(Box::new(move |flushed| {
                    let _ = tx.send(flushed.map(|()| t));
                }));
            } else {
                drop(announced);
                let _ = tx.send(Ok(t));
            }
        }))?;
        rx.await.map_err(job_failed)?
    }

    fn queue(&self, job: Job) -> Result<(), ApiError> {
        let wake = {
            let mut s = lock(&self.queue.state);
            if s.closed {
                return Err(ApiError::unavailable("the server is stopping"));
            }
            s.jobs.push_back(job);
            s.wake(Instant::now())
        };
        if let Some(i) = wake {
            self.queue.ready[i].notify_one();
        }
        Ok(())
    }
}

/// A job that ended without an answer: it panicked (the worker caught it).
fn job_failed(_: oneshot::error::RecvError) -> ApiError {
    tracing::error!("vault job failed");
    ApiError::internal()
}

impl VaultWorkers {
    /// Jobs queued and not yet taken by a worker.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        lock(&self.queue.state).jobs.len()
    }

    /// Refuses new jobs; the workers finish the queued ones and exit.
    pub(crate) fn close(&self) {
        lock(&self.queue.state).closed = true;
        for ready in &self.queue.ready {
            ready.notify_one();
        }
    }
}

impl Drop for VaultWorkers {
    fn drop(&mut self) {
        self.close();
    }
}

fn worker(queue: &Queue, vault: &Vault, me: usize) {
    let mut s = lock(&queue.state);
    loop {
        let now = Instant::now();
        if s.should_run(Some(me), now) {
            let job = s.jobs.pop_front().expect("should_run saw a job");
            s.workers[me] = Slot::Busy(now);
            drop(s);
            // A panicking job drops its sender: its caller gets an internal error, the
            // worker goes on.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(vault)));
            s = lock(&queue.state);
            s.workers[me] = Slot::Free;
            continue;
        }
        if s.closed && s.jobs.is_empty() {
            // Workers that stood by while this one drained the queue may be waiting: each
            // worker that leaves wakes them all, so every one of them sees the close.
            for ready in &queue.ready {
                ready.notify_one();
            }
            return;
        }
        s.workers[me] = Slot::Idle;
        s = queue.ready[me]
            .wait(s)
            .unwrap_or_else(PoisonError::into_inner);
        // Woken for a job (the waker marked this worker busy), for the close, or spuriously.
        if s.workers[me] == Slot::Idle {
            s.workers[me] = Slot::Free;
        }
    }
}

/// A request's presence, for a job it queued: [`Requester::gone`] once the request no longer
/// waits for the job's answer.
pub(crate) fn requester() -> (Waiting, Requester) {
    let (tx, rx) = oneshot::channel();
    (Waiting { _rx: rx }, Requester(tx))
}

/// Held by a request for as long as it waits for its job. The request's future drops it when
/// the client goes away (hyper drops the future of a request whose connection closed).
#[derive(Debug)]
pub(crate) struct Waiting {
    _rx: oneshot::Receiver<std::convert::Infallible>,
}

/// Moved into the job, which asks it whether anyone still waits.
#[derive(Debug)]
pub(crate) struct Requester(oneshot::Sender<std::convert::Infallible>);

impl Requester {
    /// Whether the request's [`Waiting`] has been dropped: nobody will read the job's answer.
    pub(crate) fn gone(&self) -> bool {
        self.0.is_closed()
    }
}

/// How long a flush may wait for the decisions in progress to join it. Long enough for a
/// queued decision to run and ask (a decision takes tens of microseconds), short next to the
/// flush itself (about half a millisecond here) and to a request's latency under load.
const GATHER: Duration = Duration::from_micros(250);

/// One flushing thread shared by every request that needs its decision on disk.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    shared: Arc<FlushShared>,
}

#[derive(Debug)]
struct FlushShared {
    state: Mutex<FlushState>,
    wake: Condvar,
    /// Decisions announced and not yet waiting for a flush (nor given up).
    deciding: AtomicUsize,
    metrics: Arc<Metrics>,
}

/// Told the outcome of the flush it waited for: `Ok` once everything committed before it
/// asked is on disk.
type Waiter = Box<dyn FnOnce(Result<(), ApiError>) + Send>;

#[derive(Default)]
struct FlushState {
    /// Whether the flusher waits for work (notified only then: the standard condvar makes a
    /// futex system call for every notification, waiter or not).
    idle: bool,
    /// Whether the flusher waits for `deciding` to fall to zero (notified only then).
    gathering: bool,
    /// The requests waiting for the next flush, each told alone (a broadcast would wake those
    /// that arrived during a flush only to send them back to sleep).
    waiting: Vec<Waiter>,
    stopping: bool,
}

impl std::fmt::Debug for FlushState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushState")
            .field("waiting", &self.waiting.len())
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the flushing thread, which counts its flushes in `metrics`.
    pub(crate) fn start(vault: &Arc<Vault>, metrics: &Arc<Metrics>) -> std::io::Result<Self> {
        Self::start_gathering(vault, metrics, GATHER)
    }

    fn start_gathering(
        vault: &Arc<Vault>,
        metrics: &Arc<Metrics>,
        gather: Duration,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(FlushShared {
            state: Mutex::default(),
            wake: Condvar::new(),
            deciding: AtomicUsize::new(0),
            metrics: metrics.clone(),
        });
        let (s, vault) = (shared.clone(), vault.clone());
        std::thread::Builder::new()
            .name("kinko-flush".into())
            .spawn(move || flusher(&s, &vault, gather))?;
        Ok(GroupCommit { shared })
    }

    /// Announces a decision about to be made that may need a flush. While it is announced, a
    /// flush waits (up to [`GATHER`]) for it: it ends by asking with
    /// [`Announced::flushed`] or by being dropped.
    pub(crate) fn announce(&self) -> Announced {
        self.shared.deciding.fetch_add(1, Ordering::AcqRel);
        Announced {
            shared: self.shared.clone(),
            deciding: true,
        }
    }

    /// A decision not announced: flushes do not wait for it, but it may still ask for one.
    pub(crate) fn unannounced(&self) -> Announced {
        Announced {
            shared: self.shared.clone(),
            deciding: false,
        }
    }
}

/// A decision in progress, which may ask for a flush (see [`GroupCommit::announce`]).
#[must_use]
#[derive(Debug)]
pub(crate) struct Announced {
    shared: Arc<FlushShared>,
    /// Counted in [`FlushShared::deciding`] until it asks or is dropped.
    deciding: bool,
}

impl Announced {
    /// Returns once a flush that started after this call has finished: everything committed
    /// before the call is then on disk.
    pub(crate) async fn flushed(self) -> Result<(), ApiError> {
        let (tx, rx) = oneshot::channel();
        self.then_tell(Box::new(move |flushed| {
            let _ = tx.send(flushed);
        }));
        rx.await.unwrap_or_else(|_| Err(ApiError::internal()))
    }

    /// Hands `waiter` to the next flush that starts after this call, which tells it its
    /// outcome (on success, everything committed before the call is on disk); or tells it at
    /// once that the server is stopping.
    fn then_tell(mut self, waiter: Waiter) {
        let shared = &self.shared;
        let wake = {
            let mut s = lock(&shared.state);
            if s.stopping {
                drop(s);
                waiter(Err(ApiError::unavailable("the server is stopping")));
                return;
            }
            s.waiting.push(waiter);
            // Waiting now, no longer deciding: counted out here, under the lock, so that a
            // flusher about to gather sees both changes at once.
            let last = std::mem::take(&mut self.deciding)
                && shared.deciding.fetch_sub(1, Ordering::AcqRel) == 1;
            s.idle || (last && s.gathering)
        };
        if wake {
            shared.wake.notify_one();
        }
        shared.metrics.flush_waits.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Announced {
    fn drop(&mut self) {
        let shared = &self.shared;
        if self.deciding
            && shared.deciding.fetch_sub(1, Ordering::AcqRel) == 1
            && lock(&shared.state).gathering
        {
            shared.wake.notify_one();
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        lock(&self.shared.state).stopping = true;
        self.shared.wake.notify_all();
    }
}

fn flusher(shared: &FlushShared, vault: &Vault, gather: Duration) {
    let metrics = &shared.metrics;
    loop {
        // Everyone waiting now asked after their commit, and this flush starts after they
        // asked: it covers their commits. Those who ask meanwhile wait for the next one.
        let batch = {
            let mut s = lock(&shared.state);
            while s.waiting.is_empty() && !s.stopping {
                s.idle = true;
                s = shared.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
                s.idle = false;
            }
            if s.waiting.is_empty() {
                return; // stopping, nobody waits
            }
            // Other decisions are in progress: give them a moment to join this flush. The
            // last one to finish deciding wakes us (it reads `gathering` under this lock).
            let until = Instant::now() + gather;
            while shared.deciding.load(Ordering::Acquire) > 0 && !s.stopping {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                s.gathering = true;
                s = shared
                    .wake
                    .wait_timeout(s, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                s.gathering = false;
            }
            std::mem::take(&mut s.waiting)
        };
        // A panic would end this thread and leave every later request waiting forever: it
        // counts as a failed flush instead.
        let ok = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vault.flush())) {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "flushing the vault failed; the waiting requests fail");
                false
            }
            Err(_) => {
                tracing::error!("flushing the vault panicked; the waiting requests fail");
                false
            }
        };
        metrics.flushes.fetch_add(1, Ordering::Relaxed);
        if !ok {
            metrics.flush_failures.fetch_add(1, Ordering::Relaxed);
        }
        for waiter in batch {
            waiter(if ok {
                Ok(())
            } else {
                Err(ApiError::internal())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinko_core::vault::{KeyRing, MasterKey, Timestamp, VaultConfig};

    fn vault(dir: &std::path::Path) -> Arc<Vault> {
        let keys = KeyRing::new(MasterKey::generate());
        let (v, _) = Vault::open(dir, VaultConfig::new(keys), Timestamp::now()).unwrap();
        Arc::new(v)
    }

    #[tokio::test]
    async fn workers_run_jobs_and_survive_a_panicking_one() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let workers = VaultWorkers::start(&v, 2).unwrap();
        let jobs: Vec<_> = (0..100u64)
            .map(|i| workers.run(move |v: &Vault| (i, v.frozen().unwrap())))
            .collect();
        for (i, job) in jobs.into_iter().enumerate() {
            assert_eq!(job.await.unwrap(), (i as u64, false));
        }
        let failed = workers
            .run(|_: &Vault| -> u8 { panic!("a job that fails") })
            .await;
        assert_eq!(failed.unwrap_err().status, 500);
        for _ in 0..4 {
            assert_eq!(workers.run(|_: &Vault| 7).await.unwrap(), 7);
        }
    }

    /// A worker stuck on one job does not hold up the queue: the next job runs on another
    /// worker, while the first is still stuck.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_worker_does_not_hold_up_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let workers = Arc::new(VaultWorkers::start(&v, 2).unwrap());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let stuck = {
            let workers = workers.clone();
            tokio::spawn(async move {
                workers
                    .run(move |_: &Vault| {
                        started_tx.send(std::thread::current().id()).unwrap();
                        release_rx.recv().unwrap();
                    })
                    .await
            })
        };
        let stuck_on = tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        // Past the point where the stuck worker counts as stuck.
        tokio::time::sleep(STALL * 5).await;
        let next = workers.run(|_: &Vault| std::thread::current().id());
        // Not a measure of time: the next job would wait forever behind the stuck one.
        let next_on = tokio::time::timeout(Duration::from_secs(60), next)
            .await
            .expect("the next job waited for the stuck worker")
            .unwrap();
        assert_ne!(next_on, stuck_on);
        release_tx.send(()).unwrap();
        stuck.await.unwrap().unwrap();
        // Both workers are free again; the queue still runs.
        assert_eq!(workers.run(|_: &Vault| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_closed_queue_answers_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let workers = VaultWorkers::start(&v, 1).unwrap();
        workers.close();
        assert_eq!(workers.run(|_: &Vault| ()).await.unwrap_err().status, 503);
    }

    /// A durable job's answer comes after a flush when the job says it needs one, and without
    /// one otherwise; once the flusher is stopping, a job that needs one is told so.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_durable_job_answers_after_the_flush_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let metrics = Arc::new(Metrics::default());
        let gc = GroupCommit::start(&v, &metrics).unwrap();
        let workers = VaultWorkers::start(&v, 1).unwrap();
        let counts = || {
            (
                metrics.flushes.load(Ordering::Relaxed),
                metrics.flush_waits.load(Ordering::Relaxed),
            )
        };

        let none = workers.run_durable(gc.announce(), |_: &Vault| (7, false));
        assert_eq!(none.await.unwrap(), 7);
        assert_eq!(counts(), (0, 0), "a job that needs no flush waited for one");

        for (i, announced) in [gc.announce(), gc.unannounced()].into_iter().enumerate() {
            let flushed = workers.run_durable(announced, |_: &Vault| (8, true));
            assert_eq!(flushed.await.unwrap(), 8);
            // The flusher counts a flush before it tells its waiters.
            assert_eq!(counts(), (i as u64 + 1, i as u64 + 1));
        }

        drop(gc);
        let announced = GroupCommit::start(&v, &metrics).unwrap();
        let announced = {
            let a = announced.announce();
            drop(announced); // stops its flusher
            a
        };
        let stopping = workers.run_durable(announced, |_: &Vault| (9, true));
        assert_eq!(stopping.await.unwrap_err().status, 503);
    }

    /// Many concurrent waiters are all released, each by a flush that started after it asked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_flush_releases_every_waiter_that_asked_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let metrics = Arc::new(Metrics::default());
        let gc = Arc::new(GroupCommit::start(&v, &metrics).unwrap());
        let counts = || {
            (
                metrics.flushes.load(Ordering::Relaxed),
                metrics.flush_failures.load(Ordering::Relaxed),
                metrics.flush_waits.load(Ordering::Relaxed),
            )
        };
        let waiters: Vec<_> = (0..200)
            .map(|_| {
                let gc = gc.clone();
                tokio::spawn(async move { gc.announce().flushed().await })
            })
            .collect();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        let (flushes, failures, waits) = counts();
        assert!(
            (1..=200).contains(&flushes),
            "{flushes} flushes for 200 waiters"
        );
        assert_eq!((failures, waits), (0, 200));
        // A later request needs a later flush.
        gc.announce().flushed().await.unwrap();
        assert_eq!(counts(), (flushes + 1, 0, 201));
    }

    /// A flush waits for the announced decisions: one that asks joins it, one dropped (it
    /// needed no flush) releases it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_waits_for_the_decisions_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let metrics = Arc::new(Metrics::default());
        // Only the announced decisions can end this wait; if they did not, the test would hang.
        let hour = Duration::from_secs(3600);
        let gc = Arc::new(GroupCommit::start_gathering(&v, &metrics, hour).unwrap());
        let flushes = || metrics.flushes.load(Ordering::Relaxed);
        let asked = |n| {
            let metrics = metrics.clone();
            async move {
                while metrics.flush_waits.load(Ordering::Relaxed) < n {
                    tokio::task::yield_now().await;
                }
            }
        };
        let spawn_waiter = || {
            let gc = gc.clone();
            tokio::spawn(async move { gc.announce().flushed().await })
        };

        let deciding = gc.announce();
        let first = spawn_waiter();
        asked(1).await;
        assert_eq!(flushes(), 0, "flushed while a decision was in progress");
        deciding.flushed().await.unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(flushes(), 1, "one flush covers both");

        let deciding = gc.announce();
        let second = spawn_waiter();
        asked(3).await;
        assert_eq!(flushes(), 1);
        drop(deciding);
        second.await.unwrap().unwrap();
        assert_eq!(flushes(), 2);
    }
}
