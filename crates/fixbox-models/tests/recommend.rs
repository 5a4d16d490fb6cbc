//! Recommendations for recorded readings of real machines (tests/fixtures/machines; where each reading
//! comes from is in tests/fixtures/README.md), held to the seed guidance: 1.5B ~2-3 GB, 7B ~6-8 GB,
//! 13-14B ~12-16 GB, 32B ~24-32 GB, and a 24B coder on a 24 GB GPU or a 32 GB Mac; the coder expected
//! to fix the most comes first, a mixture of experts with its experts in RAM where the GPU is small.
#![expect(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "test helpers: a failure stops the test with its message, after the advice it judged is printed"
)]

use fixbox_hardware::HardwareReport;
use fixbox_hardware::fit::{FitRequest, Placement, memory_need};
use fixbox_models::{Catalog, Recommendations, Use, UseAdvice, recommend};

fn machine(name: &str) -> HardwareReport {
    let path = format!("tests/fixtures/machines/{name}.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn advice(recommendations: &Recommendations, for_use: Use) -> &UseAdvice {
    recommendations.uses.iter().find(|u| u.for_use == for_use).unwrap()
}

fn show(name: &str) -> Recommendations {
    let recommendations = recommend(&Catalog::embedded().unwrap(), &machine(name));
    println!("== {name}: {:?}", recommendations.offer);
    for advice in &recommendations.uses {
        for pick in &advice.picks {
            println!("  {:?} pick {}: {}", advice.for_use, pick.model_id, pick.why);
        }
        for passed in &advice.passed_over {
            println!("  {:?} not {}: {}", advice.for_use, passed.model_id, passed.why);
        }
        if let Some(why) = &advice.none_fits {
            println!("  {:?}: {why}", advice.for_use);
        }
    }
    recommendations
}

fn ids(advice: &UseAdvice) -> Vec<&str> {
    advice.picks.iter().map(|p| p.model_id.as_str()).collect()
}

fn pick<'a>(advice: &'a UseAdvice, id: &str) -> &'a fixbox_models::Pick {
    advice.picks.iter().find(|p| p.model_id == id).unwrap_or_else(|| panic!("{id} is not a pick: {:?}", ids(advice)))
}

fn why_not<'a>(advice: &'a UseAdvice, id: &str) -> &'a str {
    &advice.passed_over.iter().find(|p| p.model_id == id).unwrap_or_else(|| panic!("no why for {id}")).why
}

const GIB: f64 = (1u64 << 30) as f64;

#[test]
fn the_seed_sizes_hold_at_full_context() {
    let catalog = Catalog::embedded().unwrap();
    for (id, low, high) in [
        ("qwen2.5-coder-1.5b-instruct", 2.0, 3.0),
        ("qwen2.5-coder-7b-instruct", 6.0, 8.0),
        ("qwen2.5-coder-14b-instruct", 12.0, 16.0),
        ("qwen2.5-coder-32b-instruct", 24.0, 32.0),
    ] {
        let model = catalog.model(id).unwrap();
        let (shape, _) = model.shape(model.quant(Some("Q4_K_M")).unwrap());
        let gib = memory_need(&shape, &FitRequest::new(model.context_max)).total() as f64 / GIB;
        assert!((low..=high).contains(&gib), "{id} at {} tokens needs {gib:.1} GiB", model.context_max);
    }
}

#[test]
fn a_size_estimate_is_close_to_the_published_file() {
    // Published Q4_K_M files (Hugging Face, Qwen/Qwen2.5-Coder-*-Instruct-GGUF and
    // bartowski/Meta-Llama-3.1-8B-Instruct-GGUF): 7B 4,683,073,184; 32B 19,851,336,224; Llama 8B 4,920,739,232.
    let catalog = Catalog::embedded().unwrap();
    for (id, published) in [
        ("qwen2.5-coder-7b-instruct", 4_683_073_184u64),
        ("qwen2.5-coder-32b-instruct", 19_851_336_224),
        ("llama-3.1-8b-instruct", 4_920_739_232),
    ] {
        let model = catalog.model(id).unwrap();
        let (shape, estimated) = model.shape(model.quant(Some("Q4_K_M")).unwrap());
        assert!(estimated);
        let error = (shape.weights_bytes as f64 - published as f64).abs() / published as f64;
        assert!(error < 0.03, "{id}: {} vs {published}", shape.weights_bytes);
    }
}

/// The first code-fix pick and its why line.
fn first(advice: &UseAdvice) -> &fixbox_models::Pick {
    advice.picks.first().unwrap_or_else(|| panic!("no pick: {:?}", advice.none_fits))
}

#[test]
fn a_24_gb_gpu_runs_the_coder_that_fixes_the_most_whole_on_it() {
    let r = show("rtx4090");
    let code = advice(&r, Use::CodeFix);
    assert_eq!(ids(code), ["devstral-small-2-2512", "qwen3-coder-30b-a3b-instruct", "devstral-small-2505"]);
    let pick = first(code);
    assert!(matches!(pick.plan.placement, Placement::Gpu { .. }), "{:?}", pick.plan);
    assert!(pick.plan.request.context >= 32_768, "{}", pick.why);
    for part in [
        "all on NVIDIA GeForce RTX 4090",
        "resolves 68.0% of SWE-bench Verified",
        "first because it is expected to fix the most here",
    ] {
        assert!(pick.why.contains(part), "{part:?} not in {}", pick.why);
    }
    assert_eq!(pick.swe_bench_verified.as_ref().map(|s| s.percent), Some(68.0));
    // Every pick fits in what the card offers, fast.
    for p in &code.picks {
        assert!(p.plan.gpu_bytes <= r.offer.gpu_bytes, "{}", p.why);
        assert!(p.plan.estimated_tokens_per_second.unwrap() > 20.0, "{}", p.why);
        assert!(p.why.contains("(estimate)"), "{}", p.why);
    }
    // The biggest that fits is not the pick, and says why.
    let why = why_not(code, "qwen2.5-coder-32b-instruct");
    assert!(
        why.contains("all on NVIDIA GeForce RTX 4090")
            && why.contains("the models above are expected to fix more here"),
        "{why}"
    );
}

#[test]
fn an_8_gb_gpu_runs_the_mixture_of_experts_coder_with_its_experts_in_ram() {
    let r = show("rtx4060-8gb");
    let code = advice(&r, Use::CodeFix);
    let pick = first(code);
    assert_eq!(pick.model_id, "qwen3-coder-30b-a3b-instruct", "{:?}", ids(code));
    let Placement::ExpertsInRam { expert_layers_in_ram, layers, .. } = &pick.plan.placement else {
        panic!("{}", pick.why)
    };
    assert!((1..=*layers).contains(expert_layers_in_ram), "{}", pick.why);
    assert!(pick.plan.gpu_bytes <= r.offer.gpu_bytes, "{}", pick.why);
    let expected = format!("on NVIDIA GeForce RTX 4060 with the experts of {expert_layers_in_ram} of 48 layers in RAM");
    assert!(pick.why.contains(&expected), "{}", pick.why);
    assert!(pick.plan.estimated_tokens_per_second.unwrap() >= 10.0, "{}", pick.why);
    assert!(pick.why.contains("resolves 51.6% of SWE-bench Verified (OpenHands)"), "{}", pick.why);
    // The 24B coders split across the card and the CPU: fewer tries in the same time.
    assert!(code.picks.iter().position(|p| p.model_id == "devstral-small-2-2512").is_none_or(|i| i > 0));
}

#[test]
fn a_32_gb_desktop_without_a_gpu_runs_the_mixture_of_experts_coder_on_the_cpu() {
    let r = show("desktop-32gb-no-gpu");
    let code = advice(&r, Use::CodeFix);
    let pick = first(code);
    assert_eq!(pick.model_id, "qwen3-coder-30b-a3b-instruct", "{:?}", ids(code));
    assert_eq!(pick.plan.placement, Placement::Cpu, "{}", pick.why);
    // 18.6 GB of weights, of which a token reads about 2: a dense model that size would crawl.
    assert!(pick.plan.estimated_tokens_per_second.unwrap() >= 10.0, "{}", pick.why);
    assert!(pick.why.contains("on the CPU") && pick.why.contains("first because it is expected to fix the most here"));
    let why = why_not(code, "devstral-small-2-2512");
    assert!(why.contains("below the 3 tokens/s"), "{why}");
}

#[test]
fn an_rtx_3060_runs_the_moe_coder_first_and_says_why_not_the_32b() {
    let r = show("rtx3060");
    let code = advice(&r, Use::CodeFix);
    assert_eq!(first(code).model_id, "qwen3-coder-30b-a3b-instruct");
    assert!(matches!(first(code).plan.placement, Placement::ExpertsInRam { .. }), "{}", first(code).why);
    let eight = pick(code, "klear-agentforge-8b");
    assert!(matches!(eight.plan.placement, Placement::Gpu { .. }), "{}", eight.why);
    assert!(code.picks.iter().all(|p| p.model_id != "qwen2.5-coder-32b-instruct"));
    let why = why_not(code, "qwen2.5-coder-32b-instruct");
    assert!(why.contains("split") && why.contains("below the 3 tokens/s"), "{why}");
}

#[test]
fn a_32_gb_mac_runs_the_24b_coder_on_metal() {
    let r = show("m2-max-32gb");
    assert_eq!(fixbox_hardware::apple_published_bandwidth("Apple M2 Max"), Some(400_000_000_000));
    // Metal may use about two thirds of 32 GiB; the rest is the CPU's.
    assert!(r.offer.gpu_bytes < 32 * (1 << 30) * 2 / 3 && r.offer.gpu_bytes > 20 * (1 << 30), "{:?}", r.offer);
    let code = advice(&r, Use::CodeFix);
    assert_eq!(ids(code)[0], "devstral-small-2-2512", "{:?}", ids(code));
    assert!(matches!(code.picks[0].plan.placement, Placement::Gpu { .. }));
    assert!(why_not(code, "qwen2.5-coder-32b-instruct").contains("split"));
}

#[test]
fn a_laptop_without_a_gpu_runs_small_models_on_the_cpu_and_says_why_not_bigger() {
    let r = show("laptop-no-gpu");
    assert!(r.offer.gpu_names.is_empty(), "an integrated GPU without VRAM offers none: {:?}", r.offer);
    let code = advice(&r, Use::CodeFix);
    assert_eq!(ids(code), ["klear-agentforge-8b", "qwen2.5-coder-7b-instruct", "qwen2.5-coder-3b-instruct"]);
    assert!(code.picks.iter().all(|p| p.plan.placement == Placement::Cpu));
    assert!(why_not(code, "qwen2.5-coder-14b-instruct").contains("tokens/s (estimate), below"));
    let why = why_not(code, "qwen2.5-coder-32b-instruct");
    assert!(why.contains("more than the") && why.contains("of RAM this machine offers"), "{why}");
    assert!(advice(&r, Use::Chat).none_fits.is_none());
}

#[test]
fn a_machine_too_slow_for_any_model_is_still_offered_the_fastest_that_fits() {
    // The laptop's reading with its memory bandwidth cut to a sliver: every model's estimate falls
    // below what is worth waiting for, as a busy moment can make it.
    let mut reading = machine("laptop-no-gpu");
    reading.memory.bandwidth_bytes_per_s = Some(1_000_000_000);
    let r = recommend(&Catalog::embedded().unwrap(), &reading);
    let code = advice(&r, Use::CodeFix);
    assert_eq!(ids(code), ["qwen2.5-coder-1.5b-instruct"]);
    let why = &code.picks[0].why;
    assert!(why.contains("(estimate)") && why.contains("the fastest model this machine runs"), "{why}");
    assert!(code.none_fits.is_none());
    assert!(code.passed_over.iter().all(|p| p.model_id != "qwen2.5-coder-1.5b-instruct"));
}

#[test]
fn two_gpus_hold_a_coder_together_at_a_context_one_could_not() {
    let r = show("two-rtx4090");
    let code = advice(&r, Use::CodeFix);
    let pick = first(code);
    assert_eq!(pick.model_id, "devstral-small-2-2512");
    let Placement::Gpu { gpus } = &pick.plan.placement else { panic!("{}", pick.why) };
    assert_eq!(gpus.len(), 2);
    assert!(pick.plan.gpu_bytes > 24 * (1 << 30), "more than one card holds: {}", pick.why);
    assert!(pick.plan.request.context >= 131_072, "{}", pick.why);
}
