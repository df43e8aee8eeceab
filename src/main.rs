//! The `kkrun` binary: parse the command line, run, map the outcome to an
//! exit code. Everything else lives in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match kkrun::cli::parse() {
        Ok(cli) => cli,
        Err(code) => return exit(code),
    };
    match kkrun::cli::run(cli) {
        Ok(code) => exit(code),
        Err(err) => {
            eprintln!("kkrun: error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            exit(err.exit_code())
        }
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}
