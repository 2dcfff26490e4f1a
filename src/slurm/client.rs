//! Calling Slurm's commands, each bounded in time, with errors that say what to do.

use super::states::{SacctRow, parse_sacct, parse_squeue};
use crate::helper_command::{RunError, run_bounded};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{0} not found on PATH: install the Slurm client tools, or run with --executor local")]
    NotFound(&'static str),
    #[error("{command} refused: {message}")]
    Refused {
        command: &'static str,
        message: String,
    },
    #[error("{0} did not answer within 30s; is slurmctld reachable?")]
    TimedOut(&'static str),
}

fn call(program: &'static str, args: &[&str]) -> Result<String, SlurmError> {
    let mut command = Command::new(program);
    command.args(args);
    match run_bounded(&mut command, TIMEOUT) {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            let text = String::from_utf8_lossy(if out.stderr.is_empty() {
                &out.stdout
            } else {
                &out.stderr
            })
            .trim()
            .replace('\n', "; ");
            Err(SlurmError::Refused {
                command: program,
                message: if text.is_empty() {
                    format!("exit status {}", out.status)
                } else {
                    text
                },
            })
        }
        Err(RunError::Spawn(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(SlurmError::NotFound(program))
        }
        Err(RunError::Spawn(e)) => Err(SlurmError::Refused {
            command: program,
            message: e.to_string(),
        }),
        Err(RunError::TimedOut) => Err(SlurmError::TimedOut(program)),
    }
}

/// `sbatch --parsable <script>` → the job id.
pub fn submit(script: &Path) -> Result<String, SlurmError> {
    let out = call("sbatch", &["--parsable", &script.display().to_string()])?;
    // `123` or `123;cluster`.
    let id = out.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(SlurmError::Refused {
            command: "sbatch",
            message: format!("unexpected answer {:?}", out.trim()),
        });
    }
    Ok(id)
}

/// `scancel [--batch --signal=SIG] <job>`: with a signal, only the batch script's process
/// (backprop on the node) gets it, so it stops the run gracefully.
pub fn cancel(job_id: &str, signal: Option<&str>) -> Result<(), SlurmError> {
    let mut args = Vec::new();
    let flag;
    if let Some(signal) = signal {
        flag = format!("--signal={signal}");
        args.extend(["--batch", flag.as_str()]);
    }
    args.push(job_id);
    call("scancel", &args).map(drop)
}

/// States of the jobs that are still queued or running (one line per array task).
pub fn squeue(job_ids: &[String]) -> Result<HashMap<String, String>, SlurmError> {
    let ids = job_ids.join(",");
    match call("squeue", &["-h", "-r", "-o", "%i|%T", "-j", &ids]) {
        Ok(out) => Ok(parse_squeue(&out)),
        // squeue refuses ids it has already forgotten: none of them is queued any more.
        Err(SlurmError::Refused { message, .. }) if message.contains("Invalid job id") => {
            Ok(HashMap::new())
        }
        Err(e) => Err(e),
    }
}

/// Final states from accounting.
pub fn sacct(job_ids: &[String]) -> Result<HashMap<String, SacctRow>, SlurmError> {
    let ids = job_ids.join(",");
    call(
        "sacct",
        &[
            "-P",
            "-n",
            "-X",
            "--format=JobID,State,ExitCode",
            "-j",
            &ids,
        ],
    )
    .map(|out| parse_sacct(&out))
}
