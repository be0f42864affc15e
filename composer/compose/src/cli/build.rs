//! `compose build`

use super::{human_size, load_recipe, short_digest};
use anyhow::Result;
use compose_build::build::{build, Activity, BuildOptions, LayerReport, Progress};
use compose_build::plan::{plan, PlannedLayer, Tools};
use compose_build::verify::verify;
use compose_store::Store;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Build a recipe into a snapshot.
///
/// Runs the base bootstrap and every layer whose cache key is not in the
/// store, records each layer's changes as a tar blob, writes the snapshot
/// (an OCI manifest whose digest is the snapshot id) and tags it with the
/// image name. A second build of an unchanged recipe is all cache hits.
/// Needs root (bootstrap and chroot). Progress goes to stderr: each layer
/// with hit/miss, digest, size and time; on a terminal, a live bar or
/// spinner for the layer being built (bootstrap phase, step, packing).
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The recipe file.
    recipe: PathBuf,
    /// Build twice from scratch and fail, listing the differing paths, if the
    /// two snapshots differ.
    #[arg(long)]
    verify: bool,
    /// Rebuild every layer, ignoring the cache.
    #[arg(long)]
    no_cache: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
    /// Show the output of apt and scripts as they run (otherwise it is
    /// logged and its tail shown on failure).
    #[arg(long, short)]
    verbose: bool,
    /// Print nothing on stderr but errors.
    #[arg(long, short, conflicts_with = "verbose")]
    quiet: bool,
}

/// How build progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Output {
    /// Nothing (`--quiet`).
    Quiet,
    /// One line per layer: the format scripts and e2e tests read.
    Plain,
    /// The same lines, with a live bar or spinner for the layer being built.
    Bars,
}

impl Output {
    /// Bars only on a terminal, and not when `--json` asks for a script's
    /// output or `--verbose` streams tool output that a bar would garble.
    pub(super) fn detect(quiet: bool, json: bool, verbose: bool) -> Output {
        if quiet {
            Output::Quiet
        } else if json || verbose || !std::io::stderr().is_terminal() {
            Output::Plain
        } else {
            Output::Bars
        }
    }
}

/// What the live bar shows now, so its style is set only on a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Look {
    Spinner,
    Count,
    Bytes,
}

impl Look {
    pub(super) fn style(self) -> ProgressStyle {
        let template = match self {
            Look::Spinner => "{prefix} {spinner:.green} {msg}  {elapsed}",
            // A spinner too: the last package's triggers (initramfs) can
            // hold a bar at 99% for a while.
            Look::Count => {
                "{prefix} {spinner:.green} {msg} [{bar:24.cyan/blue}] {percent:>3}%  {elapsed}"
            }
            Look::Bytes => {
                "{prefix} {spinner:.green} {msg} [{bar:24.cyan/blue}] \
                 {binary_bytes}/~{binary_total_bytes}  {elapsed}"
            }
        };
        // The templates are constants, checked by a test.
        ProgressStyle::with_template(template)
            .expect("valid progress template")
            .progress_chars("=> ")
    }
}

/// Shows build progress on stderr (also used by boot-test).
pub(super) struct Printer {
    output: Output,
    /// The live bar of the layer being built (`Output::Bars` only).
    bar: Option<(ProgressBar, Look)>,
}

impl Printer {
    pub(super) fn new(output: Output) -> Printer {
        Printer { output, bar: None }
    }

    /// Shows `msg` on the live bar, with `(position, length)` as a bar or,
    /// without, as a spinner. Each setter may redraw: the order keeps every
    /// frame consistent (no bar at the last phase's position, no message of
    /// the last phase with the new numbers).
    fn show(&mut self, look: Look, msg: String, numbers: Option<(u64, u64)>) {
        let Some((bar, current)) = self.bar.as_mut() else {
            return;
        };
        let restyle = *current != look;
        *current = look;
        if restyle && numbers.is_none() {
            bar.set_style(look.style());
        }
        bar.set_message(msg);
        match numbers {
            Some((position, length)) => {
                bar.set_length(length);
                bar.set_position(position);
            }
            None => bar.unset_length(),
        }
        if restyle && numbers.is_some() {
            bar.set_style(look.style());
        }
    }
}

impl Progress for Printer {
    fn layer_started(&mut self, index: usize, total: usize, layer: &PlannedLayer, cached: bool) {
        if cached {
            return;
        }
        match self.output {
            Output::Quiet => {}
            Output::Plain => eprintln!(
                "[{}/{total}] {:<16} miss  building: {}",
                index + 1,
                layer.name,
                layer.created_by
            ),
            Output::Bars => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                    .with_style(Look::Spinner.style())
                    .with_prefix(format!("[{}/{total}] {:<16}", index + 1, layer.name))
                    .with_message("starting");
                // Ticks from its own thread: the spinner and elapsed time
                // move while a tool runs silently.
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bar = Some((bar, Look::Spinner));
            }
        }
    }

    fn activity(&mut self, activity: &Activity) {
        if self.bar.is_none() {
            return;
        }
        match activity {
            Activity::Bootstrap(s) => match s.total {
                Some(total) => self.show(Look::Count, s.phase.clone(), Some((s.done, total))),
                None if s.done > 0 => {
                    self.show(Look::Spinner, format!("{} ({})", s.phase, s.done), None)
                }
                None => self.show(Look::Spinner, s.phase.clone(), None),
            },
            Activity::Step { index, steps, kind } => self.show(
                Look::Spinner,
                format!("step {}/{steps}: {kind}", index + 1),
                None,
            ),
            Activity::Extracting { layers } => self.show(
                Look::Spinner,
                format!("extracting {layers} cached layer(s) below it"),
                None,
            ),
            Activity::Scanning => self.show(Look::Spinner, "scanning for changes".into(), None),
            Activity::Packing { written, estimate } => self.show(
                Look::Bytes,
                "packing".into(),
                Some((*written, (*estimate).max(*written))),
            ),
        }
    }

    fn layer_finished(&mut self, total: usize, r: &LayerReport) {
        if let Some((bar, _)) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.output == Output::Quiet {
            return;
        }
        let short = short_digest(&r.digest);
        let verb = if r.cache == "hit" { "hit " } else { "done" };
        let pack = if r.cache == "hit" {
            String::new()
        } else {
            format!(" (packing {:.1}s)", r.pack_seconds)
        };
        eprintln!(
            "[{}/{total}] {:<16} {verb}  {short}  {:>9}  {:.1}s{pack}",
            r.index + 1,
            r.name,
            human_size(r.size),
            r.seconds
        );
    }
}

impl Drop for Printer {
    /// A build that failed leaves its bar on screen, showing where, above
    /// the error.
    fn drop(&mut self) {
        if let Some((bar, _)) = self.bar.take() {
            bar.abandon();
            // The bar leaves the cursor at the end of its line.
            eprintln!();
        }
    }
}

/// Builds `recipe` into the store with progress on stderr (boot-test uses
/// it when handed a recipe instead of a snapshot).
pub(super) fn build_recipe(
    store_path: &Path,
    recipe: &Path,
) -> Result<compose_build::build::BuildReport> {
    let recipe = load_recipe(recipe)?;
    let plan = plan(&recipe, Tools::detect())?;
    let store = Store::open(store_path)?;
    eprintln!(
        "compose: building {} ({} layers) in {}",
        plan.image,
        plan.layers.len(),
        store.root().display()
    );
    let mut printer = Printer::new(Output::detect(false, false, false));
    build(&store, &plan, &BuildOptions::default(), &mut printer)
}

pub fn run(store_path: &Path, args: Args) -> Result<ExitCode> {
    let recipe = load_recipe(&args.recipe)?;
    super::require_root(
        "compose build",
        "it runs mmdebstrap and chroots into the image",
    )?;
    let plan = plan(&recipe, Tools::detect())?;
    let store = Store::open(store_path)?;
    let output = Output::detect(args.quiet, args.json, args.verbose);
    let mut printer = Printer::new(output);
    let say = output != Output::Quiet;
    if say {
        eprintln!(
            "compose: building {} ({} layers) in {}",
            plan.image,
            plan.layers.len(),
            store.root().display()
        );
    }
    if args.verify {
        let report = verify(&store, &plan, args.verbose, &mut printer)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        if !report.reproducible {
            eprintln!(
                "compose: NOT reproducible: {} vs {}",
                report.first.snapshot, report.second
            );
            for m in &report.mismatches {
                eprintln!("  layer {}: {} vs {}", m.layer, m.first, m.second);
                for p in &m.paths {
                    eprintln!("    {}: {}", p.path, p.what);
                }
            }
            return Ok(ExitCode::from(3));
        }
        if say {
            eprintln!(
                "compose: reproducible: both builds gave {} (tagged {})",
                report.first.snapshot, plan.image
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let opts = BuildOptions {
        no_cache: args.no_cache,
        verbose: args.verbose,
    };
    let report = build(&store, &plan, &opts, &mut printer)?;
    let hits = report.layers.iter().filter(|l| l.cache == "hit").count();
    if say {
        eprintln!(
            "compose: snapshot {} tagged {} ({hits} cached, {} built, {:.1}s)",
            report.snapshot,
            report.image,
            report.layers.len() - hits,
            report.seconds
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_templates_parse() {
        for look in [Look::Spinner, Look::Count, Look::Bytes] {
            look.style();
        }
    }

    #[test]
    fn quiet_wins_and_scripts_get_plain_lines() {
        assert_eq!(Output::detect(true, true, false), Output::Quiet);
        assert_eq!(Output::detect(false, true, false), Output::Plain);
        assert_eq!(Output::detect(false, false, true), Output::Plain);
    }
}
