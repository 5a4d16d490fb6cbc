//! Which catalog models to run on a machine, per use: each pick with the quantization and the largest
//! context that fit, where it runs and how fast (an estimate), and why the bigger models do not make it.
//!
//! Of the models that fit, the one expected to fix the most here comes first: its published SWE-bench
//! Verified figure, discounted where it generates below a comfortable speed (a session makes several
//! tries, and a slow model makes fewer in the same time). Models without a figure, and chat models,
//! follow by where they run (more of it on the GPU first), then by size.

use fixbox_hardware::HardwareReport;
use fixbox_hardware::fit::{self, Budget, FitPlan, FitRequest, ModelShape, Placement};
use serde::{Deserialize, Serialize};

use crate::{Catalog, CatalogModel, EvalScore, PublishedScore, Quant, Role};

/// Below this many generated tokens per second (estimated), a model is too slow to wait for: a
/// 300-token patch would take over 100 s.
pub const MIN_TOKENS_PER_SECOND: f64 = 3.0;
/// At this speed (estimated) a 300-token patch takes 30 s; below it a model's fix rate counts in
/// proportion to its speed.
pub const COMFORTABLE_TOKENS_PER_SECOND: f64 = 10.0;
/// Picks shown per use.
const PICKS: usize = 3;

/// What a model is wanted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "kebab-case")]
pub enum Use {
    /// Auto-fix: a coder model, with room for source files and test output.
    CodeFix,
    /// Questions and explanations: general and reasoning models.
    Chat,
}

impl Use {
    fn fits_role(self, role: Role) -> bool {
        match self {
            Self::CodeFix => role == Role::Coder,
            Self::Chat => matches!(role, Role::General | Role::Reasoning),
        }
    }

    /// The least context worth running with.
    pub fn min_context(self) -> u32 {
        match self {
            // A failing test's output, the files it touches and the patch history.
            Self::CodeFix => 16_384,
            Self::Chat => 4096,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::CodeFix => "code fix",
            Self::Chat => "chat",
        }
    }
}

/// One recommended model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Pick {
    pub model_id: String,
    pub model_name: String,
    pub quant: String,
    /// The weights' size is estimated from parameters × bits per weight (no size is pinned for it).
    pub size_estimated: bool,
    pub plan: FitPlan,
    /// The expected fix rate: what its makers (or a paper) report on SWE-bench Verified.
    pub swe_bench_verified: Option<PublishedScore>,
    /// What it resolved on Fixbox's own eval, where one was run.
    pub fixbox_eval: Option<EvalScore>,
    pub why: String,
}

/// A bigger model that did not make it, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Passed {
    pub model_id: String,
    pub model_name: String,
    pub why: String,
}

/// The advice for one use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct UseAdvice {
    #[serde(rename = "use")]
    pub for_use: Use,
    /// Best first.
    pub picks: Vec<Pick>,
    /// Models bigger than every pick that were passed over.
    pub passed_over: Vec<Passed>,
    /// Why there is no pick at all, when there is none.
    pub none_fits: Option<String>,
}

/// What the machine offers a model, said once for all the why-lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Offer {
    /// Bytes the GPU(s) offer a model, after their runtime's share.
    pub gpu_bytes: u64,
    pub gpu_names: Vec<String>,
    /// System memory a model may take, after a reserve for the OS, the desktop and the sandbox.
    pub cpu_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Recommendations {
    pub offer: Offer,
    pub uses: Vec<UseAdvice>,
}

impl Offer {
    fn of(budget: &Budget) -> Self {
        Self { gpu_bytes: budget.gpu_total(), gpu_names: budget.gpu_names(), cpu_bytes: budget.cpu }
    }
}

impl CatalogModel {
    /// The shape the fit calculator sizes for `quant`, and whether its size is an estimate.
    pub fn shape(&self, quant: &Quant) -> (ModelShape, bool) {
        let (weights_bytes, estimated) = match quant.size {
            Some(size) => (size, false),
            None => (estimate_size(self.parameters, &quant.name), true),
        };
        (self.architecture.shape(self.parameters, weights_bytes), estimated)
    }
}

/// A GGUF file's size from its parameter count and quantization: the average bits per weight of
/// llama.cpp's mixes (Q4_K_M keeps some tensors at Q6_K), as published GGUF files of Qwen2.5 and
/// Llama 3.1 measure them.
fn estimate_size(parameters: u64, quant: &str) -> u64 {
    let bits = match quant.to_ascii_uppercase().as_str() {
        "Q2_K" => 3.0,
        "Q3_K_M" => 3.9,
        "Q4_0" => 4.6,
        "Q4_K_S" => 4.7,
        "Q4_K_M" => 4.92,
        "Q4_1" => 5.1,
        "Q5_K_M" => 5.71,
        "Q6_K" => 6.57,
        "Q8_0" => 8.5,
        "BF16" | "F16" => 16.0,
        _ => 8.5,
    };
    (parameters as f64 * bits / 8.0) as u64
}

/// The best models for each use on `hardware`.
pub fn recommend(catalog: &Catalog, hardware: &HardwareReport) -> Recommendations {
    let budget = Budget::of(hardware);
    let offer = Offer::of(&budget);
    let uses = [Use::CodeFix, Use::Chat].into_iter().map(|u| advise(catalog, &budget, &offer, u)).collect();
    Recommendations { offer, uses }
}

fn advise(catalog: &Catalog, budget: &Budget, offer: &Offer, for_use: Use) -> UseAdvice {
    let mut candidates: Vec<&CatalogModel> = catalog.models.iter().filter(|m| for_use.fits_role(m.role)).collect();
    candidates.sort_by(|a, b| b.parameters.cmp(&a.parameters).then_with(|| a.id.cmp(&b.id)));
    let mut usable = Vec::new();
    let mut unusable = Vec::new();
    for model in candidates {
        match best_fit(model, budget, offer, for_use) {
            Ok((tier, pick)) => usable.push(Ranked { tier, parameters: model.parameters, pick }),
            Err(why) => unusable.push((model, passed(model, why))),
        }
    }
    // A stable sort: at the same expected fix rate and tier, bigger models stay first.
    usable.sort_by(|a, b| b.expected_fix_rate().total_cmp(&a.expected_fix_rate()).then(a.tier.cmp(&b.tier)));
    let rest = usable.split_off(usable.len().min(PICKS));
    let largest_pick = usable.iter().map(|r| r.parameters).max().unwrap_or(0);
    let best_rate = usable.iter().map(|r| published_rate(&r.pick.swe_bench_verified)).fold(-1.0, f64::max);
    // Models bigger than every pick, or published to fix more, are worth a why; smaller ones that
    // ranked lower are not news.
    let worth_a_why = |parameters: u64, score: &Option<PublishedScore>| {
        parameters > largest_pick || published_rate(score) > best_rate
    };
    let mut passed_over: Vec<Passed> = match usable.last() {
        Some(last) => rest
            .iter()
            .filter(|r| worth_a_why(r.parameters, &r.pick.swe_bench_verified))
            .map(|r| Passed {
                why: format!("{}: {}; {}", r.pick.model_name, r.pick.why, r.ranked_below(last)),
                model_id: r.pick.model_id.clone(),
                model_name: r.pick.model_name.clone(),
            })
            .collect(),
        None => Vec::new(),
    };
    passed_over.extend(
        unusable
            .into_iter()
            .filter(|(model, _)| worth_a_why(model.parameters, &model.swe_bench_verified))
            .map(|(_, p)| p),
    );
    let mut picks: Vec<Pick> = usable.iter().map(|r| r.pick.clone()).collect();
    if let [first, second, ..] = usable.as_slice() {
        let because = match Ranking::between(second, first) {
            Ranking::FixesMore | Ranking::Slower => {
                "it is expected to fix the most here (published fix rates, counted down for models below 10 tokens/s)"
            }
            Ranking::MoreOnGpu => "it runs more of itself on the GPU",
            Ranking::Bigger => "it is the biggest that runs here",
        };
        picks[0].why.push_str(&format!("; first because {because}"));
    }
    if picks.is_empty()
        && let Some(slow) = fastest_slow_fit(catalog, budget, for_use)
    {
        // The speed is an estimate from one reading of the memory bandwidth, which a busy moment (the
        // app's own window starting) can halve: a model that fits is offered as the fastest this
        // machine runs, with its estimate, rather than nothing.
        passed_over.retain(|p| p.model_id != slow.model_id);
        picks.push(slow);
    }
    let none_fits = picks.is_empty().then(|| {
        format!(
            "no {} model fits at {} context: each needs more than the {} this machine offers, or runs too slowly",
            for_use.label(),
            context_text(for_use.min_context()),
            offer_text(offer)
        )
    });
    UseAdvice { for_use, picks, passed_over, none_fits }
}

/// A model that runs here, with what ranks it.
struct Ranked {
    tier: Tier,
    parameters: u64,
    pick: Pick,
}

impl Ranked {
    /// The published SWE-bench Verified figure, in proportion to its speed below a comfortable one;
    /// below every figure where there is none.
    fn expected_fix_rate(&self) -> f64 {
        let rate = published_rate(&self.pick.swe_bench_verified);
        let speed = self.pick.plan.estimated_tokens_per_second.map_or(1.0, |tps| tps / COMFORTABLE_TOKENS_PER_SECOND);
        if rate < 0.0 { rate } else { rate * speed.min(1.0) }
    }

    /// Why this model ranks below `above`, one of the picks.
    fn ranked_below(&self, above: &Ranked) -> String {
        let fixes_more = "the models above are expected to fix more here";
        match (Ranking::between(self, above), &self.pick.swe_bench_verified) {
            (Ranking::Slower, Some(score)) => format!(
                "{fixes_more}: it resolves {:.1}%, but at {}, below the {COMFORTABLE_TOKENS_PER_SECOND:.0} tokens/s \
                 that leaves time for several tries",
                score.percent,
                speed_text(self.pick.plan.estimated_tokens_per_second)
            ),
            (Ranking::FixesMore, Some(_)) => fixes_more.into(),
            (Ranking::FixesMore | Ranking::Slower, None) => {
                format!("{fixes_more}: it has no published SWE-bench Verified figure")
            }
            (Ranking::MoreOnGpu, _) => "the models above run more of it on the GPU".into(),
            (Ranking::Bigger, _) => "the models above are bigger".into(),
        }
    }
}

/// A published fix rate in percent; -1 (below every rate) where there is none.
fn published_rate(score: &Option<PublishedScore>) -> f64 {
    score.as_ref().map_or(-1.0, |s| s.percent)
}

/// What puts one model above another, in the order it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ranking {
    /// A higher published fix rate.
    FixesMore,
    /// A fix rate as high or higher, but counted down for a slow speed.
    Slower,
    MoreOnGpu,
    Bigger,
}

impl Ranking {
    fn between(below: &Ranked, above: &Ranked) -> Self {
        let rate = |r: &Ranked| published_rate(&r.pick.swe_bench_verified);
        if below.expected_fix_rate() < above.expected_fix_rate() {
            if rate(below) >= rate(above) { Self::Slower } else { Self::FixesMore }
        } else if below.tier > above.tier {
            Self::MoreOnGpu
        } else {
            Self::Bigger
        }
    }
}

/// Of the models that fit this machine's memory but fall below the speed worth waiting for, the one
/// estimated fastest, at the use's least context.
fn fastest_slow_fit(catalog: &Catalog, budget: &Budget, for_use: Use) -> Option<Pick> {
    let fits = catalog.models.iter().filter(|m| for_use.fits_role(m.role)).filter_map(|model| {
        let quant = model.quants.first()?;
        let (shape, size_estimated) = model.shape(quant);
        let plan = fit::plan(&shape, &FitRequest::new(for_use.min_context()), budget);
        plan.fits().then(|| pick(model, quant, plan, size_estimated))
    });
    let mut fastest = fits.max_by(|a, b| {
        let speed = |p: &Pick| p.plan.estimated_tokens_per_second.unwrap_or(0.0);
        speed(a).total_cmp(&speed(b))
    })?;
    fastest.why.push_str(&format!(
        "; below the {MIN_TOKENS_PER_SECOND:.0} tokens/s worth waiting for, but the fastest model this machine runs"
    ));
    Some(fastest)
}

fn passed(model: &CatalogModel, why: String) -> Passed {
    Passed { model_id: model.id.clone(), model_name: model.name.clone(), why }
}

/// Entirely on the GPU (or, without a GPU, on the CPU) ranks above split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Whole,
    Split,
}

/// The best way to run `model`: the quantization with the most bits that runs entirely on a GPU at
/// its recommended context, else the recommended quantization (the catalog's first) at the largest
/// context up to its recommended one that runs fast enough anywhere. The error says why none does.
fn best_fit(model: &CatalogModel, budget: &Budget, offer: &Offer, for_use: Use) -> Result<(Tier, Pick), String> {
    let contexts = contexts(model, for_use);
    let mut by_size: Vec<&Quant> = model.quants.iter().collect();
    by_size.sort_by_key(|q| std::cmp::Reverse(model.shape(q).0.weights_bytes));
    let has_gpu = !budget.gpus.is_empty();
    let whole = |plan: &FitPlan| match plan.placement {
        Placement::Gpu { .. } => true,
        Placement::Cpu => !has_gpu && fast_enough(plan),
        _ => false,
    };
    let recommended = recommended_context(model, for_use);
    // More bits only where they cost no speed that matters: on a GPU. On a CPU every byte is read per token.
    for quant in by_size.iter().filter(|_| has_gpu) {
        let (shape, size_estimated) = model.shape(quant);
        if let Some(plan) =
            contexts.iter().map(|&c| fit::plan(&shape, &FitRequest::new(c), budget)).find(|plan| whole(plan))
            && plan.request.context >= recommended
        {
            return Ok((Tier::Whole, pick(model, quant, plan, size_estimated)));
        }
    }
    let Some(quant) = model.quants.first() else { return Err("it has no quantization".into()) };
    let (shape, size_estimated) = model.shape(quant);
    // Short of the whole model on a GPU, a context beyond the recommended one costs speed for room the
    // session rarely needs.
    for &context in contexts.iter().filter(|&&c| c <= recommended) {
        let plan = fit::plan(&shape, &FitRequest::new(context), budget);
        if plan.fits() && fast_enough(&plan) {
            let tier = if whole(&plan) { Tier::Whole } else { Tier::Split };
            return Ok((tier, pick(model, quant, plan, size_estimated)));
        }
    }
    let least = fit::plan(&shape, &FitRequest::new(for_use.min_context()), budget);
    Err(why_not(model, quant, &least, offer))
}

/// Context lengths to try, largest first: the model's maximum, halving down to the use's minimum, and
/// the recommended context.
fn contexts(model: &CatalogModel, for_use: Use) -> Vec<u32> {
    let mut out = vec![recommended_context(model, for_use)];
    let mut context = model.context_max;
    while context >= for_use.min_context() {
        out.push(context);
        context /= 2;
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    out
}

fn recommended_context(model: &CatalogModel, for_use: Use) -> u32 {
    model.context_recommended.max(for_use.min_context()).min(model.context_max)
}

fn fast_enough(plan: &FitPlan) -> bool {
    // Without a bandwidth reading there is no estimate; the plan stands on memory alone.
    plan.estimated_tokens_per_second.is_none_or(|tps| tps >= MIN_TOKENS_PER_SECOND)
}

fn pick(model: &CatalogModel, quant: &Quant, plan: FitPlan, size_estimated: bool) -> Pick {
    let mut why =
        format!("{} with {}: {}", quant.name, context_text(plan.request.context), plan_text(&plan, size_estimated));
    if let Some(score) = &model.swe_bench_verified {
        why.push_str(&format!("; resolves {:.1}% of SWE-bench Verified ({})", score.percent, score.scaffold));
    }
    if let Some(eval) = &model.fixbox_eval {
        why.push_str(&format!("; {} of {} on Fixbox's eval ({})", eval.resolved, eval.tasks, eval.mode));
    }
    Pick {
        model_id: model.id.clone(),
        model_name: model.name.clone(),
        quant: quant.name.clone(),
        size_estimated,
        plan,
        swe_bench_verified: model.swe_bench_verified.clone(),
        fixbox_eval: model.fixbox_eval.clone(),
        why,
    }
}

fn why_not(model: &CatalogModel, quant: &Quant, least: &FitPlan, offer: &Offer) -> String {
    let needs = format!(
        "needs {} with {} at {} context",
        gb(least.need.total()),
        quant.name,
        context_text(least.request.context)
    );
    match &least.placement {
        Placement::DoesNotFit { .. } => {
            format!("{} {needs}, more than the {} this machine offers", model.name, offer_text(offer))
        }
        _ => format!(
            "{} {needs}; {} it would generate about {} (estimate), below the {MIN_TOKENS_PER_SECOND:.0} tokens/s worth waiting for",
            model.name,
            where_text(&least.placement),
            speed_text(least.estimated_tokens_per_second),
        ),
    }
}

fn plan_text(plan: &FitPlan, size_estimated: bool) -> String {
    let need = &plan.need;
    let weights =
        if size_estimated { format!("~{} weights", gb(need.weights)) } else { format!("{} weights", gb(need.weights)) };
    format!(
        "{} needs {} ({weights}, {} KV cache, {} buffers); {}",
        where_text(&plan.placement),
        gb(need.total()),
        gb(need.kv_cache),
        gb(need.compute + need.overhead),
        match plan.estimated_tokens_per_second {
            Some(tps) => format!("about {} (estimate)", speed_text(Some(tps))),
            None => "speed unknown (no memory bandwidth reading)".into(),
        }
    )
}

fn where_text(placement: &Placement) -> String {
    match placement {
        Placement::Gpu { gpus } => format!("all on {}", gpus.join(" + ")),
        Placement::Split { gpus, layers_on_gpu, layers } => {
            format!("split, {layers_on_gpu} of {layers} layers on {} and the rest on the CPU,", gpus.join(" + "))
        }
        Placement::ExpertsInRam { gpus, expert_layers_in_ram, layers } => {
            format!("on {} with the experts of {expert_layers_in_ram} of {layers} layers in RAM,", gpus.join(" + "))
        }
        Placement::Cpu => "on the CPU".into(),
        Placement::DoesNotFit { .. } => "nowhere".into(),
    }
}

fn offer_text(offer: &Offer) -> String {
    if offer.gpu_names.is_empty() {
        format!("{} of RAM", gb(offer.cpu_bytes))
    } else {
        format!("{} on {} and {} of RAM", gb(offer.gpu_bytes), offer.gpu_names.join(" + "), gb(offer.cpu_bytes))
    }
}

fn speed_text(tps: Option<f64>) -> String {
    match tps {
        Some(t) if t < 10.0 => format!("{t:.1} tokens/s"),
        Some(t) => format!("{t:.0} tokens/s"),
        None => "an unknown number of tokens/s".into(),
    }
}

fn context_text(context: u32) -> String {
    if context.is_multiple_of(1024) { format!("{}k", context / 1024) } else { context.to_string() }
}

/// Gibibytes, the unit of a GPU's "24 GB" and of `nvidia-smi`'s MiB.
pub fn gb(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}
