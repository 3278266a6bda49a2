//! What the KV kernels (`rope_kv`, `attention`) share, as `shaders/kv.wgsl`
//! does: the cache's element type and the input token record.

use bytemuck::{Pod, Zeroable};

/// The KV cache's element type: the variant key of both KV kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvType {
    /// Half the memory; needs the adapter's shader-f16.
    F16,
    F32,
}

impl KvType {
    pub fn bytes(self) -> u64 {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
        }
    }

    pub(super) fn defines(self) -> Vec<&'static str> {
        match self {
            KvType::F16 => vec!["KV_F16"],
            KvType::F32 => vec![],
        }
    }
}

/// One input token as the rope/KV-write and attention kernels see it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Default)]
pub struct GpuToken {
    pub position: u32,
    pub kv_slot: u32,
    pub ctx_len: u32,
    pub table_offset: u32,
    pub mask_offset: u32,
    pub _pad: [u32; 3],
}

/// `GpuToken::mask_offset` of a token that attends to every slot before it.
pub const NO_MASK: u32 = u32::MAX;
