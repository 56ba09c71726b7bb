//! Markdown tables from the JSON lines `drive` and `rss` print. "Added" figures are the target's
//! percentile minus the same percentile of `direct` (the driver straight to one backend) in the
//! same run; a difference of percentiles, not a percentile of differences.

use crate::common::report::{Runs, errors, f, mib, ms_or_us, num, sub, verdict};
use serde_json::Value;
use std::fmt::Write;

const DIRECT: &str = "direct";
const CAIRN: &str = "cairn";
const CAIRN_10: &str = "cairn-10";

fn backends(x: &Value) -> String {
    x["backends"].as_u64().map_or("–".into(), |b| b.to_string())
}

pub fn render(s: &str) -> String {
    let r = Runs::parse(s);
    let mut o = String::new();
    for e in r.lines.iter().filter(|l| l["kind"] == "error") {
        let _ = writeln!(
            o,
            "**{}: {}**\n",
            e["label"].as_str().unwrap_or("?"),
            e["error"].as_str().unwrap_or("?")
        );
    }
    let direct = |scenario: &str, q: &str| r.run(DIRECT, scenario).and_then(|d| f(&d["latency"][q]));
    let added = |l: &str, scenario: &str, q: &str| {
        if l == DIRECT {
            None
        } else {
            sub(r.run(l, scenario).and_then(|x| f(&x["latency"][q])), direct(scenario, q))
        }
    };

    if let Some(any) = r.labels.iter().find_map(|l| r.run(l, "serial")) {
        let _ = writeln!(
            o,
            "### tools/call at one connection\n\nOne session, one connection, one `tools/call` at a time for {:.0} s per target (after a warm-up). \"Added\" = target percentile − direct percentile.\n",
            any["duration_s"].as_f64().unwrap_or(0.0)
        );
        let _ = writeln!(
            o,
            "| target | backends | p50 | p99 | p99.9 | added p50 | added p99 | calls/s | target CPU / call | errors |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for l in &r.labels {
            if let Some(x) = r.run(l, "serial") {
                let lat = &x["latency"];
                let _ = writeln!(
                    o,
                    "| {l} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    backends(x),
                    ms_or_us(f(&lat["p50_us"])),
                    ms_or_us(f(&lat["p99_us"])),
                    ms_or_us(f(&lat["p999_us"])),
                    ms_or_us(added(l, "serial", "p50_us")),
                    ms_or_us(added(l, "serial", "p99_us")),
                    num(f(&x["rps"])),
                    ms_or_us(f(&x["cpu_us_per_req"])),
                    errors(x)
                );
            }
        }
        o.push('\n');
    }

    let bound = r.labels.iter().find_map(|l| r.run(l, "ladder")).and_then(|x| f(&x["bound_us"]));
    if r.any("closed") || r.any("ladder") {
        let _ = writeln!(
            o,
            "### Maximum calls/s\n\nClosed loop: N sessions, each on its own connection, sending its next `tools/call` when the previous answer is in (throughput; its latencies suffer coordinated omission). Sustainable: the highest open-loop rate of a ×1.4 ladder (calls spread over 32 sessions) with no errors, ≥ 97 % completed and p99 ≤ {}.\n",
            ms_or_us(bound)
        );
        let _ = writeln!(
            o,
            "| target | backends | closed loop calls/s | conns | p50 | p99 | errors | target CPU / call | sustainable rate (p99 ≤ {}) | p99 there |",
            ms_or_us(bound)
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for l in &r.labels {
            let c = r.run(l, "closed");
            let lad = r.run(l, "ladder");
            let Some(any) = c.or(lad) else { continue };
            let _ = writeln!(
                o,
                "| {l} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                backends(any),
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

    if r.any("setup") {
        let _ = writeln!(
            o,
            "### Session set-up\n\n`initialize` + `notifications/initialized`, one session after the other on one connection, timed together (each session is then ended with `DELETE`, not timed). Direct: to one backend. Added = target − direct.\n"
        );
        let _ = writeln!(
            o,
            "| target | backends | p50 | p99 | added p50 | added p99 | sessions/s | target CPU / session (with its DELETE) | errors |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for l in &r.labels {
            if let Some(x) = r.run(l, "setup") {
                let lat = &x["latency"];
                let _ = writeln!(
                    o,
                    "| {l} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    backends(x),
                    ms_or_us(f(&lat["p50_us"])),
                    ms_or_us(f(&lat["p99_us"])),
                    ms_or_us(added(l, "setup", "p50_us")),
                    ms_or_us(added(l, "setup", "p99_us")),
                    num(f(&x["rps"])),
                    ms_or_us(f(&x["cpu_us_per_req"])),
                    errors(x)
                );
            }
        }
        o.push('\n');
    }

    let _ = writeln!(
        o,
        "### Memory (VmRSS)\n\nPer 1,000 sessions: RSS after opening N sessions (each used by one `tools/call`) − RSS before, × 1,000 / N; a warm-up of N/10 sessions opened, used and ended comes first. \"Ended\": after `DELETE` of all of them.\n"
    );
    let _ = writeln!(
        o,
        "| target | backends | just started | before | with N open sessions | N | per 1,000 sessions | ended | peak under load | errors |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for l in &r.labels {
        if l == DIRECT {
            continue;
        }
        let x = r.run(l, "sessions");
        let kib = |k: &str| x.and_then(|x| f(&x[k]));
        let _ = writeln!(
            o,
            "| {l} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            x.map_or("–".into(), backends),
            mib(r.rss(l, "started")),
            mib(kib("rss_before_kib")),
            mib(kib("rss_after_kib")),
            x.map_or("–".into(), |x| x["count"].to_string()),
            kib("mib_per_1000").map_or("–".into(), |m| format!("{m:.2} MiB")),
            mib(kib("rss_ended_kib")),
            mib(r.peak(l)),
            x.map_or("–".into(), errors)
        );
    }
    o.push('\n');

    // Cairn against the targets.
    let closed = r.run(CAIRN, "closed").and_then(|x| f(&x["rps"]));
    let sustained = r.run(CAIRN, "ladder").and_then(|x| f(&x["max_rate"]));
    let setup10 = r.run(CAIRN_10, "setup").and_then(|x| f(&x["latency"]["p50_us"]));
    let setup10_p99 = r.run(CAIRN_10, "setup").and_then(|x| f(&x["latency"]["p99_us"]));
    let mem = |l: &str| r.run(l, "sessions").and_then(|x| f(&x["mib_per_1000"]));
    let _ = writeln!(o, "### Cairn against the issue's targets\n");
    let _ = writeln!(o, "| target | measured | verdict |");
    let _ = writeln!(o, "|---|---:|---|");
    let p50 = added(CAIRN, "serial", "p50_us");
    let p99 = added(CAIRN, "serial", "p99_us");
    let rows: Vec<(String, String, Option<bool>)> = vec![
        ("added p50 of tools/call at one connection ≤ 60 µs".into(), ms_or_us(p50), p50.map(|v| v <= 60.0)),
        ("added p99 of tools/call at one connection ≤ 200 µs".into(), ms_or_us(p99), p99.map(|v| v <= 200.0)),
        ("≥ 15,000 calls/s (closed loop)".into(), num(closed), closed.map(|v| v >= 15_000.0)),
        (
            format!("≥ 15,000 calls/s (sustainable, p99 ≤ {})", ms_or_us(bound)),
            num(sustained),
            sustained.map(|v| v >= 15_000.0),
        ),
        (
            "session set-up over 10 backends ≤ 2 ms (p50; p99 beside it)".into(),
            format!("{} (p99 {})", ms_or_us(setup10), ms_or_us(setup10_p99)),
            setup10.map(|v| v <= 2000.0),
        ),
        (
            "memory per 1,000 open sessions ≤ 10 MiB (1 backend)".into(),
            mem(CAIRN).map_or("–".into(), |m| format!("{m:.2} MiB")),
            mem(CAIRN).map(|m| m <= 10.0),
        ),
        (
            "memory per 1,000 open sessions ≤ 10 MiB (10 backends)".into(),
            mem(CAIRN_10).map_or("–".into(), |m| format!("{m:.2} MiB")),
            mem(CAIRN_10).map(|m| m <= 10.0),
        ),
    ];
    for (t, m, ok) in rows {
        let _ = writeln!(o, "| {t} | {m} | {} |", verdict(ok));
    }
    o
}
