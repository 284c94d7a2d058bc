//! Stream ids that outlive the hub: a small state file maps the names streams were last seen
//! under to their ids, so a client that comes back after a restart (recognised by its name)
//! keeps its id and saved player URLs (`/streams/7.mjpg`) keep working.
//!
//! The file (`vidcast-streams.tsv` in `--state-dir`, else in the `--record` directory) holds one
//! `id<TAB>name` line per name, in the order they were given, at most [`MAX_REMEMBERED`] (the
//! oldest forgotten first), so it stays under about 80 KB whatever clients do. Names cannot
//! hold a tab or a newline (the protocol refuses control characters). It is rewritten only when
//! a name gets an id it did not have, by one writer thread at a time off the async runtime, at
//! most once per [`MIN_WRITE_INTERVAL`] (a client cycling through fresh names causes one write per
//! interval, not one per connection; what changed meanwhile goes out in the next).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::warn;

use crate::stream::registry::{lock, StreamId};

/// Names remembered at most.
pub(crate) const MAX_REMEMBERED: usize = 1024;

/// Writes of the state file are this far apart at least; changes meanwhile are coalesced.
pub(crate) const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(250);

/// The state file's name in its directory.
pub const FILE_NAME: &str = "vidcast-streams.tsv";

/// Names and the ids they were given, oldest first; bounded by [`MAX_REMEMBERED`].
///
/// Only ids from an earlier run are given back ([`RememberedIds::get`]), each once: within a
/// run the registry's own rule holds (an offline stream's id goes back only to the client that
/// owned it, and a stream forgotten in this run comes back with a new id), so a stranger
/// cannot take over the id, and with it the restream targets, of a stream of this run.
#[derive(Debug, Default)]
pub struct RememberedIds {
    /// (id, name, from an earlier run and not yet claimed in this one).
    entries: VecDeque<(StreamId, String, bool)>,
    file: Option<PathBuf>,
    /// The newest contents not yet written, shared with the writer.
    pending: Arc<Mutex<Option<String>>>,
    /// Whether a writer thread is running (at most one is).
    writer_running: Arc<AtomicBool>,
    /// Times the file was written.
    writes: Arc<AtomicU64>,
}

impl RememberedIds {
    /// Remembers nothing and writes nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// The ids remembered in `dir` (none if the file is missing; lines that do not parse are
    /// skipped, and said once); changes are written back there.
    pub fn load(dir: &Path) -> Self {
        let file = dir.join(FILE_NAME);
        let mut ids = Self {
            file: Some(file.clone()),
            ..Self::default()
        };
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return ids,
            Err(e) => {
                warn!(
                    "cannot read stream ids from {}: {e}; starting afresh",
                    file.display()
                );
                return ids;
            }
        };
        let mut bad = 0usize;
        for line in text.lines().filter(|l| !l.is_empty()) {
            match line
                .split_once('\t')
                .and_then(|(id, name)| Some((id.parse().ok()?, name)))
            {
                Some((id, name)) if !name.is_empty() && name.len() <= 64 => {
                    ids.note_in_memory(id, name);
                    if let Some(last) = ids.entries.back_mut() {
                        last.2 = true;
                    }
                }
                _ => bad += 1,
            }
        }
        if bad > 0 {
            warn!(
                "{}: {bad} line(s) that are not `id<TAB>name` skipped",
                file.display()
            );
        }
        ids
    }

    /// The id `name` had in an earlier run, unless a client of this run claimed it already.
    pub fn get(&self, name: &str) -> Option<StreamId> {
        self.entries
            .iter()
            .rev()
            .find(|(_, n, earlier)| *earlier && n == name)
            .map(|&(id, ..)| id)
    }

    /// The largest id remembered (new ids start above it).
    pub fn max_id(&self) -> Option<StreamId> {
        self.entries.iter().map(|&(id, ..)| id).max()
    }

    /// How many names are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Notes that `name` has `id` now. `true` when that is news (the file needs writing).
    fn note_in_memory(&mut self, id: StreamId, name: &str) -> bool {
        if self
            .entries
            .back()
            .is_some_and(|(i, n, earlier)| *i == id && n == name && !earlier)
        {
            return false;
        }
        let known = self
            .entries
            .iter()
            .position(|(i, n, _)| *i == id && n == name);
        // One name per id and one id per name; claimed in this run now.
        self.entries.retain(|(i, n, _)| *i != id && n != name);
        self.entries.push_back((id, name.to_owned(), false));
        while self.entries.len() > MAX_REMEMBERED {
            self.entries.pop_front();
        }
        known.is_none()
    }

    /// Notes that `name` has `id` now and, when that is news and there is a file, writes it
    /// (off the async runtime when there is one).
    pub fn note(&mut self, id: StreamId, name: &str) {
        if !self.note_in_memory(id, name) {
            return;
        }
        let Some(file) = self.file.clone() else {
            return;
        };
        let contents: String = self
            .entries
            .iter()
            .map(|(id, name, _)| format!("{id}\t{name}\n"))
            .collect();
        *lock(&self.pending) = Some(contents);
        if tokio::runtime::Handle::try_current().is_err() {
            // No runtime to keep free (tools, tests): write now.
            self.write_pending(&file);
            return;
        }
        if self.writer_running.swap(true, Ordering::AcqRel) {
            return; // the running writer takes the newest contents
        }
        let writer = Self {
            entries: VecDeque::new(),
            file: None,
            pending: Arc::clone(&self.pending),
            writer_running: Arc::clone(&self.writer_running),
            writes: Arc::clone(&self.writes),
        };
        let spawned = std::thread::Builder::new()
            .name("vidcast-ids".into())
            .spawn(move || writer.write_until_idle(&file));
        if let Err(e) = spawned {
            self.writer_running.store(false, Ordering::Release);
            warn!("cannot start the stream-id writer: {e}");
        }
    }

    /// Times the state file was written (coalesced: fewer than the names noted).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Writes the newest pending contents, if any; `false` when there were none.
    fn write_pending(&self, file: &Path) -> bool {
        let Some(contents) = lock(&self.pending).take() else {
            return false;
        };
        if let Err(e) = write_atomically(file, &contents) {
            warn!("cannot save stream ids to {}: {e}", file.display());
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The writer thread: writes, then waits [`MIN_WRITE_INTERVAL`] before writing what came
    /// meanwhile; ends when nothing is pending.
    fn write_until_idle(&self, file: &Path) {
        loop {
            if self.write_pending(file) {
                std::thread::sleep(MIN_WRITE_INTERVAL);
                continue;
            }
            self.writer_running.store(false, Ordering::Release);
            // A note between the empty take and the store saw a running writer and left its
            // contents to it: take them, unless a new writer already has.
            if lock(&self.pending).is_none() || self.writer_running.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}

/// Writes `contents` to a temporary file beside `file`, then renames it over `file`, so a
/// crash leaves the old file or the new one, never half of one.
fn write_atomically(file: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("tsv.tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vidcast-ids-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn ids_survive_a_reload_and_the_file_stays_bounded() {
        let dir = scratch("bounded");
        let mut ids = RememberedIds::load(&dir);
        assert!(ids.is_empty());
        for i in 0..(MAX_REMEMBERED as u64 + 500) {
            ids.note(StreamId::new(i + 1), &format!("cam-{i}"));
        }
        ids.note(StreamId::new(7), "cam-6");
        assert_eq!(
            ids.get("cam-6"),
            None,
            "ids of this run are not given back by name"
        );
        let again = RememberedIds::load(&dir);
        assert_eq!(again.len(), MAX_REMEMBERED);
        assert_eq!(again.get("cam-1523"), Some(StreamId::new(1524)));
        assert_eq!(again.get("cam-0"), None, "the oldest is forgotten");
        assert_eq!(
            again.max_id(),
            Some(StreamId::new(MAX_REMEMBERED as u64 + 500))
        );
        let size = std::fs::metadata(dir.join(FILE_NAME)).unwrap().len();
        assert!(size < 80 * 1024, "{size} bytes");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_burst_of_new_names_is_written_coalesced_and_completely() {
        let dir = scratch("burst");
        let mut ids = RememberedIds::load(&dir);
        for i in 0..300u64 {
            ids.note(StreamId::new(i + 1), &format!("cam-{i}"));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let complete = loop {
            let again = RememberedIds::load(&dir);
            if again.get("cam-299") == Some(StreamId::new(300)) {
                break again;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the last name was never written"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(complete.len(), 300);
        let writes = ids.writes();
        assert!((1..=20).contains(&writes), "{writes} writes for 300 names");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_name_has_one_id_and_an_id_one_name_and_bad_lines_are_skipped() {
        let dir = scratch("one");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE_NAME), "3\tgarage\nnot a line\n4\tdoor\n").unwrap();
        let mut ids = RememberedIds::load(&dir);
        assert_eq!(
            (ids.get("garage"), ids.get("door")),
            (Some(StreamId::new(3)), Some(StreamId::new(4)))
        );
        ids.note(StreamId::new(3), "garage");
        assert_eq!(ids.get("garage"), None, "claimed once");
        ids.note(StreamId::new(4), "shed");
        assert_eq!(ids.get("door"), None, "id 4 has another name now");
        let again = RememberedIds::load(&dir);
        assert_eq!(
            (again.get("garage"), again.get("door"), again.get("shed")),
            (Some(StreamId::new(3)), None, Some(StreamId::new(4)))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
