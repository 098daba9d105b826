//! One table for every benchmark: each component writes `target/bench/<component>.json`
//! (and `.md`) in one shape, and `cargo xtask bench` joins the files written in its run into
//! `target/bench/summary.{md,json}`. Every row is a figure beside its baseline from the same
//! run; the ratio is what means anything on a shared, noisy machine.
//!
//! The shape (the webhook's bench writes it too, from `webhook/benches/admission.rs`):
//! `{"component", "machine", "rows": [{"name", "value", "unit", "baseline_name",
//! "baseline_value", "ratio", "goal", "met"}]}`, with `goal`/`met` null where there is none.

use crate::tools;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::SystemTime;

pub struct Row {
    name: String,
    value: f64,
    unit: String,
    baseline_name: String,
    baseline_value: f64,
    goal: Option<String>,
    met: Option<bool>,
}

impl Row {
    pub fn new(name: &str, value: f64, unit: &str) -> Row {
        Row {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            baseline_name: String::new(),
            baseline_value: f64::NAN,
            goal: None,
            met: None,
        }
    }

    pub fn beside(mut self, baseline: &str, value: f64) -> Row {
        self.baseline_name = baseline.to_owned();
        self.baseline_value = value;
        self
    }

    /// A goal on the ratio (value ÷ baseline).
    pub fn goal(mut self, goal: &str, met: impl Fn(f64) -> bool) -> Row {
        self.met = Some(met(self.ratio()));
        self.goal = Some(goal.to_owned());
        self
    }

    fn ratio(&self) -> f64 {
        self.value / self.baseline_value
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name, "value": round(self.value), "unit": self.unit,
            "baseline_name": self.baseline_name, "baseline_value": round(self.baseline_value),
            "ratio": round(self.ratio()), "goal": self.goal, "met": self.met,
        })
    }
}

pub struct Component {
    pub component: &'static str,
    pub machine: String,
    /// The component's own detailed table (markdown), kept in its `.md` file.
    pub detail: String,
    pub rows: Vec<Row>,
}

fn dir() -> PathBuf {
    tools::target_dir().join("bench")
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn write(c: &Component) -> Result<()> {
    std::fs::create_dir_all(dir())?;
    let rows: Vec<Value> = c.rows.iter().map(Row::to_json).collect();
    let doc = json!({"component": c.component, "machine": c.machine, "rows": rows});
    std::fs::write(dir().join(format!("{}.json", c.component)), serde_json::to_string_pretty(&doc)?)?;
    let md = format!("## {}\n\n{}\n\n{}\n{}", c.component, c.machine, table(&[doc]), c.detail);
    std::fs::write(dir().join(format!("{}.md", c.component)), md)?;
    eprintln!("xtask: wrote {}", dir().join(format!("{}.json", c.component)).display());
    Ok(())
}

fn table(components: &[Value]) -> String {
    let mut out = String::from(
        "| component | figure | value | baseline (same run) | baseline value | ratio | goal | met |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for c in components {
        for r in c["rows"].as_array().into_iter().flatten() {
            let met = match r["met"].as_bool() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            // Rows without a baseline (the webhook's RSS, say) carry nulls: shown empty.
            let number = |v: &Value| v.as_f64().map(|x| format!("{}", round(x))).unwrap_or_default();
            out.push_str(&format!(
                "| {} | {} | {} {} | {} | {} | {} | {} | {} |\n",
                c["component"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or(""),
                number(&r["value"]),
                r["unit"].as_str().unwrap_or(""),
                r["baseline_name"].as_str().unwrap_or(""),
                number(&r["baseline_value"]),
                number(&r["ratio"]),
                r["goal"].as_str().unwrap_or(""),
                met
            ));
        }
    }
    out
}

/// Joins the component files written since `started` into the summary; a component whose
/// file is older (its bench did not write one this run) is named as missing, not reused.
pub fn summarize(started: SystemTime) -> Result<()> {
    let mut components = Vec::new();
    let mut missing = Vec::new();
    for name in ["shim", "webhook", "guard"] {
        let path = dir().join(format!("{name}.json"));
        let fresh = std::fs::metadata(&path).and_then(|m| m.modified()).is_ok_and(|t| t >= started);
        if !fresh {
            missing.push(name);
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        components.push(serde_json::from_str::<Value>(&text).with_context(|| format!("parsing {}", path.display()))?);
    }
    if components.is_empty() {
        bail!("no benchmark wrote its figures under {}", dir().display());
    }
    let machine = super::machine();
    let mut md = format!("# Hush benchmarks\n\n{machine}; every ratio is value ÷ baseline, both from this run.\n\n");
    md.push_str(&table(&components));
    if !missing.is_empty() {
        md.push_str(&format!("\nNot measured in this run: {}.\n", missing.join(", ")));
    }
    std::fs::write(dir().join("summary.md"), &md)?;
    std::fs::write(
        dir().join("summary.json"),
        serde_json::to_string_pretty(&json!({"machine": machine, "components": components, "missing": missing}))?,
    )?;
    println!("\n{md}");
    eprintln!("xtask: wrote {}", dir().join("summary.md").display());
    Ok(())
}
