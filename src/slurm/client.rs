//! Calling Slurm's commands, each bounded in time, with errors that say what to do.

use super::states::{QueueRow, SacctRow, parse_sacct, parse_squeue};
use crate::helper_command::{RunError, run_bounded};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// How long a status read (`squeue`, `sacct`) may take before the last known state is shown
/// instead: `list` must not hang on a controller that does not answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{0} not found on PATH: install the Slurm client tools, or run with --executor local")]
    NotFound(&'static str),
    #[error("{command} refused: {message}")]
    Refused {
        command: &'static str,
        message: String,
    },
    #[error("{0} did not answer within {1:?}; is slurmctld reachable?")]
    TimedOut(&'static str, Duration),
}

fn call(program: &'static str, args: &[&str]) -> Result<String, SlurmError> {
    call_within(program, args, TIMEOUT)
}

fn call_within(
    program: &'static str,
    args: &[&str],
    within: Duration,
) -> Result<String, SlurmError> {
    let mut command = Command::new(program);
    command.args(args);
    match run_bounded(&mut command, within) {
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
        Err(RunError::TimedOut) => Err(SlurmError::TimedOut(program, within)),
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

/// `scancel [--batch --signal=SIG] <jobs>`: with a signal, only the batch script's process
/// (backprop on the node) gets it, so it stops the run gracefully. The exit status is not
/// the verdict (scancel fails a whole call for one task in a state it cannot signal, yet
/// signals the others): callers check the outcome with `squeue`.
pub fn cancel(job_ids: &[String], signal: Option<&str>) -> Result<(), SlurmError> {
    let mut args: Vec<String> = Vec::new();
    if let Some(signal) = signal {
        args.push("--batch".into());
        args.push(format!("--signal={signal}"));
    }
    args.extend(job_ids.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    call("scancel", &args).map(drop)
}

/// Sends `signal` to the srun steps of `job_id` (never its batch step, backprop itself);
/// returns how many steps there were.
pub fn signal_steps(job_id: &str, signal: nix::sys::signal::Signal) -> Result<usize, SlurmError> {
    let out = call_within(
        "squeue",
        &["-h", "-s", "-j", job_id, "-o", "%i"],
        READ_TIMEOUT,
    )?;
    let steps: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|s| {
            s.rsplit_once('.')
                .is_some_and(|(_, n)| n.parse::<u32>().is_ok())
        })
        .collect();
    if steps.is_empty() {
        return Ok(0);
    }
    let flag = format!("--signal={}", signal.as_str().trim_start_matches("SIG"));
    let mut args = vec![flag.as_str()];
    args.extend(&steps);
    call("scancel", &args)?;
    Ok(steps.len())
}

/// `scontrol requeue <job>`: the job goes back to pending and runs again from the start.
pub fn requeue(job_id: &str) -> Result<(), SlurmError> {
    call("scontrol", &["requeue", job_id]).map(drop)
}

/// The jobs that are still queued or running (one line per array task), with why a pending
/// one waits and where a running one runs.
pub fn squeue(job_ids: &[String]) -> Result<HashMap<String, QueueRow>, SlurmError> {
    let ids = job_ids.join(",");
    match call_within(
        "squeue",
        &["-h", "-r", "-o", "%i|%T|%r|%N", "-j", &ids],
        READ_TIMEOUT,
    ) {
        Ok(out) => Ok(parse_squeue(&out)),
        // squeue refuses ids it has already forgotten: none of them is queued any more.
        Err(SlurmError::Refused { message, .. }) if message.contains("Invalid job id") => {
            Ok(HashMap::new())
        }
        Err(e) => Err(e),
    }
}

/// The time this job has left (`squeue %L`), when the controller tells.
pub fn time_left(job_id: &str) -> Option<Duration> {
    let out = call_within("squeue", &["-h", "-j", job_id, "-o", "%L"], READ_TIMEOUT).ok()?;
    super::states::parse_time(out.trim()).flatten()
}

/// Final states from accounting (`CANCELLED by 1000` keeps who).
pub fn sacct(job_ids: &[String]) -> Result<HashMap<String, SacctRow>, SlurmError> {
    let ids = job_ids.join(",");
    call_within(
        "sacct",
        &[
            "-P",
            "-n",
            "-X",
            "--format=JobID,State,ExitCode",
            "-j",
            &ids,
        ],
        READ_TIMEOUT,
    )
    .map(|out| parse_sacct(&out))
}

/// The time limit of `partition`, or of the default partition when None (`None` inside:
/// unlimited). None when sinfo does not say.
pub fn partition_limit(partition: Option<&str>) -> Option<(String, Option<Duration>)> {
    let out = call_within("sinfo", &["-h", "-o", "%P|%l"], READ_TIMEOUT).ok()?;
    out.lines().find_map(|line| {
        let (name, limit) = line.trim().split_once('|')?;
        let default = name.ends_with('*');
        let name = name.trim_end_matches('*');
        let wanted = match partition {
            Some(p) => p == name,
            None => default,
        };
        wanted.then(|| Some((name.to_string(), super::states::parse_time(limit.trim())?)))?
    })
}
