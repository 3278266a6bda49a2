//! Reassembling chunked uploads (programs and blobs): in order, within the
//! size cap, and matching the hash the client named.

use std::collections::{HashMap, HashSet};

use crust_client::protocol::{CHUNK_SIZE, content_hash};

pub struct Chunk {
    pub corr_id: u32,
    pub hash: String,
    pub index: usize,
    pub total: usize,
    pub data: Vec<u8>,
}

pub enum Accepted {
    /// More chunks to come.
    Partial,
    /// The last chunk arrived and the hash matches.
    Complete(Vec<u8>),
    /// A chunk of an upload already refused: its one error has been sent.
    Ignored,
}

struct Assembly {
    corr_id: u32,
    hash: String,
    total: usize,
    data: Vec<u8>,
    next: usize,
}

/// One connection's uploads in flight, one per target (the program slot, or an instance's blob slot).
#[derive(Default)]
pub struct Uploads {
    open: HashMap<String, Assembly>,
    refused: HashSet<u32>,
}

/// An error for an upload: its `corr_id` and what went wrong.
pub type Refusal = (u32, String);

impl Uploads {
    /// Takes one chunk for `target`. Besides this chunk's fate, it may return
    /// the refusal of an earlier upload to the same target that a new one cut short.
    pub fn accept(&mut self, target: &str, chunk: Chunk, cap: usize) -> (Option<Refusal>, Result<Accepted, String>) {
        if self.refused.contains(&chunk.corr_id) {
            return (None, Ok(Accepted::Ignored));
        }
        let mut abandoned = None;
        if let Some(open) = self.open.get(target)
            && open.corr_id != chunk.corr_id
        {
            let open = self.open.remove(target).unwrap();
            let why = format!("the upload of {} stopped after {} of {} chunks (truncated)", open.hash, open.next, open.total);
            abandoned = Some((open.corr_id, why));
        }
        let result = self.add(target, chunk.corr_id, chunk, cap);
        (abandoned, result)
    }

    fn add(&mut self, target: &str, corr_id: u32, chunk: Chunk, cap: usize) -> Result<Accepted, String> {
        let result = self.check(target, chunk, cap);
        if result.is_err() {
            self.open.remove(target);
            self.refused.insert(corr_id);
        }
        result
    }

    fn check(&mut self, target: &str, chunk: Chunk, cap: usize) -> Result<Accepted, String> {
        if chunk.data.len() > CHUNK_SIZE {
            return Err(format!("a chunk of {} bytes is over the {CHUNK_SIZE}-byte chunk size", chunk.data.len()));
        }
        if chunk.total == 0 {
            return Err("total_chunks is 0: an upload has at least one chunk".into());
        }
        if (chunk.total - 1).saturating_mul(CHUNK_SIZE) >= cap.max(1) {
            return Err(too_large(chunk.total.saturating_mul(CHUNK_SIZE), cap));
        }
        let assembly = self.open.entry(target.to_string()).or_insert_with(|| Assembly {
            corr_id: chunk.corr_id,
            hash: chunk.hash.clone(),
            total: chunk.total,
            data: Vec::new(),
            next: 0,
        });
        if chunk.total != assembly.total {
            return Err(format!("total_chunks changed from {} to {} mid-upload", assembly.total, chunk.total));
        }
        if chunk.hash != assembly.hash {
            return Err(format!("the hash changed from {} to {} mid-upload", assembly.hash, chunk.hash));
        }
        if chunk.index != assembly.next {
            return Err(format!("chunk {} arrived where chunk {} was expected (out of order or missing)", chunk.index, assembly.next));
        }
        if assembly.data.len() + chunk.data.len() > cap {
            return Err(too_large(assembly.data.len() + chunk.data.len(), cap));
        }
        assembly.data.extend_from_slice(&chunk.data);
        assembly.next += 1;
        if assembly.next < assembly.total {
            return Ok(Accepted::Partial);
        }
        let done = self.open.remove(target).unwrap();
        let actual = content_hash(&done.data);
        if actual != done.hash {
            return Err(format!("hash mismatch: the client named {}, the {} bytes received hash to {actual}", done.hash, done.data.len()));
        }
        Ok(Accepted::Complete(done.data))
    }
}

fn too_large(size: usize, cap: usize) -> String {
    format!("the upload is over the server's limit of {cap} bytes (at least {size}; server.max_upload_mib)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(corr_id: u32, whole: &[u8], index: usize, total: usize) -> Chunk {
        let data = whole.chunks(CHUNK_SIZE).nth(index).unwrap_or_default().to_vec();
        Chunk { corr_id, hash: content_hash(whole), index, total, data }
    }

    #[test]
    fn chunks_in_order_complete() {
        let whole = vec![7u8; CHUNK_SIZE + 10];
        let mut uploads = Uploads::default();
        assert!(matches!(uploads.accept("p", chunk(1, &whole, 0, 2), 1 << 20), (None, Ok(Accepted::Partial))));
        assert!(matches!(uploads.accept("p", chunk(1, &whole, 1, 2), 1 << 20), (None, Ok(Accepted::Complete(d))) if d == whole));
    }

    #[test]
    fn a_bad_upload_gets_one_error_then_its_chunks_are_ignored() {
        let whole = vec![1u8; 3 * CHUNK_SIZE];
        let mut uploads = Uploads::default();
        assert!(matches!(uploads.accept("p", chunk(1, &whole, 0, 3), 1 << 30), (None, Ok(_))));
        let (_, skipped) = uploads.accept("p", chunk(1, &whole, 2, 3), 1 << 30);
        assert!(skipped.err().unwrap().contains("chunk 2 arrived where chunk 1"));
        assert!(matches!(uploads.accept("p", chunk(1, &whole, 1, 3), 1 << 30), (None, Ok(Accepted::Ignored))));
    }

    #[test]
    fn a_new_upload_refuses_the_truncated_one() {
        let whole = vec![1u8; 2 * CHUNK_SIZE];
        let mut uploads = Uploads::default();
        assert!(matches!(uploads.accept("p", chunk(1, &whole, 0, 2), 1 << 30), (None, Ok(_))));
        let (abandoned, _) = uploads.accept("p", chunk(2, b"small", 0, 1), 1 << 30);
        let (corr_id, why) = abandoned.unwrap();
        assert_eq!(corr_id, 1);
        assert!(why.contains("after 1 of 2 chunks"));
    }

    #[test]
    fn oversize_and_hash_mismatch_are_refused() {
        let whole = vec![1u8; 3 * CHUNK_SIZE];
        let mut uploads = Uploads::default();
        assert!(uploads.accept("p", chunk(1, &whole, 0, 3), CHUNK_SIZE).1.err().unwrap().contains("limit of"));
        let mut forged = chunk(2, b"payload", 0, 1);
        forged.hash = content_hash(b"other");
        assert!(uploads.accept("p", forged, 1 << 20).1.err().unwrap().contains("hash mismatch"));
    }
}
