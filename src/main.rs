use clap::Parser;

mod cli;

fn main() -> std::process::ExitCode {
    // burn materialises some state (a resumed optimizer's) on its default device, which is the wgpu one
    // when that feature is built in, even where no GPU exists. Our code picks devices explicitly, so make
    // the implicit default the CPU backend unless the user chose otherwise.
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: first statement of main, before any thread exists.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
    #[cfg(unix)]
    ensure_runtime_dir();
    let args = cli::Cli::parse();
    let result = match args.command {
        None => diffusion_lab::app::run(),
        Some(command) => cli::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line, the whole chain of causes, no backtrace.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid or not set" several times while the GPU
/// probe runs, which looks alarming in a plain CLI run on a CPU (headless machines, ssh, containers). Where
/// the variable is unset or names no directory, point it at a private directory of ours (0700, as the XDG
/// spec asks) before any thread starts.
#[cfg(unix)]
fn ensure_runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|dir| std::path::Path::new(&dir).is_dir()) {
        return;
    }
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else { return };
    let dir = std::env::temp_dir().join(format!("diffusion-lab-runtime-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let private = std::fs::symlink_metadata(&dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0);
    if private {
        // SAFETY: called at the start of main, before any thread exists.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}
