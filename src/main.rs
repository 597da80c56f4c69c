//! Wiring only: parse the command line, load the configuration, build the server, run it.

use std::process::ExitCode;

use clap::Parser;
use palisade::cli::{Cli, Command, CommonArgs, ModerateArgs, RunArgs};
use palisade::config;
use palisade::server::{self, ProcessFlags};

/// mimalloc: about 15% fewer instructions per request than the system allocator
/// (docs/performance.md), called as `palisade::allocator` explains. `--features
/// system-allocator` builds with the system one, whose allocations heap profilers such as
/// valgrind's massif can follow.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: palisade::allocator::Allocator = palisade::allocator::Allocator;

fn main() -> ExitCode {
    palisade::logging::init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(args)) => check(&args),
        Some(Command::Offenders(args)) => report(palisade::analysis::run_offenders(&args)),
        Some(Command::Replay(args)) => report(palisade::analysis::run_replay(&args)),
        Some(Command::Moderate(args)) => moderate(&args),
        Some(Command::Fleet(args)) => report(fleet(&args)),
        Some(Command::Run(args)) => run(args),
        None => run(cli.run),
    }
}

/// Print an analysis tool's output, or its error with exit status 1.
fn report(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `palisade moderate`: list errors (every one, `file:line: …`) exit 1 before any input is read.
fn moderate(args: &ModerateArgs) -> ExitCode {
    use palisade::moderate::cli;
    let result =
        cli::load(&args.lists).and_then(|set| cli::run(&set, std::io::stdin().lock(), std::io::stdout().lock()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `palisade fleet status`: what the fleet's buckets say, read with the configuration's NATS
/// address.
fn fleet(args: &palisade::cli::FleetArgs) -> Result<String, String> {
    let palisade::cli::FleetCommand::Status { config, json } = &args.command;
    let loaded = config::load(Some(config), &config::Overrides::default())
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))?;
    let f = loaded
        .config
        .fleet
        .as_ref()
        .ok_or_else(|| format!("{}: no `fleet:` section", config.display()))?;
    palisade::fleet::status::run(f, *json)
}

fn check(args: &CommonArgs) -> ExitCode {
    match config::load(args.config.as_deref(), &args.overrides()) {
        Ok(loaded) => {
            let rules: usize = loaded
                .policies
                .iter()
                .map(|p| {
                    p.file.rules.len()
                        + p.file.limits.len()
                        + p.file.concurrency.len()
                        + p.file.moderation.as_ref().map_or(0, |m| m.rules.len())
                })
                .sum();
            println!(
                "configuration ok: {} listener(s), {} route(s), {} pool(s), {} policy file(s) with {rules} rule(s), limit(s) and cap(s)",
                loaded.config.listeners.len(),
                loaded.config.routes.len(),
                loaded.config.upstreams.len(),
                loaded.policies.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("configuration has {} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

/// mimalloc's `arena_eager_commit` (option 4 in mimalloc.h, v2 and v3), off. With it on (the
/// default where the kernel overcommits), the arena mimalloc reserves at its first allocation
/// is committed ahead of use, and an idle Palisade was 17 MiB larger (37.6 → 20.2 MiB;
/// docs/performance.md); pages are committed as they are used instead, once per page, not per
/// request. The option is read when mimalloc initialises, in its constructor (priority 101)
/// before `main`, so it is set from a constructor that runs just before that one.
#[cfg(not(feature = "system-allocator"))]
#[used]
#[link_section = ".init_array.00100"]
static LAZY_ALLOCATOR_COMMIT: extern "C" fn() = {
    extern "C" fn lazy_allocator_commit() {
        const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
        // SAFETY: only stores the option's value; nothing else runs yet.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
    }
    lazy_allocator_commit
};

/// Start-up (parsing the configuration and list files, compiling the policy) frees most of
/// what it allocates, but mimalloc keeps freed pages of a thread until that thread allocates
/// again, and the main thread only waits for signals from here on: about 20 MiB stayed
/// resident for nothing (docs/performance.md). Hand them back to the system once.
fn release_startup_memory() {
    #[cfg(not(feature = "system-allocator"))]
    // SAFETY: mi_collect only returns free memory of the calling thread's heap to the system.
    unsafe {
        libmimalloc_sys::mi_collect(true)
    };
}

fn run(args: RunArgs) -> ExitCode {
    if args.common.config.is_none() && args.common.upstream.is_none() {
        eprintln!("error: give a configuration (-c palisade.yaml) or at least --upstream ADDR");
        return ExitCode::from(2);
    }
    let overrides = args.common.overrides();
    let loaded = match config::load(args.common.config.as_deref(), &overrides) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("not starting: configuration has {} error(s)", errors.0.len());
            return ExitCode::FAILURE;
        }
    };
    let flags = ProcessFlags {
        upgrade: args.upgrade,
        daemon: args.daemon,
    };
    match server::build(loaded, flags, args.common.config.clone(), overrides) {
        Ok(server) => {
            release_startup_memory();
            server.run_forever()
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
