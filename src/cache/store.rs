//! The response cache's storage: a bounded in-memory store behind pingora-cache's `Storage`
//! trait (cache lookup, miss fill, revalidation, purge). TinyUFO decides what to evict under a
//! byte budget; a side index of primary keys (the `host` + path strings) allows purging by key
//! or prefix. Lookups are lock-free (TinyUFO); writes, evictions and purges take one mutex,
//! which keeps the index and the store in step.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora_cache::key::{CacheHashKey, HashBinary};
use pingora_cache::storage::{HandleHit, HandleMiss, MissFinishType};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta, HitHandler, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage};
use pingora_error::{Error, ErrorType, Result};
use tinyufo::TinyUfo;

/// TinyUFO weighs entries in `u16`: one unit is this many bytes.
const WEIGHT_UNIT: u64 = 1024;
/// Bytes counted per entry on top of its body and header (key, index, bookkeeping).
const ENTRY_OVERHEAD: u64 = 256;
/// Expected mean entry size, to size TinyUFO's tables for a budget.
const EXPECTED_ENTRY_SIZE: u64 = 16 * 1024;

/// One cached response: the serialized `CacheMeta` and the whole body.
struct Entry {
    /// Which write put it there: an eviction of an older write leaves the index alone.
    seq: u64,
    hash: HashBinary,
    meta: (Vec<u8>, Vec<u8>),
    body: Bytes,
}

/// What the index knows of a stored entry.
struct Indexed {
    primary: Arc<str>,
    seq: u64,
    size: u64,
}

#[derive(Default)]
struct Index {
    by_hash: HashMap<HashBinary, Indexed>,
    /// Primary key → the stored variants (combined hashes) under it.
    by_primary: BTreeMap<Arc<str>, Vec<HashBinary>>,
}

impl Index {
    fn insert(&mut self, hash: HashBinary, primary: &str, seq: u64, size: u64) -> Option<u64> {
        let primary: Arc<str> = match self.by_primary.get_key_value(primary) {
            Some((k, _)) => k.clone(),
            None => Arc::from(primary),
        };
        let old = self.by_hash.insert(
            hash,
            Indexed {
                primary: primary.clone(),
                seq,
                size,
            },
        );
        if old.is_none() {
            self.by_primary.entry(primary).or_default().push(hash);
        }
        old.map(|o| o.size)
    }

    /// Forget `hash` if the write `seq` (or any write, when `None`) is the one indexed.
    fn remove(&mut self, hash: &HashBinary, seq: Option<u64>) -> Option<u64> {
        let indexed = self.by_hash.get(hash)?;
        if seq.is_some_and(|s| s != indexed.seq) {
            return None;
        }
        let indexed = self.by_hash.remove(hash)?;
        if let Some(hashes) = self.by_primary.get_mut(&indexed.primary) {
            hashes.retain(|h| h != hash);
            if hashes.is_empty() {
                self.by_primary.remove(&indexed.primary);
            }
        }
        Some(indexed.size)
    }
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub entries: u64,
    pub bytes: u64,
}

/// The bounded in-memory store.
pub struct MemoryStore {
    entries: TinyUfo<HashBinary, Arc<Entry>>,
    index: Mutex<Index>,
    budget: u64,
    /// Bytes held now (what the budget is compared with).
    used: AtomicU64,
    evictions: AtomicU64,
    seq: AtomicU64,
}

impl MemoryStore {
    /// A store holding at most `budget` bytes of responses.
    pub fn new(budget: u64) -> Self {
        let units = (budget / WEIGHT_UNIT).max(1);
        let expected = (budget / EXPECTED_ENTRY_SIZE).clamp(64, 1 << 20);
        MemoryStore {
            entries: TinyUfo::new(usize::try_from(units).unwrap_or(usize::MAX), expected as usize),
            index: Mutex::new(Index::default()),
            budget,
            used: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            seq: AtomicU64::new(0),
        }
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes of responses held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Entries evicted for room since the start.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.lock().by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock leaves the index as consistent as any single step.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store (or replace) the response under `hash`; evicts what no longer fits. An entry
    /// larger than the whole budget is not stored.
    fn insert(&self, hash: HashBinary, primary: &str, meta: (Vec<u8>, Vec<u8>), body: Bytes) -> bool {
        let size =
            body.len() as u64 + meta.0.len() as u64 + meta.1.len() as u64 + primary.len() as u64 + ENTRY_OVERHEAD;
        let units = size.div_ceil(WEIGHT_UNIT);
        let Ok(weight) = u16::try_from(units) else { return false };
        if size > self.budget {
            return false;
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry { seq, hash, meta, body });
        let mut index = self.lock();
        // Always admitted: requests waiting on the cache lock read it as soon as it is written.
        let evicted = self.entries.force_put(hash, entry, weight);
        if let Some(old) = index.insert(hash, primary, seq, size) {
            self.used.fetch_sub(old, Ordering::Relaxed);
        }
        self.used.fetch_add(size, Ordering::Relaxed);
        for kv in evicted {
            // TinyUFO hands back its own hash of the key; the entry says which key and write.
            if let Some(size) = index.remove(&kv.data.hash, Some(kv.data.seq)) {
                self.used.fetch_sub(size, Ordering::Relaxed);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }

    fn remove_hash(&self, index: &mut Index, hash: &HashBinary) -> Option<u64> {
        let size = index.remove(hash, None)?;
        self.entries.remove(hash);
        self.used.fetch_sub(size, Ordering::Relaxed);
        Some(size)
    }

    /// Remove every variant stored under exactly this primary key (`host` + path).
    pub fn purge_key(&self, primary: &str) -> Purged {
        let mut index = self.lock();
        let hashes = index.by_primary.get(primary).cloned().unwrap_or_default();
        self.purge_hashes(&mut index, &hashes)
    }

    /// Remove every entry whose primary key starts with `prefix`.
    pub fn purge_prefix(&self, prefix: &str) -> Purged {
        let mut index = self.lock();
        let hashes: Vec<HashBinary> = index
            .by_primary
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        self.purge_hashes(&mut index, &hashes)
    }

    fn purge_hashes(&self, index: &mut Index, hashes: &[HashBinary]) -> Purged {
        let mut purged = Purged::default();
        for h in hashes {
            if let Some(size) = self.remove_hash(index, h) {
                purged.entries += 1;
                purged.bytes += size;
            }
        }
        purged
    }

    fn get(&self, hash: &HashBinary) -> Option<Arc<Entry>> {
        self.entries.get(hash)
    }
}

fn storage_error(what: &'static str, e: impl std::fmt::Display) -> Box<Error> {
    Error::explain(ErrorType::InternalError, format!("cache store: {what}: {e}"))
}

#[async_trait]
impl Storage for MemoryStore {
    async fn lookup(&'static self, key: &CacheKey, _trace: &SpanHandle) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(entry) = self.get(&key.combined_bin()) else {
            return Ok(None);
        };
        let meta = CacheMeta::deserialize(&entry.meta.0, &entry.meta.1)?;
        let end = entry.body.len();
        let hit = Hit {
            entry,
            start: 0,
            end,
            done: false,
        };
        Ok(Some((meta, Box::new(hit))))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let primary = key
            .primary_key_str()
            .ok_or_else(|| storage_error("key", "primary key is not UTF-8"))?;
        Ok(Box::new(Fill {
            store: self,
            hash: key.combined_bin(),
            primary: primary.into(),
            meta: meta.serialize()?,
            body: BytesMut::new(),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _kind: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let hash = target.key().combined_bin();
        let mut index = self.lock();
        Ok(match self.remove_hash(&mut index, &hash) {
            Some(_) => PurgeOutcome::Purged(None),
            None => PurgeOutcome::NotFound,
        })
    }

    async fn update_meta(&'static self, key: &CacheKey, meta: &CacheMeta, _trace: &SpanHandle) -> Result<bool> {
        let hash = key.combined_bin();
        let Some(old) = self.get(&hash) else { return Ok(false) };
        let primary = key
            .primary_key_str()
            .ok_or_else(|| storage_error("key", "primary key is not UTF-8"))?;
        Ok(self.insert(hash, primary, meta.serialize()?, old.body.clone()))
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// Reads one stored body (whole, or the range Pingora seeks to).
struct Hit {
    entry: Arc<Entry>,
    start: usize,
    end: usize,
    done: bool,
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(self.entry.body.slice(self.start..self.end)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.entry.body.len();
        if start >= len {
            return Err(storage_error("seek", format!("start {start} beyond {len} bytes")));
        }
        self.start = start;
        self.end = end.map_or(len, |e| e.min(len));
        self.done = false;
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// Collects a response body from the origin; stored when complete.
struct Fill {
    store: &'static MemoryStore,
    hash: HashBinary,
    primary: Box<str>,
    meta: (Vec<u8>, Vec<u8>),
    body: BytesMut,
}

#[async_trait]
impl HandleMiss for Fill {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        if (self.body.len() + data.len()) as u64 > self.store.budget {
            return Err(storage_error("fill", "response larger than the cache"));
        }
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let size = self.body.len();
        let fill = *self;
        fill.store
            .insert(fill.hash, &fill.primary, fill.meta, fill.body.freeze());
        Ok(MissFinishType::Created(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_cache::trace::Span;
    use pingora_http::ResponseHeader;
    use std::time::{Duration, SystemTime};

    fn store(budget: u64) -> &'static MemoryStore {
        Box::leak(Box::new(MemoryStore::new(budget)))
    }

    fn meta() -> CacheMeta {
        let now = SystemTime::now();
        let mut h = ResponseHeader::build(200, None).expect("header");
        h.insert_header("cache-control", "max-age=60").expect("header");
        CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, h)
    }

    async fn put(s: &'static MemoryStore, primary: &str, body: &[u8]) {
        let key = CacheKey::new(primary, "");
        let span = Span::inactive();
        let mut fill = s.get_miss_handler(&key, &meta(), &span.handle()).await.expect("miss");
        fill.write_body(Bytes::copy_from_slice(body), true)
            .await
            .expect("write");
        fill.finish().await.expect("finish");
    }

    async fn read(s: &'static MemoryStore, primary: &str) -> Option<Vec<u8>> {
        let span = Span::inactive();
        let (_, mut hit) = s
            .lookup(&CacheKey::new(primary, ""), &span.handle())
            .await
            .expect("lookup")?;
        let mut out = Vec::new();
        while let Some(b) = hit.read_body().await.expect("read") {
            out.extend_from_slice(&b);
        }
        Some(out)
    }

    #[tokio::test]
    async fn stores_and_reads_back() {
        let s = store(1 << 20);
        assert_eq!(read(s, "a.test/x").await, None);
        put(s, "a.test/x", b"hello").await;
        assert_eq!(read(s, "a.test/x").await.as_deref(), Some(&b"hello"[..]));
        assert_eq!(s.len(), 1);
        assert!(s.used() >= 5);
    }

    #[tokio::test]
    async fn never_holds_more_than_the_budget() {
        // 64 KiB of budget, 10 KiB bodies: at most six fit.
        let s = store(64 * 1024);
        let body = vec![b'x'; 10 * 1024];
        for i in 0..40 {
            put(s, &format!("a.test/{i}"), &body).await;
            assert!(s.used() <= s.budget(), "used {} > budget {}", s.used(), s.budget());
        }
        let held = s.len();
        assert!((1..=6).contains(&held), "held {held}");
        assert!(s.evictions() >= 34, "evictions {}", s.evictions());
        // Whatever is indexed is readable, and the rest is gone from the store too.
        let mut readable = 0;
        for i in 0..40 {
            if read(s, &format!("a.test/{i}")).await.is_some() {
                readable += 1;
            }
        }
        assert_eq!(readable, held);
    }

    #[tokio::test]
    async fn frequently_read_entries_survive_a_scan() {
        let s = store(64 * 1024);
        let body = vec![b'x'; 4 * 1024];
        put(s, "a.test/hot", &body).await;
        for _ in 0..5 {
            assert!(read(s, "a.test/hot").await.is_some());
        }
        for i in 0..100 {
            put(s, &format!("a.test/cold/{i}"), &body).await;
            // Still read now and then, as a popular page is.
            if i % 4 == 0 {
                assert!(read(s, "a.test/hot").await.is_some(), "hot entry evicted at {i}");
            }
        }
        assert!(s.used() <= s.budget());
    }

    #[tokio::test]
    async fn an_entry_larger_than_the_budget_is_not_stored() {
        let s = store(8 * 1024);
        let span = Span::inactive();
        let key = CacheKey::new("a.test/big", "");
        let mut fill = s.get_miss_handler(&key, &meta(), &span.handle()).await.expect("miss");
        assert!(fill.write_body(Bytes::from(vec![0; 16 * 1024]), true).await.is_err());
        put(s, "a.test/almost", &[0; 8 * 1024]).await;
        assert_eq!(s.len(), 0);
        assert_eq!(s.used(), 0);
    }

    #[tokio::test]
    async fn replacing_an_entry_counts_its_bytes_once() {
        let s = store(1 << 20);
        put(s, "a.test/x", &[0; 4000]).await;
        let once = s.used();
        put(s, "a.test/x", &[0; 4000]).await;
        assert_eq!(s.used(), once);
        assert_eq!(s.len(), 1);
    }

    #[tokio::test]
    async fn purges_by_key_and_by_prefix() {
        let s = store(1 << 20);
        for p in [
            "a.test/img/1",
            "a.test/img/2",
            "a.test/img",
            "a.test/index",
            "b.test/img/1",
        ] {
            put(s, p, b"body").await;
        }
        assert_eq!(s.purge_key("a.test/img").entries, 1);
        assert!(read(s, "a.test/img").await.is_none());
        assert!(read(s, "a.test/img/1").await.is_some());
        assert_eq!(s.purge_prefix("a.test/img/").entries, 2);
        assert!(read(s, "a.test/img/2").await.is_none());
        assert!(read(s, "a.test/index").await.is_some());
        assert!(read(s, "b.test/img/1").await.is_some());
        assert_eq!(s.purge_prefix("a.test/").entries, 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s.purge_key("nothing").entries, 0);
    }

    #[tokio::test]
    async fn seeks_to_a_range() {
        let s = store(1 << 20);
        put(s, "a.test/r", b"0123456789").await;
        let span = Span::inactive();
        let (_, mut hit) = s
            .lookup(&CacheKey::new("a.test/r", ""), &span.handle())
            .await
            .expect("lookup")
            .expect("hit");
        hit.seek(2, Some(5)).expect("seek");
        assert_eq!(hit.read_body().await.expect("read").as_deref(), Some(&b"234"[..]));
        assert!(hit.seek(10, None).is_err());
    }
}
