//! Picking the adapter: a real GPU where there is one, else Mesa's software rasterisers
//! (lavapipe on Vulkan first, llvmpipe on GL as the fallback).

use crate::error::ComposeError;

/// What the compositor runs on, for logs, metrics and the admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: wgpu::Backend,
    pub device_type: wgpu::DeviceType,
    pub driver: String,
    /// A CPU rasteriser (lavapipe, llvmpipe, SwiftShader, WARP): frame costs grow with cores,
    /// not with a GPU.
    pub is_software: bool,
}

impl AdapterSummary {
    fn of(info: &wgpu::AdapterInfo) -> Self {
        let name_lower = info.name.to_lowercase();
        let software_name = ["llvmpipe", "lavapipe", "swiftshader", "warp", "softpipe"]
            .iter()
            .any(|n| name_lower.contains(n));
        Self {
            name: info.name.clone(),
            backend: info.backend,
            device_type: info.device_type,
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_owned(),
            is_software: info.device_type == wgpu::DeviceType::Cpu || software_name,
        }
    }
}

/// Lower is better.
fn rank(summary: &AdapterSummary) -> (u8, u8) {
    let kind = match summary.device_type {
        _ if summary.is_software => 3,
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu | wgpu::DeviceType::Other => 2,
        wgpu::DeviceType::Cpu => 3,
    };
    let backend = match summary.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    };
    (kind, backend)
}

/// Which adapters to consider.
#[derive(Clone, Debug)]
pub struct AdapterChoice {
    pub backends: wgpu::Backends,
    /// Case-insensitive substring of the adapter name that must match, e.g. "llvmpipe".
    pub name_contains: Option<String>,
    pub allow_software: bool,
}

pub fn choose_adapter(
    instance: &wgpu::Instance,
    choice: &AdapterChoice,
) -> Result<(wgpu::Adapter, AdapterSummary), ComposeError> {
    let adapters = pollster::block_on(instance.enumerate_adapters(choice.backends));
    let mut candidates: Vec<(wgpu::Adapter, AdapterSummary)> = adapters
        .into_iter()
        .map(|adapter| {
            let summary = AdapterSummary::of(&adapter.get_info());
            tracing::debug!(?summary, "adapter found");
            (adapter, summary)
        })
        .filter(|(_, s)| {
            choice
                .name_contains
                .as_ref()
                .is_none_or(|want| s.name.to_lowercase().contains(&want.to_lowercase()))
        })
        .filter(|(_, s)| choice.allow_software || !s.is_software)
        .filter(|(adapter, _)| {
            // Storage buffers in compute shaders: absent on WebGL2-class GL (GLES 3.0).
            adapter
                .get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .collect();
    candidates.sort_by_key(|(_, s)| rank(s));
    candidates
        .into_iter()
        .next()
        .ok_or_else(|| ComposeError::NoAdapter {
            backends: format!("{:?}", choice.backends),
            detail: format!(
                "none with compute shaders{}{}",
                choice
                    .name_contains
                    .as_ref()
                    .map(|n| format!(", named like {n:?}"))
                    .unwrap_or_default(),
                if choice.allow_software {
                    ""
                } else {
                    ", software adapters excluded"
                }
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(
        device_type: wgpu::DeviceType,
        backend: wgpu::Backend,
        name: &str,
    ) -> AdapterSummary {
        let mut info = wgpu::AdapterInfo::new(device_type, backend);
        info.name = name.into();
        AdapterSummary::of(&info)
    }

    #[test]
    fn gpus_beat_software_and_vulkan_beats_gl() {
        use wgpu::{Backend::*, DeviceType::*};
        let mut all = [
            summary(Cpu, Gl, "llvmpipe (LLVM 15.0.6, 256 bits)"),
            summary(Cpu, Vulkan, "llvmpipe (LLVM 15.0.6, 256 bits)"),
            summary(IntegratedGpu, Vulkan, "Intel UHD"),
            summary(DiscreteGpu, Gl, "NVIDIA H100"),
            summary(DiscreteGpu, Vulkan, "NVIDIA H100"),
            // Some GL drivers report llvmpipe as "Other": still software.
            summary(Other, Gl, "llvmpipe (LLVM 15.0.6, 256 bits)"),
        ];
        all.sort_by_key(rank);
        let order: Vec<_> = all.iter().map(|s| (s.device_type, s.backend)).collect();
        assert_eq!(
            order,
            [
                (DiscreteGpu, Vulkan),
                (DiscreteGpu, Gl),
                (IntegratedGpu, Vulkan),
                (Cpu, Vulkan),
                (Cpu, Gl),
                (Other, Gl),
            ]
        );
        assert!(all[4].is_software && all[5].is_software && !all[0].is_software);
    }
}
