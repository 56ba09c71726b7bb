//! Markdown tables from the JSON lines `drive` and `rss` print. "Added" figures are the target's
//! percentile minus the same percentile of `direct` (the driver straight to the mock) in the same
//! run; a difference of percentiles, not a percentile of differences.

use crate::common::report::{Runs, errors, f, mib, ms_or_us, num, ratio, sub, verdict};
use std::fmt::Write;

const DIRECT: &str = "direct";
const CAIRN: &str = "cairn";
const PROXY: &str = "bare-proxy";
const LITELLM: &str = "litellm";

pub fn render(s: &str) -> String {
    let r = Runs::parse(s);
    let mut o = String::new();
    let d_serial = r.run(DIRECT, "serial");

    if let Some(any) = r.labels.iter().find_map(|l| r.run(l, "serial")) {
        let _ = writeln!(
            o,
            "### Added latency at one connection\n\nNon-streaming chat completion, one connection, one request at a time for {:.0} s per target (after a warm-up). \"Added\" = target percentile − direct percentile.\n",
            any["duration_s"].as_f64().unwrap_or(0.0)
        );
        let _ = writeln!(o, "| target | p50 | p99 | p99.9 | added p50 | added p99 | req/s | errors |");
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for l in &r.labels {
            if let Some(x) = r.run(l, "serial") {
                let lat = &x["latency"];
                let (p50, p99) = (f(&lat["p50_us"]), f(&lat["p99_us"]));
                let added = |q: &str, v| {
                    if l == DIRECT { None } else { sub(v, d_serial.and_then(|d| f(&d["latency"][q]))) }
                };
                let _ = writeln!(
                    o,
                    "| {l} | {} | {} | {} | {} | {} | {} | {} |",
                    ms_or_us(p50),
                    ms_or_us(p99),
                    ms_or_us(f(&lat["p999_us"])),
                    ms_or_us(added("p50_us", p50)),
                    ms_or_us(added("p99_us", p99)),
                    num(f(&x["rps"])),
                    errors(x)
                );
            }
        }
        o.push('\n');
    }

    if r.any("open") {
        let _ = writeln!(
            o,
            "### Fixed rate, open loop\n\nNon-streaming; latency measured from each request's intended send time (no coordinated omission); at most 512 requests in flight, 5 s timeout. \"driver lag\" is how late the driver's own scheduler started requests (already included in the latencies).\n"
        );
        let _ = writeln!(
            o,
            "| target | rate | duration | completed / offered | p50 | p99 | p99.9 | max | errors | driver lag p99 | target CPU / req |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for l in &r.labels {
            for x in r.runs(l, "open") {
                let lat = &x["latency"];
                let _ = writeln!(
                    o,
                    "| {l} | {}/s | {:.0} s | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
                    num(f(&x["rate"])),
                    x["duration_s"].as_f64().unwrap_or(0.0),
                    x["completed"],
                    x["offered"],
                    ms_or_us(f(&lat["p50_us"])),
                    ms_or_us(f(&lat["p99_us"])),
                    ms_or_us(f(&lat["p999_us"])),
                    ms_or_us(f(&lat["max_us"])),
                    errors(x),
                    ms_or_us(f(&x["lag"]["p99_us"])),
                    ms_or_us(f(&x["cpu_us_per_req"]))
                );
            }
        }
        o.push('\n');
    }

    let d_stream = r.run(DIRECT, "open_stream");
    if r.any("open_stream") {
        let _ = writeln!(
            o,
            "### Streaming: time to first token\n\nOpen loop of streaming chat completions; TTFT = intended send time → first SSE bytes of the body. Added = target − direct.\n"
        );
        let _ = writeln!(
            o,
            "| target | rate | TTFT p50 | TTFT p99 | added TTFT p50 | added TTFT p99 | stream total p99 | SSE events / stream | errors |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for l in &r.labels {
            if let Some(x) = r.run(l, "open_stream") {
                let t = &x["ttfb"];
                let (p50, p99) = (f(&t["p50_us"]), f(&t["p99_us"]));
                let added = |q: &str, v| {
                    if l == DIRECT { None } else { sub(v, d_stream.and_then(|d| f(&d["ttfb"][q]))) }
                };
                let _ = writeln!(
                    o,
                    "| {l} | {}/s | {} | {} | {} | {} | {} | {} | {} |",
                    num(f(&x["rate"])),
                    ms_or_us(p50),
                    ms_or_us(p99),
                    ms_or_us(added("p50_us", p50)),
                    ms_or_us(added("p99_us", p99)),
                    ms_or_us(f(&x["latency"]["p99_us"])),
                    num(f(&x["events_per_stream"])),
                    errors(x)
                );
            }
        }
        o.push('\n');
    }

    // TTFT at one connection: from the moment the request is sent (no scheduler lag in it), so
    // the added figures are the target's own work on the first chunk.
    let d_serial_stream = r.run(DIRECT, "serial_stream");
    if r.labels.iter().any(|l| r.run(l, "serial_stream").is_some()) {
        let _ = writeln!(
            o,
            "### Streaming at one connection: time to first token\n\nOne connection, one streaming chat completion at a time; TTFT = request sent → first SSE bytes of the body (the mock sends its first chunk at once). Added = target − direct.\n"
        );
        let _ = writeln!(
            o,
            "| target | streams | TTFT p50 | TTFT p90 | TTFT p99 | added TTFT p50 | added TTFT p99 | errors |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for l in &r.labels {
            if let Some(x) = r.run(l, "serial_stream") {
                let t = &x["ttfb"];
                let (p50, p99) = (f(&t["p50_us"]), f(&t["p99_us"]));
                let added = |q: &str, v| {
                    if l == DIRECT { None } else { sub(v, d_serial_stream.and_then(|d| f(&d["ttfb"][q]))) }
                };
                let _ = writeln!(
                    o,
                    "| {l} | {} | {} | {} | {} | {} | {} | {} |",
                    x["completed"],
                    ms_or_us(p50),
                    ms_or_us(f(&t["p90_us"])),
                    ms_or_us(p99),
                    ms_or_us(added("p50_us", p50)),
                    ms_or_us(added("p99_us", p99)),
                    errors(x)
                );
            }
        }
        o.push('\n');
    }

    let bound = r.labels.iter().find_map(|l| r.run(l, "ladder")).and_then(|x| f(&x["bound_us"]));
    if r.labels.iter().any(|l| r.run(l, "closed").is_some() || r.run(l, "ladder").is_some()) {
        let _ = writeln!(
            o,
            "### Maximum rate\n\nClosed loop: N connections each sending its next request when the previous answer is in (throughput; its latencies suffer coordinated omission). Sustainable: the highest open-loop rate of a ×1.4 ladder with no errors, ≥ 97 % completed and p99 ≤ {}.\n",
            ms_or_us(bound)
        );
        let _ = writeln!(
            o,
            "| target | closed loop req/s | conns | p50 | p99 | errors | target CPU / req | sustainable rate (p99 ≤ {}) | p99 there |",
            ms_or_us(bound)
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for l in &r.labels {
            let c = r.run(l, "closed");
            let lad = r.run(l, "ladder");
            let _ = writeln!(
                o,
                "| {l} | {} | {} | {} | {} | {} | {} | {} | {} |",
                num(c.and_then(|c| f(&c["rps"]))),
                c.map_or("–".into(), |c| c["conns"].to_string()),
                ms_or_us(c.and_then(|c| f(&c["latency"]["p50_us"]))),
                ms_or_us(c.and_then(|c| f(&c["latency"]["p99_us"]))),
                c.map_or("–".into(), errors),
                ms_or_us(c.and_then(|c| f(&c["cpu_us_per_req"]))),
                lad.map_or("–".into(), |x| match f(&x["max_rate"]) {
                    Some(v) => format!("{v:.0}/s"),
                    None => format!("< {}/s", num(x["steps"][0]["rate"].as_f64())),
                }),
                ms_or_us(lad.and_then(|x| f(&x["at_max"]["p99_us"])))
            );
        }
        o.push('\n');
    }

    let _ = writeln!(o, "### Memory (VmRSS; LiteLLM: all its processes)\n");
    let _ = writeln!(
        o,
        "| target | started (one request served) | idle after warm-up | peak, closed loop | peak under load (all scenarios) | 5 s after load |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
    for l in &r.labels {
        if l == DIRECT {
            continue;
        }
        let _ = writeln!(
            o,
            "| {l} | {} | {} | {} | {} | {} |",
            mib(r.rss(l, "started")),
            mib(r.rss(l, "idle")),
            mib(r.run(l, "closed").and_then(|x| f(&x["rss_peak_kib"]))),
            mib(r.peak(l)),
            mib(r.rss(l, "after"))
        );
    }
    o.push('\n');

    // Cairn against the targets.
    let c_serial = r.run(CAIRN, "serial");
    let added =
        |q: &str| sub(c_serial.and_then(|c| f(&c["latency"][q])), d_serial.and_then(|d| f(&d["latency"][q])));
    let open3k = r.runs(CAIRN, "open").into_iter().find(|x| f(&x["rate"]) == Some(3000.0));
    let p99_3k = open3k.and_then(|x| f(&x["latency"]["p99_us"]));
    let open3k_err = open3k.map(|x| x["errors"]["total"].as_u64().unwrap_or(0));
    // At one connection when measured (the open loop's TTFT carries the driver's scheduling lag).
    let ttft = sub(
        r.run(CAIRN, "serial_stream").and_then(|x| f(&x["ttfb"]["p99_us"])),
        d_serial_stream.and_then(|d| f(&d["ttfb"]["p99_us"])),
    )
    .or_else(|| {
        sub(
            r.run(CAIRN, "open_stream").and_then(|x| f(&x["ttfb"]["p99_us"])),
            d_stream.and_then(|d| f(&d["ttfb"]["p99_us"])),
        )
    });
    let closed = |l: &str| r.run(l, "closed").and_then(|x| f(&x["rps"]));
    let ladder = |l: &str| r.run(l, "ladder").and_then(|x| f(&x["max_rate"]));
    let vs_proxy = ratio(closed(CAIRN), closed(PROXY));
    let vs_proxy_ladder = ratio(ladder(CAIRN), ladder(PROXY));
    // LiteLLM with no passing step: its rate is below the ladder's first step.
    let lite_rate = ladder(LITELLM).or_else(|| {
        r.run(LITELLM, "ladder").and_then(|x| x["steps"][0]["rate"].as_f64()).map(|s| s.max(1.0))
    });
    let lite_passed = ladder(LITELLM).is_some();
    let vs_lite = ratio(ladder(CAIRN), lite_rate);
    let (idle, peak, after) = (r.rss(CAIRN, "idle"), r.peak(CAIRN), r.rss(CAIRN, "after"));
    let started = r.rss(CAIRN, "started");
    let _ = writeln!(o, "### Cairn against the issue's targets\n");
    let _ = writeln!(o, "| target | measured | verdict |");
    let _ = writeln!(o, "|---|---:|---|");
    let rows: Vec<(String, String, Option<bool>)> = vec![
        (
            "added p50 at one connection ≤ 60 µs".into(),
            ms_or_us(added("p50_us")),
            added("p50_us").map(|v| v <= 60.0),
        ),
        (
            "added p99 at one connection ≤ 150 µs".into(),
            ms_or_us(added("p99_us")),
            added("p99_us").map(|v| v <= 150.0),
        ),
        (
            "p99 total ≤ 1 ms at 3,000 req/s".into(),
            format!("{} ({} errors)", ms_or_us(p99_3k), open3k_err.map_or("–".into(), |e| e.to_string())),
            p99_3k.map(|v| v <= 1000.0 && open3k_err == Some(0)),
        ),
        ("added TTFT p99 ≤ 300 µs".into(), ms_or_us(ttft), ttft.map(|v| v <= 300.0)),
        (
            "≥ 50 % of the bare proxy's max rate (closed loop)".into(),
            vs_proxy.map_or("–".into(), |v| format!("{:.0} %", v * 100.0)),
            vs_proxy.map(|v| v >= 0.5),
        ),
        (
            format!("≥ 50 % of the bare proxy's sustainable rate (p99 ≤ {})", ms_or_us(bound)),
            vs_proxy_ladder.map_or("–".into(), |v| format!("{:.0} %", v * 100.0)),
            vs_proxy_ladder.map(|v| v >= 0.5),
        ),
        (
            format!("≥ 20× LiteLLM's rate at equal p99 (≤ {})", ms_or_us(bound)),
            vs_lite.map_or("–".into(), |v| format!("{}{v:.0}×", if lite_passed { "" } else { "> " })),
            vs_lite.map(|v| v >= 20.0),
        ),
        ("memory idle ≤ 20 MiB (just started)".into(), mib(started), started.map(|k| k <= 20.0 * 1024.0)),
        ("memory idle ≤ 20 MiB (after warm-up)".into(), mib(idle), idle.map(|k| k <= 20.0 * 1024.0)),
        ("memory under load ≤ 60 MiB".into(), mib(peak), peak.map(|k| k <= 60.0 * 1024.0)),
        (
            "memory flat after load (after ≤ peak under load)".into(),
            format!("{} after vs {} peak", mib(after), mib(peak)),
            after.zip(peak).map(|(a, p)| a <= p),
        ),
    ];
    for (t, m, ok) in rows {
        let _ = writeln!(o, "| {t} | {m} | {} |", verdict(ok));
    }
    o
}
