//! How llama-server is asked to start, as the user saved it (the app's engine settings and
//! `fixbox engine start` read and write the same), and the launch the fit calculator makes of it on
//! this machine: the layers on the GPU, the context and the KV cache's type.

use std::path::Path;

use fixbox_hardware::fit::{Budget, FitRequest, KvType, ModelShape, Placement, plan};
use fixbox_hardware::gguf::GgufHeader;
use fixbox_store::Store;
use serde::{Deserialize, Serialize};

use crate::{EngineError, LaunchSpec};

/// What the user asks of a launch; `None` leaves a value to the fit calculator or the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(default)]
pub struct EngineOptions {
    /// Tokens; `None`: the catalog's recommendation for the model.
    pub context: Option<u32>,
    /// Layers on the GPU; `None`: as many as fit (none on a machine without a usable GPU).
    pub gpu_layers: Option<u32>,
    /// CPU threads; `None` lets the engine decide.
    pub threads: Option<u32>,
    /// The KV cache's element type; `None`: f16, or q8_0 where only that puts the whole model on the GPU.
    pub kv_cache: Option<KvType>,
}

impl EngineOptions {
    const SETTING: &'static str = "engine.launch";
    /// Where options were kept before the GPU layers could be left to the fit: 0 layers there was the
    /// only default, so it reads as "as many as fit".
    const LEGACY_SETTING: &'static str = "engine.options";

    /// As last saved; all left to the fit and the catalog before that.
    pub fn load(store: &Store) -> Result<Self, EngineError> {
        let read =
            |key| store.setting(key).map_err(|e| EngineError::Config(format!("cannot read the engine settings: {e}")));
        if let Some(value) = read(Self::SETTING)?.filter(|v| !v.is_null()) {
            return serde_json::from_value(value).map_err(|e| {
                EngineError::Config(format!("the saved engine settings are invalid ({e}); save them again"))
            });
        }
        let legacy =
            read(Self::LEGACY_SETTING)?.and_then(|v| serde_json::from_value::<Self>(v).ok()).unwrap_or_default();
        Ok(Self { gpu_layers: legacy.gpu_layers.filter(|n| *n > 0), ..legacy })
    }

    /// Checks them and saves them for the next start.
    pub fn save(&self, store: &Store) -> Result<(), EngineError> {
        self.check()?;
        let value = serde_json::to_value(self).map_err(|e| EngineError::Config(e.to_string()))?;
        store
            .set_setting(Self::SETTING, &value)
            .map_err(|e| EngineError::Config(format!("cannot save the engine settings: {e}")))
    }

    /// Each value in a range llama-server takes, or an error that names it.
    pub fn check(&self) -> Result<(), EngineError> {
        if self.context.is_some_and(|c| !(512..=1_048_576).contains(&c)) {
            return Err(EngineError::Config("the context must be 512 to 1,048,576 tokens".into()));
        }
        if self.threads.is_some_and(|t| !(1..=1024).contains(&t)) {
            return Err(EngineError::Config("threads must be 1 to 1024".into()));
        }
        if self.gpu_layers.is_some_and(|l| l > 1024) {
            return Err(EngineError::Config("GPU layers must be 0 to 1024".into()));
        }
        Ok(())
    }

    /// The launch for a model of `shape` (its catalog context `recommended`) on a machine that offers
    /// `budget`: what the user set, the rest from the fit. A model that fits nowhere is an error that
    /// says by how much.
    pub fn launch(&self, shape: &ModelShape, recommended: u32, budget: &Budget) -> Result<LaunchPlan, EngineError> {
        let context = self.context.unwrap_or(recommended);
        let fit = |kv_type| plan(shape, &FitRequest { context, slots: 1, kv_type }, budget);
        let kv_cache = match self.kv_cache {
            Some(kv) => kv,
            // q8_0 halves the cache at a quality cost too small to measure; worth it only when it
            // brings the last layers onto the GPU.
            None if self.gpu_layers.is_none()
                && !matches!(fit(KvType::F16).placement, Placement::Gpu { .. })
                && matches!(fit(KvType::Q8_0).placement, Placement::Gpu { .. }) =>
            {
                KvType::Q8_0
            }
            None => KvType::F16,
        };
        let fitted = fit(kv_cache);
        let gpus = |names: &[String]| names.join(" + ");
        // llama.cpp counts the output layer too: one more than the blocks puts everything there.
        let all_layers = shape.layers + 1;
        let (gpu_layers, expert_layers_in_ram, why) = match (&fitted.placement, self.gpu_layers) {
            (_, Some(layers)) => (layers, 0, format!("{layers} layers on the GPU, as set")),
            (Placement::Gpu { gpus: names }, None) => {
                (all_layers, 0, format!("all {} layers on {}", shape.layers, gpus(names)))
            }
            (Placement::Split { gpus: names, layers_on_gpu, layers }, None) => (
                *layers_on_gpu,
                0,
                format!("{layers_on_gpu} of {layers} layers on {}, the rest in system memory", gpus(names)),
            ),
            (Placement::ExpertsInRam { gpus: names, expert_layers_in_ram, layers }, None) => (
                all_layers,
                *expert_layers_in_ram,
                format!(
                    "all {layers} layers on {}, the experts of {expert_layers_in_ram} of them in system memory",
                    gpus(names)
                ),
            ),
            (Placement::Cpu, None) if budget.gpus.is_empty() => {
                (0, 0, "on the CPU: no GPU with memory of its own was found".into())
            }
            (Placement::Cpu, None) => (0, 0, "on the CPU: not one layer fits in the GPU's free memory".into()),
            (Placement::DoesNotFit { short_by }, None) => {
                return Err(EngineError::Config(format!(
                    "the model needs {:.1} GiB more memory than this machine offers at a {context}-token context: \
                     pick a smaller quantization or context",
                    *short_by as f64 / f64::from(1 << 30)
                )));
            }
        };
        let why = if kv_cache == KvType::Q8_0 && self.kv_cache.is_none() {
            format!("{why}; KV cache q8_0, which lets the whole model onto the GPU")
        } else {
            why
        };
        Ok(LaunchPlan {
            context,
            gpu_layers,
            expert_layers_in_ram,
            kv_cache,
            threads: self.threads,
            estimated_tokens_per_second: fitted.estimated_tokens_per_second,
            why,
        })
    }
}

impl EngineOptions {
    /// [`EngineOptions::launch`] for the GGUF file `model` on this machine: its header read for the
    /// model's shape, the hardware probed for what it offers.
    pub fn launch_here(&self, model: &Path, recommended: u32) -> Result<LaunchPlan, EngineError> {
        let unreadable =
            |e: &dyn std::fmt::Display| EngineError::Config(format!("cannot read {}: {e}", model.display()));
        let header = GgufHeader::read_file(model).map_err(|e| unreadable(&e))?;
        let facts = header.facts().map_err(|e| unreadable(&e))?;
        let size = std::fs::metadata(model).map_err(|e| EngineError::io(model, e))?.len();
        let report = fixbox_hardware::probe(None).map_err(|e| EngineError::Config(e.to_string()))?;
        self.launch(&facts.shape(size), recommended, &Budget::of(&report))
    }
}

/// A launch as the fit calculator planned it for this machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct LaunchPlan {
    pub context: u32,
    pub gpu_layers: u32,
    /// Layers whose experts stay in system memory (a mixture of experts on a GPU too small for it).
    pub expert_layers_in_ram: u32,
    pub kv_cache: KvType,
    pub threads: Option<u32>,
    pub estimated_tokens_per_second: Option<f64>,
    /// Where the model runs and why, for a person: "all 28 layers on NVIDIA H100".
    pub why: String,
}

impl LaunchPlan {
    /// Sets `spec`'s context, GPU layers, KV cache and threads to this plan's.
    pub fn apply(&self, spec: &mut LaunchSpec) {
        spec.context = self.context;
        spec.gpu_layers = self.gpu_layers;
        spec.expert_layers_in_ram = self.expert_layers_in_ram;
        spec.kv_cache = self.kv_cache;
        spec.threads = self.threads;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    /// Qwen2.5-Coder-7B at Q4_K_M, as its GGUF header and file say.
    pub(super) fn qwen_7b() -> ModelShape {
        ModelShape {
            layers: 28,
            kv_heads: 4,
            head_dim: 128,
            embedding: 3584,
            ffn: 18944,
            vocab: 152_064,
            parameters: 7_615_616_512,
            weights_bytes: 4_683_073_504,
            experts: None,
        }
    }

    /// Qwen3-Coder-30B-A3B at Q4_K_M, as the catalog describes it: 48 layers, 128 experts of which 8
    /// per token.
    fn qwen3_coder_30b_a3b() -> ModelShape {
        let catalog = fixbox_models::Catalog::embedded().unwrap();
        let model = catalog.model("qwen3-coder-30b-a3b-instruct").unwrap();
        model.shape(model.quant(Some("Q4_K_M")).unwrap()).0
    }

    fn machine(gpu: Option<u64>) -> Budget {
        Budget {
            gpus: gpu.map(|bytes| ("NVIDIA GeForce RTX 4060".to_string(), bytes)).into_iter().collect(),
            gpu_bandwidth: gpu.map(|_| 272_000_000_000),
            cpu: 12 * GIB,
            cpu_bandwidth: Some(50_000_000_000),
        }
    }

    #[test]
    fn the_gpu_layers_come_from_the_fit_unless_the_user_sets_them() {
        let auto = EngineOptions::default();
        let cpu = auto.launch(&qwen_7b(), 32_768, &machine(None)).unwrap();
        assert_eq!((cpu.gpu_layers, cpu.kv_cache, cpu.context), (0, KvType::F16, 32_768));
        assert!(cpu.why.contains("no GPU"), "{}", cpu.why);

        let big = auto.launch(&qwen_7b(), 32_768, &machine(Some(22 * GIB))).unwrap();
        assert_eq!((big.gpu_layers, big.kv_cache), (29, KvType::F16), "{}", big.why);
        assert!(big.why.contains("all 28 layers on NVIDIA GeForce RTX 4060"), "{}", big.why);
        assert!(big.estimated_tokens_per_second.unwrap() > cpu.estimated_tokens_per_second.unwrap());

        let small = auto.launch(&qwen_7b(), 32_768, &machine(Some(4 * GIB))).unwrap();
        assert!((1..28).contains(&small.gpu_layers), "{small:?}");
        assert!(small.why.contains(&format!("{} of 28 layers", small.gpu_layers)), "{}", small.why);

        let set = EngineOptions { gpu_layers: Some(7), context: Some(4096), ..auto.clone() };
        let set = set.launch(&qwen_7b(), 32_768, &machine(Some(22 * GIB))).unwrap();
        assert_eq!((set.gpu_layers, set.context), (7, 4096));
    }

    #[test]
    fn a_mixture_of_experts_keeps_its_experts_in_ram_where_the_gpu_is_too_small() {
        // An 8 GB card in a 32 GB desktop.
        let desktop = Budget { cpu: 24 * GIB, ..machine(Some(7 * GIB)) };
        let plan = EngineOptions::default().launch(&qwen3_coder_30b_a3b(), 32_768, &desktop).unwrap();
        assert_eq!(plan.gpu_layers, 49, "every layer's attention on the GPU: {}", plan.why);
        assert!((1..=48).contains(&plan.expert_layers_in_ram), "{plan:?}");
        let expected =
            format!("all 48 layers on NVIDIA GeForce RTX 4060, the experts of {} of them", plan.expert_layers_in_ram);
        assert!(plan.why.contains(&expected), "{}", plan.why);
        // On a GPU that holds it all, nothing stays behind; without a GPU there is nothing to split.
        let whole = EngineOptions::default().launch(&qwen3_coder_30b_a3b(), 32_768, &machine(Some(40 * GIB))).unwrap();
        assert_eq!((whole.gpu_layers, whole.expert_layers_in_ram), (49, 0));
        let cpu = Budget { cpu: 28 * GIB, ..machine(None) };
        let cpu = EngineOptions::default().launch(&qwen3_coder_30b_a3b(), 32_768, &cpu).unwrap();
        assert_eq!((cpu.gpu_layers, cpu.expert_layers_in_ram), (0, 0), "{}", cpu.why);
    }

    #[test]
    fn a_quantized_kv_cache_is_chosen_only_where_it_brings_the_whole_model_onto_the_gpu() {
        let auto = EngineOptions::default();
        let shape = qwen_7b();
        let f16 = |bytes| {
            plan(&shape, &FitRequest { context: 32_768, slots: 1, kv_type: KvType::F16 }, &machine(Some(bytes)))
        };
        // The smallest GPU the whole model fits on with f16, less a little: q8_0 fits it there.
        let mut bytes = 4 * GIB;
        while !matches!(f16(bytes).placement, Placement::Gpu { .. }) {
            bytes += 64 << 20;
        }
        let tight = auto.launch(&shape, 32_768, &machine(Some(bytes - (256 << 20)))).unwrap();
        assert_eq!((tight.kv_cache, tight.gpu_layers), (KvType::Q8_0, 29), "{}", tight.why);
        assert!(tight.why.contains("KV cache q8_0"), "{}", tight.why);
        assert_eq!(auto.launch(&shape, 32_768, &machine(Some(bytes))).unwrap().kv_cache, KvType::F16);
    }

    #[test]
    fn a_model_that_fits_nowhere_says_by_how_much() {
        let tiny = Budget { cpu: 2 * GIB, ..machine(None) };
        let err = EngineOptions::default().launch(&qwen_7b(), 32_768, &tiny).unwrap_err().to_string();
        assert!(err.contains("GiB more memory") && err.contains("smaller quantization"), "{err}");
    }

    #[test]
    fn options_round_trip_and_the_old_cpu_default_reads_as_fitted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        store
            .set_setting("engine.options", &serde_json::json!({"context": 4096, "gpu_layers": 0, "threads": 2}))
            .unwrap();
        assert_eq!(
            EngineOptions::load(&store).unwrap(),
            EngineOptions { context: Some(4096), gpu_layers: None, threads: Some(2), kv_cache: None }
        );
        let mine = EngineOptions { gpu_layers: Some(0), kv_cache: Some(KvType::Q4_0), ..EngineOptions::default() };
        mine.save(&store).unwrap();
        assert_eq!(EngineOptions::load(&store).unwrap(), mine, "a saved 0 now means the CPU");
        assert!(EngineOptions { threads: Some(0), ..mine }.save(&store).is_err());
    }
}

#[cfg(test)]
mod launch_tests {
    use super::*;
    use crate::{Engine as _, EngineKind, LlamaServer, ModelRef};

    #[test]
    fn the_plan_reaches_llama_servers_command_line() {
        let mut spec = LaunchSpec::new(EngineKind::LlamaServer, ModelRef::File("/m/q.gguf".into()), "q", 8192);
        let plan = LaunchPlan {
            context: 16_384,
            gpu_layers: 29,
            expert_layers_in_ram: 20,
            kv_cache: KvType::Q8_0,
            threads: Some(6),
            estimated_tokens_per_second: None,
            why: String::new(),
        };
        plan.apply(&mut spec);
        let args = LlamaServer.command(std::path::Path::new("/bin/llama-server"), &spec).unwrap().args.join(" ");
        for part in [
            "--ctx-size 16384",
            "--n-gpu-layers 29",
            "--threads 6",
            "--n-cpu-moe 20",
            "--cache-type-k q8_0 --cache-type-v q8_0 --flash-attn on",
        ] {
            assert!(args.contains(part), "{part} is not in {args}");
        }
        assert!(!args.contains("--load-mode"), "layers on the GPU load from the memory map: {args}");
        assert!(args.contains("--spec-type ngram-simple"), "n-gram drafts are on by default: {args}");
        spec.ngram_drafts = false;
        let args = LlamaServer.command(std::path::Path::new("/bin/llama-server"), &spec).unwrap().args.join(" ");
        assert!(!args.contains("--spec-type"), "{args}");
    }

    /// llama-server's command line for Qwen2.5-Coder-7B on a machine as the hardware probe read it.
    fn launch_line(reading: &str) -> (String, LaunchPlan) {
        let report: fixbox_hardware::HardwareReport = serde_json::from_str(reading).unwrap();
        let plan = EngineOptions::default().launch(&super::tests::qwen_7b(), 16_384, &Budget::of(&report)).unwrap();
        let mut spec = LaunchSpec::new(EngineKind::LlamaServer, ModelRef::File("/m/q.gguf".into()), "q", 8192);
        plan.apply(&mut spec);
        let args = LlamaServer.command(std::path::Path::new("/bin/llama-server"), &spec).unwrap().args.join(" ");
        (args, plan)
    }

    #[test]
    fn the_launch_line_carries_the_plan_for_the_gpu_the_probe_read_or_says_there_is_none() {
        // Recorded readings (fixbox-models' fixtures): an 8 GB RTX 4060 as NVML reports it, and a laptop
        // whose only GPU is integrated, as sysfs shows it.
        let (args, plan) = launch_line(include_str!("../../fixbox-models/tests/fixtures/machines/rtx4060-8gb.json"));
        assert!(args.contains("--n-gpu-layers 29") && args.contains("--ctx-size 16384"), "{args}");
        assert!(plan.why.contains("all 28 layers on NVIDIA GeForce RTX 4060"), "{}", plan.why);
        let (args, plan) = launch_line(include_str!("../../fixbox-models/tests/fixtures/machines/laptop-no-gpu.json"));
        assert!(args.contains("--n-gpu-layers 0") && args.contains("--ctx-size 16384"), "{args}");
        assert!(args.contains("--load-mode none"), "{args}");
        assert_eq!(plan.why, "on the CPU: no GPU with memory of its own was found");
    }
}
