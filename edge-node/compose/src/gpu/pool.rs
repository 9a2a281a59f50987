//! Buffers reused across frames, pooled by (kind, size). A source resolution change simply asks
//! for other sizes; buffers of the old size age out.

use std::collections::HashMap;

/// Frames after which an unused pooled buffer is freed (about 2 s at 30 fps): long enough to
/// ride out a render group that comes and goes, short enough to free a whole resolution's
/// buffers soon after a resolution change.
const IDLE_FRAMES_BEFORE_FREE: u64 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferKind {
    /// Storage buffer one job composes into.
    Work,
    /// Mappable buffer the work buffer is copied to for reading back.
    Readback,
}

impl BufferKind {
    fn usage(self) -> wgpu::BufferUsages {
        match self {
            Self::Work => {
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC
            }
            Self::Readback => wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        }
    }
}

#[derive(Default)]
pub struct BufferPool {
    free: HashMap<(BufferKind, u64), Vec<(wgpu::Buffer, u64)>>,
    frame: u64,
    created_total: u64,
}

impl BufferPool {
    pub fn take(
        &mut self,
        device: &wgpu::Device,
        kind: BufferKind,
        size_bytes: u64,
    ) -> wgpu::Buffer {
        if let Some((buffer, _)) = self
            .free
            .get_mut(&(kind, size_bytes))
            .and_then(|list| list.pop())
        {
            return buffer;
        }
        self.created_total += 1;
        tracing::debug!(?kind, size_bytes, "allocating pooled GPU buffer");
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(match kind {
                BufferKind::Work => "compose work frame",
                BufferKind::Readback => "compose readback frame",
            }),
            size: size_bytes,
            usage: kind.usage(),
            mapped_at_creation: false,
        })
    }

    pub fn give_back(&mut self, kind: BufferKind, buffer: wgpu::Buffer) {
        self.free
            .entry((kind, buffer.size()))
            .or_default()
            .push((buffer, self.frame));
    }

    /// Called once per composed frame: frees what has not been used for a while.
    pub fn end_frame(&mut self) {
        self.frame += 1;
        let frame = self.frame;
        self.free.retain(|_, list| {
            list.retain(|(_, last_used)| frame - last_used <= IDLE_FRAMES_BEFORE_FREE);
            !list.is_empty()
        });
    }

    /// Buffers created since start: flat once the pool has warmed up.
    pub fn created_total(&self) -> u64 {
        self.created_total
    }
}
