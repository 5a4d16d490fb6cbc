//! `fixbox hw`: what this machine has, and which models fit it, with why.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use fixbox_hardware::HardwareReport;
use fixbox_hardware::fit::Placement;
use fixbox_models::{Catalog, Recommendations, Use, gb, recommend};

#[derive(Debug, clap::Args)]
pub struct HwArgs {
    /// Print the readings and recommendations as JSON instead of tables.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: HwArgs) -> anyhow::Result<ExitCode> {
    let models_dir = fixbox_store::data_dir()?.join("models");
    let report = tokio::task::spawn_blocking(move || fixbox_hardware::probe(Some(&models_dir))).await??;
    let recommendations = recommend(&Catalog::embedded()?, &report);
    let text = if args.json {
        let value = serde_json::json!({ "machine": report, "recommendations": recommendations });
        serde_json::to_string_pretty(&value)? + "\n"
    } else {
        render(&report, &recommendations)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn render(report: &HardwareReport, recommendations: &Recommendations) -> String {
    let mut out = String::from("This machine\n");
    let row = |out: &mut String, label: &str, value: String| {
        let _ = writeln!(out, "  {label:<8} {value}");
    };
    let cpu = &report.cpu;
    let cores = match cpu.physical_cores {
        Some(physical) => format!("{physical} cores, {} threads", cpu.logical_cores),
        None => format!("{} threads", cpu.logical_cores),
    };
    row(&mut out, "CPU", format!("{} ({}), {cores}, {}", cpu.brand, cpu.arch, cpu.features.join(" ")));
    let memory = &report.memory;
    let mut ram = format!("{} total, {} available", gb(memory.total_bytes), gb(memory.available_bytes));
    if let Some(limit) = memory.cgroup_limit_bytes {
        let _ = write!(ram, ", {} container limit", gb(limit));
    }
    if let Some(bandwidth) = memory.bandwidth_bytes_per_s {
        let _ = write!(ram, ", {:.0} GB/s read (measured)", bandwidth as f64 / 1e9);
    }
    row(&mut out, "RAM", ram);
    if report.gpus.is_empty() {
        row(&mut out, "GPU", "none found".into());
    }
    for gpu in &report.gpus {
        let memory = match (gpu.vram_total_bytes, gpu.unified_memory) {
            (Some(total), true) => format!("{} unified memory", gb(total)),
            (Some(total), false) => {
                let free = gpu.vram_free_bytes.map_or(String::new(), |free| format!(", {} free", gb(free)));
                format!("{} VRAM{free}", gb(total))
            }
            (None, true) => "integrated, shares system memory".into(),
            (None, false) => "VRAM unknown".into(),
        };
        let mut facts = vec![memory];
        facts.extend(gpu.driver_version.as_ref().map(|d| format!("driver {d}")));
        facts.extend(gpu.compute_capability.as_ref().map(|c| format!("compute {c}")));
        facts.extend(gpu.memory_bandwidth_bytes_per_s.map(|b| format!("{:.0} GB/s", b as f64 / 1e9)));
        row(&mut out, "GPU", format!("{}: {}", gpu.name, facts.join(", ")));
    }
    if let Some(disk) = &report.models_disk {
        let where_ = format!("{} (on {})", disk.path.display(), disk.mount_point.display());
        row(&mut out, "Disk", format!("{} free of {} under {where_}", gb(disk.free_bytes), gb(disk.total_bytes)));
    }
    for note in &report.gpu_notes {
        row(&mut out, "note", note.clone());
    }
    for unknown in &report.unknown {
        row(&mut out, "unknown", format!("{}: {}", unknown.what, unknown.reason));
    }
    for advice in &recommendations.uses {
        let title = match advice.for_use {
            Use::CodeFix => "Recommended for code fixes",
            Use::Chat => "Recommended for chat",
        };
        let _ = writeln!(out, "\n{title}");
        let _ =
            writeln!(out, "  {:<30} {:<7} {:>8}  {:<10} {:>10}  why", "model", "quant", "context", "runs", "tokens/s");
        for pick in &advice.picks {
            let runs = match &pick.plan.placement {
                Placement::Gpu { .. } => "GPU".to_string(),
                Placement::Split { layers_on_gpu, layers, .. } => format!("{layers_on_gpu}/{layers} GPU"),
                Placement::ExpertsInRam { .. } => "GPU+RAM".to_string(),
                Placement::Cpu => "CPU".to_string(),
                Placement::DoesNotFit { .. } => "-".to_string(),
            };
            let speed = pick.plan.estimated_tokens_per_second.map_or_else(|| "?".into(), |t| format!("~{t:.0}"));
            let _ = writeln!(
                out,
                "  {:<30} {:<7} {:>8}  {:<10} {:>10}  {}",
                pick.model_id, pick.quant, pick.plan.request.context, runs, speed, pick.why
            );
        }
        if let Some(why) = &advice.none_fits {
            let _ = writeln!(out, "  {why}");
        }
        for passed in &advice.passed_over {
            let _ = writeln!(out, "  not {}: {}", passed.model_id, passed.why);
        }
    }
    let _ = writeln!(out, "\nSpeeds are estimates from memory bandwidth; sizes count weights, KV cache and buffers.");
    out
}
