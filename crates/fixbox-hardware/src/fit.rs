//! The fit calculator: how much memory a model needs at a context length and number of parallel slots,
//! where that memory goes on this machine (all on a GPU, split with N layers offloaded, CPU only), and
//! how fast it will probably generate.
//!
//! The model is llama.cpp's (what llama-server allocates):
//! - weights: the GGUF file, read whole into memory (Fixbox starts llama-server with `--load-mode none`
//!   on the CPU, so repacked weights are not also kept mapped);
//! - KV cache: layers × KV heads × head dim × 2 (K and V) × bytes per element × context × slots;
//! - compute buffers: the activations of one micro-batch of [`UBATCH`] tokens through the widest layer,
//!   plus flash attention's mask over the whole cache;
//! - runtime overhead: the process itself, and its tokenizer tables, which grow with the vocabulary.
//!
//! The last two are fitted to llama-server's own buffer sizes and resident memory measured on a CPU
//! (`cargo bench -p fixbox-e2e --bench hardware` measures them again and prints the error). Speeds are
//! estimates: memory bandwidth divided by the bytes each token reads.

use serde::{Deserialize, Serialize};

use crate::{GpuInfo, HardwareReport};

const MIB: u64 = 1024 * 1024;

/// Tokens llama-server evaluates at once while reading a prompt (its default `--ubatch-size`).
pub const UBATCH: u64 = 512;
/// The process without a model: the executable, its libraries and heaps.
const BASE_OVERHEAD: u64 = 16 * MIB;
/// Tokenizer tables per vocabulary entry (token text, scores, merge ranks and their indexes).
const OVERHEAD_PER_VOCAB_ENTRY: u64 = 290;
/// A GPU's own runtime (the CUDA/Metal context, cuBLAS workspaces) takes memory before any model does.
const GPU_RUNTIME: u64 = 400 * MIB;
/// The share of the memory bandwidth token generation reaches in practice (it also computes, and
/// reads activations; llama.cpp's own benchmarks land at 60–80% on GPUs and CPUs alike).
const BANDWIDTH_EFFICIENCY: f64 = 0.7;

/// A model's architecture, as its GGUF header states it and the catalog repeats it: one type for both,
/// so a catalog entry can be checked against its file field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// `general.architecture`, e.g. `llama`, `qwen2`.
    pub arch: String,
    /// Transformer blocks (`<arch>.block_count`).
    pub layers: u32,
    /// Attention heads (`<arch>.attention.head_count`).
    pub heads: u32,
    /// Key/value heads (`<arch>.attention.head_count_kv`; equal to `heads` without grouped-query attention).
    pub kv_heads: u32,
    /// Hidden size (`<arch>.embedding_length`).
    pub embedding: u32,
    /// Per-head key and value width (`<arch>.attention.key_length`, default embedding / heads).
    pub head_dim: u32,
    /// Feed-forward width (`<arch>.feed_forward_length`).
    pub ffn: u32,
    /// Tokens in the vocabulary (`<arch>.vocab_size`, else the length of `tokenizer.ggml.tokens`).
    pub vocab: u32,
    /// A mixture of experts' experts; absent for a dense model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts: Option<Experts>,
}

impl Architecture {
    /// The shape the fit calculator sizes: this architecture with `parameters` weights in a file of
    /// `weights_bytes`.
    pub fn shape(&self, parameters: u64, weights_bytes: u64) -> ModelShape {
        ModelShape {
            layers: self.layers,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            embedding: self.embedding,
            ffn: self.ffn,
            vocab: self.vocab,
            parameters,
            weights_bytes,
            experts: self.experts,
        }
    }
}

/// What sizing needs to know about a model: its shape (from its [`Architecture`]) and the size of its
/// weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ModelShape {
    pub layers: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub embedding: u32,
    /// Feed-forward width (`<arch>.feed_forward_length`).
    pub ffn: u32,
    pub vocab: u32,
    /// Weights in all (the whole model, whatever is active per token).
    pub parameters: u64,
    /// The GGUF file's size.
    pub weights_bytes: u64,
    /// A mixture-of-experts model's experts; `None` for a dense model.
    #[serde(default)]
    pub experts: Option<Experts>,
}

/// The experts of a mixture-of-experts model: every expert's weights take memory, only the `used` ones
/// per token are read, so the total sets the memory and the active share sets the speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Experts {
    /// Experts per layer (`<arch>.expert_count`).
    pub count: u32,
    /// Experts each token goes through (`<arch>.expert_used_count`).
    pub used: u32,
    /// Each expert's feed-forward width (`<arch>.expert_feed_forward_length`).
    pub ffn: u32,
}

impl ModelShape {
    /// Bytes of the file that are expert weights: gate, up and down projections of every expert in
    /// every layer, at the file's average bytes per weight.
    fn expert_bytes(&self) -> u64 {
        let Some(experts) = self.experts.filter(|_| self.parameters > 0) else { return 0 };
        let weights =
            3 * u64::from(self.layers) * u64::from(experts.count) * u64::from(self.embedding) * u64::from(experts.ffn);
        let share = (weights as f64 / self.parameters as f64).min(0.98);
        (self.weights_bytes as f64 * share) as u64
    }

    /// Bytes of weights a generated token reads: all of a dense model, the shared part and the used
    /// experts of a mixture.
    fn active_weight_bytes(&self) -> u64 {
        let experts = self.expert_bytes();
        let used = self.experts.map_or(0.0, |e| f64::from(e.used.min(e.count)) / f64::from(e.count.max(1)));
        self.weights_bytes - experts + (experts as f64 * used) as u64
    }
}

/// How the KV cache stores each element (llama-server's `--cache-type-k/v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum KvType {
    #[default]
    F16,
    Q8_0,
    Q4_0,
}

impl KvType {
    /// Bytes per 32 elements (ggml block sizes: f16 2 bytes each, q8_0 34 per block, q4_0 18 per block).
    fn bytes_per_32(self) -> u64 {
        match self {
            Self::F16 => 64,
            Self::Q8_0 => 34,
            Self::Q4_0 => 18,
        }
    }
}

/// What the model is asked to do: how many tokens each request may hold, how many requests at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct FitRequest {
    pub context: u32,
    pub slots: u32,
    pub kv_type: KvType,
}

impl FitRequest {
    pub fn new(context: u32) -> Self {
        Self { context, slots: 1, kv_type: KvType::F16 }
    }

    fn total_tokens(&self) -> u64 {
        u64::from(self.context) * u64::from(self.slots.max(1))
    }
}

/// Memory a model needs, by part. Bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MemoryNeed {
    pub weights: u64,
    pub kv_cache: u64,
    pub compute: u64,
    pub overhead: u64,
}

impl MemoryNeed {
    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache + self.compute + self.overhead
    }
}

/// The memory `shape` needs to serve `request` on one device.
pub fn memory_need(shape: &ModelShape, request: &FitRequest) -> MemoryNeed {
    let tokens = request.total_tokens();
    let kv_per_token = kv_bytes_per_token(shape, request.kv_type);
    // The widest point of a layer: gate and up projections (ffn wide) beside the residual stream and
    // attention's Q/K/V (embedding wide), all f32, for one micro-batch.
    let activations = UBATCH * 4 * (3 * u64::from(shape.ffn) + 4 * u64::from(shape.embedding));
    // Flash attention's mask: f16, one row per batch token over every cached token.
    let mask = UBATCH * 2 * tokens;
    MemoryNeed {
        weights: shape.weights_bytes,
        kv_cache: kv_per_token * tokens,
        compute: activations + mask,
        overhead: BASE_OVERHEAD + OVERHEAD_PER_VOCAB_ENTRY * u64::from(shape.vocab),
    }
}

fn kv_bytes_per_token(shape: &ModelShape, kv_type: KvType) -> u64 {
    let elements = 2 * u64::from(shape.layers) * u64::from(shape.kv_heads) * u64::from(shape.head_dim);
    elements.div_ceil(32) * kv_type.bytes_per_32()
}

/// Where the model runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Placement {
    /// Everything on the GPU(s) named.
    Gpu { gpus: Vec<String> },
    /// `layers_on_gpu` of `layers` on the GPU(s), the rest (and their KV cache) in system memory.
    Split { gpus: Vec<String>, layers_on_gpu: u32, layers: u32 },
    /// A mixture of experts with every layer on the GPU(s) but the experts of `expert_layers_in_ram`
    /// layers in system memory (llama.cpp's `--n-cpu-moe`): attention and the KV cache, read for every
    /// token, stay on the fast side; the experts, of which a token reads only a few, go to the slow one.
    ExpertsInRam { gpus: Vec<String>, expert_layers_in_ram: u32, layers: u32 },
    /// Everything in system memory.
    Cpu,
    /// It fits nowhere: the largest place is `short_by` bytes too small.
    DoesNotFit { short_by: u64 },
}

/// The answer for one model at one request on one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct FitPlan {
    pub request: FitRequest,
    pub need: MemoryNeed,
    pub placement: Placement,
    /// Bytes on the GPU(s) and in system memory under this placement.
    pub gpu_bytes: u64,
    pub cpu_bytes: u64,
    /// Generation speed, an estimate from memory bandwidth; `None` where a bandwidth is unknown.
    pub estimated_tokens_per_second: Option<f64>,
}

impl FitPlan {
    pub fn fits(&self) -> bool {
        !matches!(self.placement, Placement::DoesNotFit { .. })
    }
}

/// The memory a machine offers for a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// The GPUs with their own memory (or unified memory) that llama.cpp can use together, and the
    /// bytes each offers a model.
    pub gpus: Vec<(String, u64)>,
    /// Bandwidth of the slowest of those GPUs, bytes/s.
    pub gpu_bandwidth: Option<u64>,
    /// System memory a model may take, bytes.
    pub cpu: u64,
    pub cpu_bandwidth: Option<u64>,
}

/// System memory left for the OS, the desktop, Fixbox and its sandbox: a fifth, at least 2 GiB.
fn system_reserve(total: u64) -> u64 {
    (total / 5).max(2048 * MIB)
}

impl Budget {
    /// What `report`'s machine offers: GPUs with a known memory size that run llama.cpp (NVIDIA, AMD,
    /// Apple), less their runtime's share; system memory less a reserve for everything else.
    pub fn of(report: &HardwareReport) -> Self {
        let usable_ram = report.memory.usable_total_bytes();
        let unified = report.gpus.iter().find(|g| g.unified_memory && g.vram_total_bytes.is_some());
        let gpus: Vec<&GpuInfo> = match unified {
            // Apple silicon: Metal may wire about two thirds of memory up to 36 GB, three quarters above
            // (macOS's default `recommendedMaxWorkingSetSize`), and the CPU keeps the rest.
            Some(gpu) if gpu.vendor == crate::GpuVendor::Apple => vec![gpu],
            _ => report.gpus.iter().filter(|g| !g.unified_memory && g.vram_total_bytes.is_some()).collect(),
        };
        let offered = |gpu: &GpuInfo| -> u64 {
            let total = gpu.vram_total_bytes.unwrap_or(0);
            if gpu.unified_memory {
                let share = if total <= 36 * 1000 * MIB { total / 3 * 2 } else { total / 4 * 3 };
                return share.saturating_sub(GPU_RUNTIME);
            }
            gpu.vram_free_bytes.unwrap_or(total).min(total).saturating_sub(GPU_RUNTIME)
        };
        let apple = gpus.iter().any(|g| g.unified_memory);
        let cpu = if apple {
            // The GPU's share and the CPU's come out of the same memory.
            usable_ram
                .saturating_sub(gpus.iter().map(|g| offered(g)).sum::<u64>())
                .saturating_sub(system_reserve(usable_ram))
        } else {
            usable_ram.saturating_sub(system_reserve(usable_ram))
        };
        Self {
            gpu_bandwidth: gpus.iter().map(|g| g.memory_bandwidth_bytes_per_s).min().flatten(),
            gpus: gpus.iter().map(|g| (g.name.clone(), offered(g))).collect(),
            cpu,
            cpu_bandwidth: report.memory.bandwidth_bytes_per_s,
        }
    }

    /// Bytes all the GPUs offer together.
    pub fn gpu_total(&self) -> u64 {
        self.gpus.iter().map(|(_, bytes)| bytes).sum()
    }

    pub fn gpu_names(&self) -> Vec<String> {
        self.gpus.iter().map(|(name, _)| name.clone()).collect()
    }
}

/// Where `shape` goes on a machine offering `budget` for `request`, and how fast it will be.
pub fn plan(shape: &ModelShape, request: &FitRequest, budget: &Budget) -> FitPlan {
    let need = memory_need(shape, request);
    let total = need.total();
    let gpu_total = budget.gpu_total();
    let on_gpu_whole = total - need.overhead;
    let (placement, gpu_bytes, cpu_bytes) = if !budget.gpus.is_empty() && on_gpu_whole <= gpu_total {
        (Placement::Gpu { gpus: budget.gpu_names() }, on_gpu_whole, need.overhead)
    } else if let Some(experts_in_ram) = experts_in_ram(shape, &need, budget) {
        experts_in_ram
    } else {
        split(shape, &need, budget)
    };
    let (gpu_bytes, cpu_bytes, placement) = match placement {
        Placement::Cpu | Placement::Split { .. } | Placement::ExpertsInRam { .. } if cpu_bytes > budget.cpu => {
            (gpu_bytes, cpu_bytes, Placement::DoesNotFit { short_by: cpu_bytes - budget.cpu })
        }
        placement => (gpu_bytes, cpu_bytes, placement),
    };
    let estimated_tokens_per_second = tokens_per_second(shape, request, &placement, budget);
    FitPlan { request: *request, need, placement, gpu_bytes, cpu_bytes, estimated_tokens_per_second }
}

/// As many whole layers on the GPU as fit (each brings its weights and its KV cache; token embeddings
/// stay in system memory, compute buffers are needed on each side that computes), the rest on the CPU.
fn split(shape: &ModelShape, need: &MemoryNeed, budget: &Budget) -> (Placement, u64, u64) {
    let layers = shape.layers.max(1);
    let per_layer = (need.weights.saturating_sub(non_layer_weights(shape)) + need.kv_cache) / u64::from(layers);
    let on_gpu = if budget.gpus.is_empty() || per_layer == 0 {
        0
    } else {
        u32::try_from(budget.gpu_total().saturating_sub(need.compute) / per_layer).unwrap_or(layers).min(layers - 1)
    };
    let offloaded = per_layer * u64::from(on_gpu);
    let cpu_bytes = need.total() - offloaded;
    if on_gpu == 0 {
        return (Placement::Cpu, 0, cpu_bytes);
    }
    let placement = Placement::Split { gpus: budget.gpu_names(), layers_on_gpu: on_gpu, layers };
    (placement, need.compute + offloaded, cpu_bytes)
}

/// A mixture of experts on a GPU too small for all of it: everything but the experts on the GPU, and
/// the experts of as few layers as must be in system memory. `None` for a dense model, or where even
/// the part without experts does not fit the GPU.
fn experts_in_ram(shape: &ModelShape, need: &MemoryNeed, budget: &Budget) -> Option<(Placement, u64, u64)> {
    let experts = shape.expert_bytes();
    if experts == 0 || budget.gpus.is_empty() {
        return None;
    }
    let layers = shape.layers.max(1);
    let per_layer = experts.div_ceil(u64::from(layers));
    let on_gpu_whole = need.total() - need.overhead;
    let without_experts = on_gpu_whole.saturating_sub(experts);
    if without_experts > budget.gpu_total() {
        return None;
    }
    let over = on_gpu_whole - budget.gpu_total();
    let in_ram = u32::try_from(over.div_ceil(per_layer)).unwrap_or(layers).clamp(1, layers);
    let moved = per_layer * u64::from(in_ram);
    // The CPU computes the experts it holds, so it needs compute buffers of its own.
    let cpu_bytes = need.overhead + moved + need.compute;
    let placement = Placement::ExpertsInRam { gpus: budget.gpu_names(), expert_layers_in_ram: in_ram, layers };
    Some((placement, on_gpu_whole - moved.min(experts), cpu_bytes))
}

/// The token embeddings and the output projection (tied or not, the output layer reads a matrix of
/// this size per token), at the file's average bytes per weight.
fn non_layer_weights(shape: &ModelShape) -> u64 {
    if shape.parameters == 0 {
        return 0;
    }
    let embedding_weights = u64::from(shape.vocab) * u64::from(shape.embedding);
    let share = (embedding_weights as f64 / shape.parameters as f64).min(0.5);
    (shape.weights_bytes as f64 * share) as u64
}

/// Bandwidth ÷ bytes read per token: the active weights on each device and the KV cache of a
/// half-full context.
fn tokens_per_second(shape: &ModelShape, request: &FitRequest, placement: &Placement, budget: &Budget) -> Option<f64> {
    let kv_read = (kv_bytes_per_token(shape, request.kv_type) * u64::from(request.context) / 2) as f64;
    let weights = shape.active_weight_bytes() as f64;
    let read = weights + kv_read;
    let seconds = match placement {
        Placement::Gpu { .. } => read / budget.gpu_bandwidth? as f64,
        Placement::Cpu => read / budget.cpu_bandwidth? as f64,
        Placement::Split { layers_on_gpu, layers, .. } => {
            let on_gpu = f64::from(*layers_on_gpu) / f64::from(*layers);
            read * on_gpu / budget.gpu_bandwidth? as f64 + read * (1.0 - on_gpu) / budget.cpu_bandwidth? as f64
        }
        Placement::ExpertsInRam { expert_layers_in_ram, layers, .. } => {
            let active_experts = weights - (shape.weights_bytes - shape.expert_bytes()) as f64;
            let in_ram = active_experts * f64::from(*expert_layers_in_ram) / f64::from(*layers);
            (read - in_ram) / budget.gpu_bandwidth? as f64 + in_ram / budget.cpu_bandwidth? as f64
        }
        Placement::DoesNotFit { .. } => return None,
    };
    (seconds > 0.0).then(|| BANDWIDTH_EFFICIENCY / seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Qwen2.5-Coder-1.5B Q4_K_M as its GGUF header and file describe it.
    pub(super) fn qwen_1_5b() -> ModelShape {
        ModelShape {
            layers: 28,
            kv_heads: 2,
            head_dim: 128,
            embedding: 1536,
            ffn: 8960,
            vocab: 151_936,
            parameters: 1_543_714_304,
            weights_bytes: 1_117_320_768,
            experts: None,
        }
    }

    #[test]
    fn the_kv_cache_is_layers_by_kv_heads_by_head_dim_by_k_and_v_by_context() {
        // llama-server reports "CPU KV buffer size = 112.00 MiB" for this model at -c 4096.
        let need = memory_need(&qwen_1_5b(), &FitRequest::new(4096));
        assert_eq!(need.kv_cache, 112 * MIB);
        let two_slots = memory_need(&qwen_1_5b(), &FitRequest { slots: 2, ..FitRequest::new(4096) });
        assert_eq!(two_slots.kv_cache, 224 * MIB);
        let q8 = memory_need(&qwen_1_5b(), &FitRequest { kv_type: KvType::Q8_0, ..FitRequest::new(4096) });
        assert_eq!(q8.kv_cache, 112 * MIB / 64 * 34);
        // Its compute buffer was 71.52 MiB at 4096 and 83.52 MiB at 16384.
        let compute = |context| memory_need(&qwen_1_5b(), &FitRequest::new(context)).compute as f64 / MIB as f64;
        assert!((compute(4096) - 71.52).abs() / 71.52 < 0.1, "{}", compute(4096));
        assert!((compute(16384) - 83.52).abs() / 83.52 < 0.1, "{}", compute(16384));
    }

    /// Qwen3-Coder-30B-A3B at Q4_K_M: 30.5B weights, of which a token reads 3.3B.
    pub(super) fn qwen3_coder_30b_a3b() -> ModelShape {
        ModelShape {
            layers: 48,
            kv_heads: 4,
            head_dim: 128,
            embedding: 2048,
            ffn: 6144,
            vocab: 151_936,
            parameters: 30_532_122_624,
            weights_bytes: 18_556_685_568,
            experts: Some(Experts { count: 128, used: 8, ffn: 768 }),
        }
    }

    pub(super) fn budget(gpu: Option<u64>, cpu: u64) -> Budget {
        Budget {
            gpus: gpu.map(|bytes| ("GPU".to_string(), bytes)).into_iter().collect(),
            gpu_bandwidth: gpu.map(|_| 360_000_000_000),
            cpu,
            cpu_bandwidth: Some(40_000_000_000),
        }
    }

    #[test]
    fn a_model_goes_on_the_gpu_then_splits_then_runs_on_the_cpu() {
        let shape = qwen_1_5b();
        let request = FitRequest::new(8192);
        let total = memory_need(&shape, &request).total();

        let all = plan(&shape, &request, &budget(Some(total), 16 << 30));
        assert_eq!(all.placement, Placement::Gpu { gpus: vec!["GPU".into()] });

        let half = plan(&shape, &request, &budget(Some(total / 2), 16 << 30));
        let Placement::Split { layers_on_gpu, layers, .. } = half.placement else { panic!("{half:?}") };
        assert!(layers_on_gpu > 0 && layers_on_gpu < layers, "{layers_on_gpu}/{layers}");
        assert!(half.gpu_bytes <= total / 2, "{} > {}", half.gpu_bytes, total / 2);
        assert!(half.estimated_tokens_per_second < all.estimated_tokens_per_second);

        let cpu = plan(&shape, &request, &budget(None, 16 << 30));
        assert_eq!(cpu.placement, Placement::Cpu);
        assert!(cpu.estimated_tokens_per_second < half.estimated_tokens_per_second);

        let nowhere = plan(&shape, &request, &budget(None, total - 1000));
        assert_eq!(nowhere.placement, Placement::DoesNotFit { short_by: 1000 });
        assert_eq!(nowhere.estimated_tokens_per_second, None);
    }
}

#[cfg(test)]
mod moe_tests {
    use super::tests::*;
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_experts_take_memory_but_only_the_used_ones_cost_time() {
        let moe = qwen3_coder_30b_a3b();
        // Published: 30.5B weights in all, 3.3B active per token.
        let active = moe.active_weight_bytes() as f64 / moe.weights_bytes as f64 * 30.5;
        assert!((3.0..3.6).contains(&active), "{active:.2}B active");
        let dense = ModelShape { experts: None, ..moe.clone() };
        let request = FitRequest::new(16_384);
        let cpu = budget(None, 28 * GIB);
        assert_eq!(memory_need(&moe, &request), memory_need(&dense, &request), "every expert is loaded");
        let (fast, slow) = (plan(&moe, &request, &cpu), plan(&dense, &request, &cpu));
        let ratio = fast.estimated_tokens_per_second.unwrap() / slow.estimated_tokens_per_second.unwrap();
        assert!(ratio > 4.0, "a mixture reads a fraction of its weights per token: {ratio:.1}x");
    }

    #[test]
    fn on_a_small_gpu_the_experts_go_to_ram_and_attention_stays() {
        let moe = qwen3_coder_30b_a3b();
        let request = FitRequest::new(32_768);
        let small = budget(Some(7 * GIB), 24 * GIB);
        let fit = plan(&moe, &request, &small);
        let Placement::ExpertsInRam { expert_layers_in_ram, layers, .. } = fit.placement else { panic!("{fit:?}") };
        assert_eq!(layers, 48);
        assert!((1..48).contains(&expert_layers_in_ram), "some experts fit beside attention: {expert_layers_in_ram}");
        assert!(fit.gpu_bytes <= 7 * GIB, "{} bytes on a 7 GiB GPU", fit.gpu_bytes);
        assert!(fit.gpu_bytes + fit.cpu_bytes >= fit.need.total());
        // Better than splitting whole layers, which would leave attention and the cache on the CPU.
        let dense_split = plan(&ModelShape { experts: None, ..moe.clone() }, &request, &small);
        assert!(matches!(dense_split.placement, Placement::Split { .. }), "{dense_split:?}");
        assert!(fit.estimated_tokens_per_second > dense_split.estimated_tokens_per_second);
        // Fewer experts in RAM on a bigger GPU; none on one that holds it all.
        let bigger = plan(&moe, &request, &budget(Some(14 * GIB), 24 * GIB));
        let Placement::ExpertsInRam { expert_layers_in_ram: fewer, .. } = bigger.placement else {
            panic!("{bigger:?}")
        };
        assert!(fewer < expert_layers_in_ram, "{fewer} vs {expert_layers_in_ram}");
        assert!(matches!(plan(&moe, &request, &budget(Some(40 * GIB), 24 * GIB)).placement, Placement::Gpu { .. }));
        // Where RAM cannot take the experts either, it fits nowhere.
        let tight = plan(&moe, &request, &budget(Some(7 * GIB), 8 * GIB));
        assert!(matches!(tight.placement, Placement::DoesNotFit { .. }), "{tight:?}");
    }
}
