//! The default kvs provider: one redb database, `/data/kvs.redb`, in the
//! directory the host preopens. redb is a real embedded database (copy-on-
//! write B-trees, checksummed commits): a write is acknowledged only after
//! its transaction is committed and synced, so it survives a restart and a
//! `kill -9` of the host. The host serializes calls into this one instance,
//! so concurrent inferlets never interleave inside a transaction, and reads
//! can keep one snapshot open until the next write.

use std::cell::{OnceCell, RefCell};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "crust:inferlet/kvs-provider",
    generate_all,
});

use exports::inferlet::core::kvs::Guest;

const PATH: &str = "/data/kvs.redb";
const TABLE: TableDefinition<&str, &str> = TableDefinition::new("kvs");

thread_local! {
    static DB: OnceCell<Database> = const { OnceCell::new() };
    /// The table as of the last write, kept open between reads: every write
    /// goes through this instance, so it is replaced after each one.
    static SNAPSHOT: RefCell<Option<redb::ReadOnlyTable<&'static str, &'static str>>> = const { RefCell::new(None) };
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

fn write(f: impl FnOnce(&mut redb::Table<&str, &str>) -> Result<(), redb::StorageError>) {
    with_db(|db| {
        let tx = db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut table = tx.open_table(TABLE).map_err(|e| e.to_string())?;
            f(&mut table).map_err(|e| e.to_string())?;
        }
        // Durability::Immediate (the default): synced before it returns.
        tx.commit().map_err(|e| e.to_string())?;
        SNAPSHOT.with(|s| s.borrow_mut().take());
        Ok(())
    })
}

fn read<T>(f: impl FnOnce(&redb::ReadOnlyTable<&str, &str>) -> Result<T, redb::StorageError>, empty: T) -> T {
    with_db(|db| {
        SNAPSHOT.with(|snapshot| {
            let mut snapshot = snapshot.borrow_mut();
            if snapshot.is_none() {
                let tx = db.begin_read().map_err(|e| e.to_string())?;
                match tx.open_table(TABLE) {
                    Ok(table) => *snapshot = Some(table),
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(empty),
                    Err(e) => return Err(e.to_string()),
                }
            }
            f(snapshot.as_ref().unwrap()).map_err(|e| e.to_string())
        })
    })
}

struct Provider;

impl Guest for Provider {
    fn store_get(key: String) -> Option<String> {
        read(|t| Ok(t.get(key.as_str())?.map(|v| v.value().to_string())), None)
    }

    fn store_set(key: String, value: String) {
        write(|t| t.insert(key.as_str(), value.as_str()).map(drop));
    }

    fn store_delete(key: String) {
        write(|t| t.remove(key.as_str()).map(drop));
    }

    fn store_exists(key: String) -> bool {
        read(|t| Ok(t.get(key.as_str())?.is_some()), false)
    }

    fn store_list_keys() -> Vec<String> {
        read(|t| t.iter()?.map(|entry| entry.map(|(k, _)| k.value().to_string())).collect(), Vec::new())
    }
}

export!(Provider);
