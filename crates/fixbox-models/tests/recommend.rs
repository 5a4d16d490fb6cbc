//! Recommendations for recorded readings of real machines (tests/fixtures/machines; where each reading
//! comes from is in tests/fixtures/README.md), held to the seed guidance: 1.5B ~2-3 GB, 7B ~6-8 GB,
//! 13-14B ~12-16 GB, 32B ~24-32 GB, and a 24B coder on a 24 GB GPU or a 32 GB Mac.
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

#[test]
fn an_rtx_4090_runs_a_24b_coder_and_a_32b_one_at_16k() {
    let r = show("rtx4090");
    let code = advice(&r, Use::CodeFix);
    let devstral = pick(code, "devstral-small-2505");
    assert!(matches!(devstral.plan.placement, Placement::Gpu { .. }), "{:?}", devstral.plan);
    assert!(devstral.plan.request.context >= 32_768, "{}", devstral.why);
    let qwen32 = pick(code, "qwen2.5-coder-32b-instruct");
    assert_eq!(qwen32.plan.request.context, 16_384, "{}", qwen32.why);
    assert!(qwen32.why.contains("all on NVIDIA GeForce RTX 4090"), "{}", qwen32.why);
    // Every pick fits in what the card offers.
    for p in &code.picks {
        assert!(p.plan.gpu_bytes <= r.offer.gpu_bytes, "{}", p.why);
        assert!(p.plan.estimated_tokens_per_second.unwrap() > 20.0, "{}", p.why);
        assert!(p.why.contains("(estimate)"), "{}", p.why);
    }
    assert!(code.passed_over.is_empty(), "nothing bigger was passed over: {:?}", code.passed_over);
}

#[test]
fn an_rtx_3060_gets_a_7b_coder_whole_and_says_why_not_the_24b_and_32b() {
    let r = show("rtx3060");
    let code = advice(&r, Use::CodeFix);
    let seven = pick(code, "qwen2.5-coder-7b-instruct");
    assert!(matches!(seven.plan.placement, Placement::Gpu { .. }), "{}", seven.why);
    assert_eq!(seven.plan.request.context, 32_768);
    assert!(code.picks.iter().all(|p| p.model_id != "qwen2.5-coder-32b-instruct"));
    let why = why_not(code, "qwen2.5-coder-32b-instruct");
    assert!(why.contains("split") && why.contains("below the 3 tokens/s"), "{why}");
    assert!(why_not(code, "devstral-small-2505").contains("layers on NVIDIA GeForce RTX 3060"));
}

#[test]
fn a_32_gb_mac_runs_the_24b_coder_on_metal() {
    let r = show("m2-max-32gb");
    assert_eq!(fixbox_hardware::apple_published_bandwidth("Apple M2 Max"), Some(400_000_000_000));
    // Metal may use about two thirds of 32 GiB; the rest is the CPU's.
    assert!(r.offer.gpu_bytes < 32 * (1 << 30) * 2 / 3 && r.offer.gpu_bytes > 20 * (1 << 30), "{:?}", r.offer);
    let code = advice(&r, Use::CodeFix);
    assert_eq!(ids(code)[0], "devstral-small-2505", "{:?}", ids(code));
    assert!(matches!(code.picks[0].plan.placement, Placement::Gpu { .. }));
    assert!(why_not(code, "qwen2.5-coder-32b-instruct").contains("split"));
}

#[test]
fn a_laptop_without_a_gpu_runs_small_models_on_the_cpu_and_says_why_not_bigger() {
    let r = show("laptop-no-gpu");
    assert!(r.offer.gpu_names.is_empty(), "an integrated GPU without VRAM offers none: {:?}", r.offer);
    let code = advice(&r, Use::CodeFix);
    assert_eq!(ids(code), ["qwen2.5-coder-7b-instruct", "qwen2.5-coder-1.5b-instruct"]);
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
fn two_gpus_hold_a_32b_coder_together_at_full_context() {
    let r = show("two-rtx4090");
    let code = advice(&r, Use::CodeFix);
    let qwen32 = pick(code, "qwen2.5-coder-32b-instruct");
    let Placement::Gpu { gpus } = &qwen32.plan.placement else { panic!("{}", qwen32.why) };
    assert_eq!(gpus.len(), 2);
    assert_eq!(qwen32.plan.request.context, 32_768);
    assert!(qwen32.plan.gpu_bytes > 24 * (1 << 30), "more than one card holds: {}", qwen32.why);
    assert_eq!(ids(code)[0], "qwen2.5-coder-32b-instruct");
}
