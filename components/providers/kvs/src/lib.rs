//! The default kvs provider: one redb database, `/data/kvs.redb`, in the
//! directory the host preopens. redb is a real embedded database (copy-on-
//! write B-trees, checksummed commits): a write is acknowledged only after
//! its transaction is committed and synced, so it survives a restart and a
//! `kill -9` of the host. The host serializes calls into this one instance,
//! so concurrent inferlets never interleave inside a transaction, and reads
//! can keep one snapshot open until the next write.
//!
//! Entries are keyed by (user, space, key), so a space's keys are one range
//! of the B-tree; each user's bytes and keys are kept beside them and
//! updated in the same transaction as the entry, so a quota is never
//! checked against a count that a crash could leave stale.

use std::cell::{OnceCell, RefCell};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "crust:inferlet/kvs-provider",
    generate_all,
});

use exports::crust::host::kvs_store::{Guest, Quota, Space};

const PATH: &str = "/data/kvs.redb";
type EntryKey = (&'static str, &'static str, &'static str);
const ENTRIES: TableDefinition<(&str, &str, &str), &str> = TableDefinition::new("entries");
/// Per user: (bytes, keys) over all of the user's spaces.
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");

thread_local! {
    static DB: OnceCell<Database> = const { OnceCell::new() };
    /// The entries as of the last write, kept open between reads: every
    /// write goes through this instance, so it is dropped after each one.
    static SNAPSHOT: RefCell<Option<redb::ReadOnlyTable<EntryKey, &'static str>>> = const { RefCell::new(None) };
}

/// Runs `f` on the database, opening (or creating) it on first use. A
/// failure traps: the host ends the calling instance with the message and
/// starts a fresh provider for the next call.
fn with_db<T>(f: impl FnOnce(&Database) -> Result<T, String>) -> T {
    DB.with(|db| {
        let db = db.get_or_init(|| Database::create(PATH).unwrap_or_else(|e| panic!("opening {PATH}: {e}")));
        f(db).unwrap_or_else(|e| panic!("kvs: {e}"))
    })
}

/// One write transaction: committed (and synced) when `f` returns `Ok(Ok)`,
/// dropped unwritten when it refuses with `Ok(Err)`.
fn write<T>(
    f: impl FnOnce(&mut redb::Table<(&str, &str, &str), &str>, &mut redb::Table<&str, (u64, u64)>) -> Result<Result<T, String>, redb::StorageError>,
) -> Result<T, String> {
    with_db(|db| {
        let tx = db.begin_write().map_err(|e| e.to_string())?;
        let outcome = {
            let mut entries = tx.open_table(ENTRIES).map_err(|e| e.to_string())?;
            let mut usage = tx.open_table(USAGE).map_err(|e| e.to_string())?;
            f(&mut entries, &mut usage).map_err(|e| e.to_string())?
        };
        if outcome.is_ok() {
            // Durability::Immediate (the default): synced before it returns.
            tx.commit().map_err(|e| e.to_string())?;
            SNAPSHOT.with(|s| s.borrow_mut().take());
        } else {
            tx.abort().map_err(|e| e.to_string())?;
        }
        Ok(outcome)
    })
}

fn read<T>(f: impl FnOnce(&redb::ReadOnlyTable<EntryKey, &'static str>) -> Result<T, redb::StorageError>, empty: T) -> T {
    with_db(|db| {
        SNAPSHOT.with(|snapshot| {
            let mut snapshot = snapshot.borrow_mut();
            if snapshot.is_none() {
                let tx = db.begin_read().map_err(|e| e.to_string())?;
                match tx.open_table(ENTRIES) {
                    Ok(table) => *snapshot = Some(table),
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(empty),
                    Err(e) => return Err(e.to_string()),
                }
            }
            f(snapshot.as_ref().unwrap()).map_err(|e| e.to_string())
        })
    })
}

fn entry_size(key: &str, value: &str) -> u64 {
    (key.len() + value.len()) as u64
}

struct Provider;

impl Guest for Provider {
    fn get(space: Space, key: String) -> Option<String> {
        read(|t| Ok(t.get((space.user.as_str(), space.name.as_str(), key.as_str()))?.map(|v| v.value().to_string())), None)
    }

    fn set(space: Space, key: String, value: String, quota: Quota) -> Result<(), String> {
        write(|entries, usage| {
            let id = (space.user.as_str(), space.name.as_str(), key.as_str());
            let old = entries.get(id)?.map(|v| entry_size(&key, v.value()));
            let (bytes, keys) = usage.get(space.user.as_str())?.map_or((0, 0), |u| u.value());
            let new_bytes = bytes - old.unwrap_or(0) + entry_size(&key, &value);
            let new_keys = keys + u64::from(old.is_none());
            if new_bytes > quota.max_bytes && new_bytes > bytes {
                return Ok(Err(format!("the store would hold {new_bytes} bytes for this user, over its quota of {} bytes", quota.max_bytes)));
            }
            if new_keys > quota.max_keys && new_keys > keys {
                return Ok(Err(format!("the store would hold {new_keys} keys for this user, over its quota of {} keys", quota.max_keys)));
            }
            entries.insert(id, value.as_str())?;
            usage.insert(space.user.as_str(), (new_bytes, new_keys))?;
            Ok(Ok(()))
        })
    }

    fn delete(space: Space, key: String) {
        let _: Result<(), String> = write(|entries, usage| {
            let removed = entries.remove((space.user.as_str(), space.name.as_str(), key.as_str()))?.map(|v| entry_size(&key, v.value()));
            if let Some(size) = removed {
                let (bytes, keys) = usage.get(space.user.as_str())?.map_or((0, 0), |u| u.value());
                usage.insert(space.user.as_str(), (bytes.saturating_sub(size), keys.saturating_sub(1)))?;
            }
            Ok(Ok(()))
        });
    }

    fn exists(space: Space, key: String) -> bool {
        read(|t| Ok(t.get((space.user.as_str(), space.name.as_str(), key.as_str()))?.is_some()), false)
    }

    fn list_keys(space: Space) -> Vec<String> {
        let (user, name) = (space.user.as_str(), space.name.as_str());
        read(
            |t| {
                let mut keys = Vec::new();
                for entry in t.range((user, name, "")..)? {
                    let (k, _) = entry?;
                    let (u, n, key) = k.value();
                    if (u, n) != (user, name) {
                        break;
                    }
                    keys.push(key.to_string());
                }
                Ok(keys)
            },
            Vec::new(),
        )
    }
}

export!(Provider);
