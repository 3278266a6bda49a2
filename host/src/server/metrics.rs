//! `GET /metrics`: the server's state in Prometheus' text format.
//! Counters are totals since start; rates are Prometheus' `rate()`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::Server;

/// One of the engine's GPU counters, as a metric's value.
type CountOf = fn(&crate::engine::counters::Counts) -> f64;

pub fn render(server: &Server) -> String {
    let mut out = String::new();
    let instances = server.instances.all();
    let running: Vec<_> = instances.iter().filter(|i| i.state == "running").collect();
    let attached = running.iter().filter(|i| i.attached).count();
    gauge(
        &mut out,
        "crust_instances",
        "Instances by state (finished: ended, kept for a client to collect).",
        &[
            ("state=\"attached\"", attached as f64),
            ("state=\"detached\"", (running.len() - attached) as f64),
            ("state=\"finished\"", (instances.len() - running.len()) as f64),
        ],
    );
    let mut per_user: BTreeMap<&str, usize> = BTreeMap::new();
    running.iter().for_each(|i| *per_user.entry(&i.owner).or_default() += 1);
    let users: Vec<(String, f64)> = per_user.iter().map(|(u, n)| (format!("user=\"{}\"", escape(u)), *n as f64)).collect();
    gauge(&mut out, "crust_user_instances", "Running instances per user.", &users);
    gauge(&mut out, "crust_connections", "Open client connections.", &[("", server.seats.open() as f64)]);
    let seats = &server.seats;
    counter(
        &mut out,
        "crust_connections_refused_total",
        "Connections refused: the server or their address had its most open.",
        &[(String::new(), seats.refused.load(Ordering::Relaxed) as f64)],
    );
    counter(
        &mut out,
        "crust_connections_closed_total",
        "Connections the server closed: their client read too slowly, or did not log in in time.",
        &[
            ("reason=\"slow_reader\"".to_string(), seats.closed_slow_reader.load(Ordering::Relaxed) as f64),
            ("reason=\"no_login\"".to_string(), seats.closed_no_login.load(Ordering::Relaxed) as f64),
        ],
    );

    let services: Vec<_> = server.runtime.models().loaded().collect();
    let per_model = |value: &dyn Fn(&crate::engine::service::ModelService) -> f64| -> Vec<(String, f64)> {
        services.iter().map(|s| (format!("model=\"{}\"", escape(&s.name)), value(s))).collect()
    };
    let stat = |s: &crate::engine::service::ModelService, f: fn(&crate::engine::service::ServiceStats) -> &std::sync::atomic::AtomicU64| {
        f(&s.stats).load(Ordering::Relaxed) as f64
    };
    counter(&mut out, "crust_forward_passes_total", "Forward passes run.", &per_model(&|s| stat(s, |t| &t.batched_passes)));
    counter(&mut out, "crust_forward_tokens_total", "Input tokens run through forward passes.", &per_model(&|s| stat(s, |t| &t.batched_tokens)));
    counter(&mut out, "crust_batches_total", "Batches run on the GPU.", &per_model(&|s| stat(s, |t| &t.batches)));
    counter(
        &mut out,
        "crust_engine_restarts_total",
        "Times the engine failed inside a batch (a panic): the passes involved failed, the engine went on.",
        &per_model(&|s| stat(s, |t| &t.engine_restarts)),
    );
    counter(&mut out, "crust_gpu_busy_seconds_total", "Time the GPU spent running batches.", &per_model(&|s| stat(s, |t| &t.busy_nanos) / 1e9));
    let gpu = |value: CountOf| per_model(&|s| value(&s.stats.gpu.counts()));
    let gpu_counters: [(&str, &str, CountOf); 9] = [
        ("crust_gpu_steps_total", "Forward steps (batches) recorded.", |c| c.steps as f64),
        ("crust_gpu_dispatches_total", "Compute dispatches recorded.", |c| c.dispatches as f64),
        ("crust_gpu_compute_passes_total", "Compute passes recorded.", |c| c.compute_passes as f64),
        ("crust_gpu_submissions_total", "Command buffers submitted (steps, page copies and clears).", |c| c.submissions as f64),
        ("crust_gpu_written_bytes_total", "Bytes written to the GPU for steps.", |c| c.bytes_written as f64),
        ("crust_gpu_read_bytes_total", "Bytes read back from the GPU.", |c| c.bytes_read as f64),
        ("crust_gpu_encode_seconds_total", "CPU time spent writing steps' inputs and recording them.", |c| c.encode.as_secs_f64()),
        ("crust_gpu_steps_recorded_ahead_total", "Steps recorded while the step before them ran.", |c| c.recorded_ahead as f64),
        ("crust_gpu_idle_seconds_total", "Time from a step's readback to the next step's submission (with no pass waiting too).", |c| {
            c.idle.as_secs_f64()
        }),
    ];
    for (name, help, value) in gpu_counters {
        counter(&mut out, name, help, &gpu(value));
    }
    gauge(
        &mut out,
        "crust_batch_size_mean",
        "Forward passes per batch, on average.",
        &per_model(&|s| stat(s, |t| &t.batched_passes) / stat(s, |t| &t.batches).max(1.0)),
    );
    gauge(
        &mut out,
        "crust_queue_depth",
        "Forward passes waiting for a batch.",
        &per_model(&|s| (stat(s, |t| &t.submitted_passes) - stat(s, |t| &t.batched_passes)).max(0.0)),
    );
    let mut pages = Vec::new();
    for s in &services {
        let free = s.free_pages() as f64;
        let model = escape(&s.name);
        pages.push((format!("model=\"{model}\",state=\"used\""), s.capacity.kv_pages as f64 - free));
        pages.push((format!("model=\"{model}\",state=\"free\""), free));
    }
    gauge(&mut out, "crust_kv_pages", "KV-cache pages in use and free.", &pages);
    out
}

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(impl AsRef<str>, f64)]) {
    family(out, name, help, "gauge", samples);
}

fn counter(out: &mut String, name: &str, help: &str, samples: &[(impl AsRef<str>, f64)]) {
    family(out, name, help, "counter", samples);
}

fn family(out: &mut String, name: &str, help: &str, kind: &str, samples: &[(impl AsRef<str>, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let labels = labels.as_ref();
        let _ = if labels.is_empty() { writeln!(out, "{name} {value}") } else { writeln!(out, "{name}{{{labels}}} {value}") };
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
