//! GGUF (v2/v3) files, memory-mapped: metadata, tensor directory, and the
//! bytes of each tensor in place. Every malformed input is an error that
//! names what is wrong and where.

// Writing GGUF files: the tests' tiny random models and `bench-engine --synthetic`.
mod write;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

pub use write::GgufWriter;

use super::quant::{SUPPORTED, TensorType, ggml_type_name};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) if v >= 0 => Some(v as u64),
            Value::I16(v) if v >= 0 => Some(v as u64),
            Value::I32(v) if v >= 0 => Some(v as u64),
            Value::I64(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short description for listings: arrays by length, long strings cut.
    pub fn summary(&self) -> String {
        match self {
            Value::Array(a) => format!("[{} items]", a.len()),
            Value::String(s) if s.chars().count() > 60 => {
                format!("{:?}…", s.chars().take(60).collect::<String>())
            }
            Value::String(s) => format!("{s:?}"),
            other => format!("{other:?}").split(['(', ')']).nth(1).unwrap_or_default().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions innermost first, as GGUF lists them.
    pub dims: Vec<u64>,
    pub ty: TensorType,
    /// Byte range in the file.
    pub start: usize,
    pub len: usize,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("not a GGUF file: it starts with {0:?}, not \"GGUF\"")]
    NotGguf([u8; 4]),
    #[error("unsupported GGUF version {0} (Crust reads versions 2 and 3)")]
    Version(u32),
    #[error("truncated GGUF file: it ends inside {what} at byte {offset}")]
    Truncated { what: String, offset: usize },
    #[error("corrupt GGUF file: {0}")]
    Corrupt(String),
    #[error("tensor `{tensor}` has type {name} (GGML type {id}), which Crust cannot load; supported: {}", SUPPORTED)]
    UnsupportedType { tensor: String, id: u32, name: &'static str },
    #[error("tensor `{tensor}` lies past the end of the file (bytes {start}..{end}, file has {file_len}): the file is truncated")]
    TensorOutOfBounds { tensor: String, start: usize, end: usize, file_len: usize },
}

/// A GGUF file, mapped into memory.
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    mmap: Mmap,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let file = File::open(path).map_err(|source| GgufError::Open { path: path.into(), source })?;
        // SAFETY: the map is read-only; a file changed underneath us can give wrong weights, not UB in safe code we rely on.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|source| GgufError::Open { path: path.into(), source })?;
        let (version, metadata, tensors) = parse(&mmap)?;
        Ok(Self { path: path.into(), version, metadata, tensors, mmap })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    pub fn tensor_bytes(&self, tensor: &TensorInfo) -> &[u8] {
        &self.mmap[tensor.start..tensor.start + tensor.len]
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn file_len(&self) -> usize {
        self.mmap.len()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else { return Err(GgufError::Truncated { what: what(), offset: self.pos }) };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        if len > self.bytes.len() as u64 {
            return Err(GgufError::Corrupt(format!("{} has length {len}, longer than the file", what())));
        }
        let bytes = self.take(len as usize, what)?;
        // Vocabularies hold byte tokens that are not always valid UTF-8.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, ty: u32, what: &dyn Fn() -> String, depth: u32) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::U8(self.take(1, what)?[0]),
            1 => Value::I8(self.take(1, what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap())),
            3 => Value::I16(i16::from_le_bytes(self.take(2, what)?.try_into().unwrap())),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(self.u32(what)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(what)?)),
            7 => Value::Bool(self.take(1, what)?[0] != 0),
            8 => Value::String(self.string(what)?),
            9 if depth == 0 => {
                let item_ty = self.u32(what)?;
                let count = self.u64(what)?;
                if count > (self.bytes.len() - self.pos) as u64 {
                    return Err(GgufError::Corrupt(format!("{} claims {count} array items, more than the file holds", what())));
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(item_ty, what, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(self.u64(what)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(what)?)),
            other => return Err(GgufError::Corrupt(format!("{} has unknown value type {other}", what()))),
        })
    }
}

type Parsed = (u32, BTreeMap<String, Value>, Vec<TensorInfo>);

fn parse(bytes: &[u8]) -> Result<Parsed, GgufError> {
    let mut r = Reader { bytes, pos: 0 };
    let header = || "the header".to_string();
    let magic = r.take(4, &header)?;
    if magic != MAGIC {
        return Err(GgufError::NotGguf(magic.try_into().unwrap()));
    }
    let version = r.u32(&header)?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    let tensor_count = r.u64(&header)?;
    let kv_count = r.u64(&header)?;
    // Every entry takes at least 8 bytes, which bounds counts a corrupt header might claim.
    if tensor_count > bytes.len() as u64 / 8 || kv_count > bytes.len() as u64 / 8 {
        return Err(GgufError::Corrupt(format!("the header claims {tensor_count} tensors and {kv_count} metadata entries")));
    }

    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key = r.string(&|| format!("the key of metadata entry {i}"))?;
        let what = || format!("metadata `{key}`");
        let ty = r.u32(&what)?;
        let value = r.value(ty, &what, 0)?;
        metadata.insert(key, value);
    }

    let mut infos = Vec::with_capacity(tensor_count as usize);
    for i in 0..tensor_count {
        let name = r.string(&|| format!("the name of tensor {i}"))?;
        let what = || format!("the description of tensor `{name}`");
        let n_dims = r.u32(&what)?;
        if n_dims == 0 || n_dims > 4 {
            return Err(GgufError::Corrupt(format!("tensor `{name}` has {n_dims} dimensions (1 to 4 expected)")));
        }
        let dims = (0..n_dims).map(|_| r.u64(&what)).collect::<Result<Vec<_>, _>>()?;
        let type_id = r.u32(&what)?;
        let offset = r.u64(&what)?;
        infos.push((name, dims, type_id, offset));
    }

    let alignment = metadata.get("general.alignment").and_then(Value::as_u64).unwrap_or(DEFAULT_ALIGNMENT);
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(GgufError::Corrupt(format!("general.alignment is {alignment}, not a power of two")));
    }
    let data_start = (r.pos as u64).div_ceil(alignment) * alignment;

    let mut tensors = Vec::with_capacity(infos.len());
    for (name, dims, type_id, offset) in infos {
        let ty = TensorType::from_ggml(type_id).ok_or_else(|| GgufError::UnsupportedType {
            tensor: name.clone(),
            id: type_id,
            name: ggml_type_name(type_id),
        })?;
        // Every row fills whole blocks (GGML's rule): a block never spans two rows.
        let elements = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).filter(|_| dims[0] % ty.block_layout().0 as u64 == 0);
        let len = elements.and_then(|e| ty.byte_size(e as usize)).ok_or_else(|| {
            GgufError::Corrupt(format!(
                "tensor `{name}` of type {ty:?} has shape {dims:?}, whose rows do not fill whole blocks of {}",
                ty.block_layout().0
            ))
        })?;
        let start = data_start.checked_add(offset).filter(|s| offset % alignment == 0 && *s <= usize::MAX as u64);
        let Some(start) = start else {
            return Err(GgufError::Corrupt(format!("tensor `{name}` has a misaligned or impossible offset {offset}")));
        };
        let (start, end) = (start as usize, start as usize + len);
        if end > bytes.len() {
            return Err(GgufError::TensorOutOfBounds { tensor: name, start, end, file_len: bytes.len() });
        }
        tensors.push(TensorInfo { name, dims, ty, start, len });
    }
    Ok((version, metadata, tensors))
}
