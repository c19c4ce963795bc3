//! Zero-filled segment files, prepared ahead of need by a background thread, so that a busy
//! queue's log overwrites blocks that already exist instead of appending new ones.
//!
//! Why: on ext4 (and most journalling file systems) an `fdatasync` after an append must also
//! commit the file's new size and extents to the journal; after overwriting blocks that are
//! already written it only writes the data. Measured on the benchmark machine (`dd`, 4 KiB
//! writes each followed by `fdatasync`): 221 µs per write+sync appending to a growing file,
//! 213 µs into a `fallocate`d one (its extents are "unwritten" and must be converted), 133 µs
//! overwriting a zero-filled one. Publisher confirms of persistent messages wait for that
//! sync, so it is the latency of every confirm round.
//!
//! Files live in `storage.dir/spare/` as `{n:016x}.zero` ([`SPARE_SIZE`] bytes of zeros,
//! synced before they get that name) while being made as `{n:016x}.tmp` (deleted at start).
//! A log takes one by renaming it into its own directory as its next segment
//! ([`Spares::take`]); the thread then makes another. At most [`TARGET`] wait, so the disk
//! they hold is bounded ([`SPARE_SIZE`] each). Nothing is made until a log first asks
//! ([`Spares::want`]): a broker whose queues never write a megabyte never writes a spare.
//!
//! Invariant relied on by recovery (`log.rs`): a segment made from a spare holds its records
//! from offset 0, then only zeros; a zero-length record never checks (`record.rs`), so the
//! first zero byte where a record should start is the log's clean end.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use tracing::warn;

/// Size of a spare, and the size a segment made from one rolls over at. Smaller than an
/// ordinary segment ([`SEGMENT_SIZE`](super::log::SEGMENT_SIZE)): an empty queue keeps its
/// current segment (and the pool its spare) on disk, so this is what a busy queue costs at
/// rest; a roll (a rename and a directory sync) every 2 MiB costs little.
pub const SPARE_SIZE: u64 = 2 << 20;
/// Spares kept ready.
pub const TARGET: usize = 1;
/// Directory under `storage.dir`.
pub const SPARE_DIR: &str = "spare";

#[derive(Default)]
struct State {
    /// Complete spares, ready to take.
    ready: Vec<PathBuf>,
    next: u64,
    /// A log asked: keep [`TARGET`] ready from now on.
    wanted: bool,
    closed: bool,
    thread: Option<JoinHandle<()>>,
}

/// The pool of spare segment files of one store.
pub struct Spares {
    dir: PathBuf,
    state: Mutex<State>,
    wake: Condvar,
}

impl std::fmt::Debug for Spares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spares").field("dir", &self.dir).finish()
    }
}

impl Spares {
    /// The pool in `root/spare`: complete spares left by the last run are kept (they were
    /// synced before being named `.zero`), half-made ones deleted.
    pub fn open(root: &Path) -> Arc<Spares> {
        let dir = root.join(SPARE_DIR);
        let mut state = State::default();
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let n = name
                    .split_once('.')
                    .and_then(|(hex, _)| u64::from_str_radix(hex, 16).ok());
                let complete = name.ends_with(".zero")
                    && entry.metadata().is_ok_and(|m| m.len() == SPARE_SIZE);
                match n {
                    Some(n) if complete => {
                        state.next = state.next.max(n + 1);
                        state.ready.push(path);
                    }
                    _ => {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        Arc::new(Spares {
            dir,
            state: Mutex::new(state),
            wake: Condvar::new(),
        })
    }

    /// Asks for spares to be kept ready from now on (cheap after the first call).
    pub fn want(self: &Arc<Self>) {
        let mut s = self.state.lock().unwrap();
        if s.closed {
            return;
        }
        s.wanted = true;
        if s.thread.is_none() {
            let me = self.clone();
            match std::thread::Builder::new()
                .name("warren-spare".into())
                .spawn(move || me.run())
            {
                Ok(t) => s.thread = Some(t),
                Err(e) => warn!(error = %e, "cannot start the spare segment thread"),
            }
        } else if s.ready.len() < TARGET {
            self.wake.notify_one();
        }
    }

    /// Moves a ready spare to `dest` (a new segment's path, on the same file system; the
    /// caller syncs `dest`'s directory). Returns whether it did; without one ready the
    /// caller creates an ordinary file. Asks for the next one either way.
    pub fn take(self: &Arc<Self>, dest: &Path) -> bool {
        let taken = {
            let mut s = self.state.lock().unwrap();
            s.ready.pop()
        };
        self.want();
        match taken {
            Some(path) => match fs::rename(&path, dest) {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, from = %path.display(), to = %dest.display(), "cannot move a spare segment into place; creating an ordinary one");
                    let _ = fs::remove_file(&path);
                    false
                }
            },
            None => false,
        }
    }

    /// Stops the thread (a spare half-made is deleted; complete ones stay for the next run).
    pub fn close(&self) {
        let thread = {
            let mut s = self.state.lock().unwrap();
            s.closed = true;
            self.wake.notify_one();
            s.thread.take()
        };
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Makes one spare now, on the caller's thread (tests: no waiting for the thread).
    #[cfg(test)]
    pub fn prepare_now(&self) -> io::Result<()> {
        let n = {
            let mut s = self.state.lock().unwrap();
            s.next += 1;
            s.next - 1
        };
        let tmp = self.dir.join(format!("{n:016x}.tmp"));
        let done = self.dir.join(format!("{n:016x}.zero"));
        self.make(&tmp, &vec![0u8; 1 << 20])?;
        fs::rename(&tmp, &done)?;
        self.state.lock().unwrap().ready.push(done);
        Ok(())
    }

    fn closed(&self) -> bool {
        self.state.lock().unwrap().closed
    }

    fn run(&self) {
        let zeros = vec![0u8; 1 << 20];
        loop {
            let n = {
                let mut s = self.state.lock().unwrap();
                while !s.closed && (s.ready.len() >= TARGET || !s.wanted) {
                    s = self.wake.wait(s).unwrap();
                }
                if s.closed {
                    return;
                }
                s.next += 1;
                s.next - 1
            };
            let tmp = self.dir.join(format!("{n:016x}.tmp"));
            let done = self.dir.join(format!("{n:016x}.zero"));
            match self.make(&tmp, &zeros) {
                Ok(true) => {
                    // Named under the lock: whoever sees the `.zero` file can take it.
                    let mut s = self.state.lock().unwrap();
                    match fs::rename(&tmp, &done) {
                        Ok(()) => s.ready.push(done),
                        Err(e) => {
                            warn!(error = %e, "cannot name a spare segment");
                            let _ = fs::remove_file(&tmp);
                        }
                    }
                }
                Ok(false) => {
                    let _ = fs::remove_file(&tmp);
                    return;
                }
                Err(e) => {
                    // Most likely a full disk: logs append to ordinary files meanwhile. Try
                    // again when a log next asks, not in a loop.
                    warn!(error = %e, "cannot prepare a spare segment; check free disk space");
                    let _ = fs::remove_file(&tmp);
                    self.state.lock().unwrap().wanted = false;
                }
            }
        }
    }

    /// Writes a spare's zeros and syncs them; `Ok(false)` if the store closed meanwhile.
    fn make(&self, tmp: &Path, zeros: &[u8]) -> io::Result<bool> {
        fs::create_dir_all(&self.dir)?;
        let mut f: File = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(tmp)?;
        let mut left = SPARE_SIZE;
        while left > 0 {
            if self.closed() {
                return Ok(false);
            }
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
        Ok(true)
    }
}
