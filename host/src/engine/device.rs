//! The GPU: a wgpu device over Vulkan, Metal or DX12. A real GPU when there
//! is one, else Mesa's lavapipe (a CPU Vulkan driver); `CRUST_ADAPTER` picks
//! by name.

use wgpu::{Adapter, AdapterInfo, Backends, DeviceType, Features, Limits};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "no GPU adapter found (Vulkan, Metal or DX12). On Linux without a GPU, install Mesa's \
         software Vulkan driver: `apt-get install mesa-vulkan-drivers libvulkan1` (`just setup` does it)"
    )]
    NoAdapter,
    #[error("CRUST_ADAPTER={wanted:?} matches no adapter; found: {found}")]
    NoMatch { wanted: String, found: String },
    #[error("cannot open the GPU device `{adapter}`: {source}")]
    RequestDevice { adapter: String, source: wgpu::RequestDeviceError },
}

/// An open GPU device and what it can do.
pub struct Gpu {
    /// Whether the device has subgroup operations (the decode kernels use them).
    pub subgroups: bool,
    /// Whether shaders may use f16 (the KV cache is then f16).
    pub shader_f16: bool,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: AdapterInfo,
    pub limits: Limits,
}

impl Gpu {
    /// Opens the best adapter, or the one whose name contains `CRUST_ADAPTER`.
    pub fn open() -> Result<Self, DeviceError> {
        Self::open_matching(std::env::var("CRUST_ADAPTER").ok().filter(|s| !s.is_empty()).as_deref())
    }

    pub fn open_matching(wanted: Option<&str>) -> Result<Self, DeviceError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: Backends::VULKAN | Backends::METAL | Backends::DX12,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters = pollster::block_on(instance.enumerate_adapters(Backends::VULKAN | Backends::METAL | Backends::DX12));
        let adapter = choose(adapters, wanted)?;
        let info = adapter.get_info();
        let supported = adapter.limits();
        // Ask for the largest buffers the adapter allows: weights and KV pages are big.
        let limits = Limits {
            max_storage_buffer_binding_size: supported.max_storage_buffer_binding_size,
            max_buffer_size: supported.max_buffer_size,
            max_storage_buffers_per_shader_stage: supported.max_storage_buffers_per_shader_stage.min(16),
            ..Limits::default()
        };
        let features = adapter.features() & (Features::SUBGROUP | Features::SHADER_F16);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("crust"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|source| DeviceError::RequestDevice { adapter: info.name.clone(), source })?;
        tracing::info!(adapter = %info.name, backend = ?info.backend, kind = ?info.device_type, "GPU opened");
        Ok(Self {
            subgroups: features.contains(Features::SUBGROUP),
            shader_f16: features.contains(Features::SHADER_F16),
            device,
            queue,
            info,
            limits,
        })
    }

    /// `name (backend, kind)`, for logs and benchmark reports.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.info.name, self.info.backend, self.info.device_type)
    }

    pub fn is_cpu(&self) -> bool {
        self.info.device_type == DeviceType::Cpu
    }
}

fn choose(adapters: Vec<Adapter>, wanted: Option<&str>) -> Result<Adapter, DeviceError> {
    if adapters.is_empty() {
        return Err(DeviceError::NoAdapter);
    }
    if let Some(wanted) = wanted {
        let needle = wanted.to_lowercase();
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&needle))
            .ok_or_else(|| DeviceError::NoMatch { wanted: wanted.into(), found: names.join(", ") });
    }
    let rank = |a: &Adapter| match a.get_info().device_type {
        DeviceType::DiscreteGpu => 0,
        DeviceType::IntegratedGpu => 1,
        DeviceType::VirtualGpu => 2,
        DeviceType::Other => 3,
        DeviceType::Cpu => 4,
    };
    Ok(adapters.into_iter().min_by_key(rank).expect("not empty"))
}
