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
