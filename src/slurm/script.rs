//! The batch script of a job (or job array), as pure text.

use crate::config::SlurmConfig;
use std::path::Path;
use std::time::Duration;

/// What goes into one batch script.
pub struct JobScript<'a> {
    pub job_name: &'a str,
    /// `--output` / `--error` go here (`slurm-%j.out` / `.err`, or `%A_%a` for arrays).
    pub log_dir: &'a Path,
    pub time_minutes: u64,
    pub gpus: Option<u32>,
    pub slurm: &'a SlurmConfig,
    /// Run ids; more than one makes a job array, `parallel` tasks at a time.
    pub run_ids: &'a [String],
    pub parallel: u32,
    pub home: &'a Path,
    pub cwd: &'a str,
    pub backprop: &'a Path,
}

/// `--time` in whole minutes: the timebox, the grace period and a margin, rounded up.
pub fn time_limit_minutes(timebox: Duration, grace: Duration, margin: Duration) -> u64 {
    ((timebox + grace + margin).as_secs_f64() / 60.0)
        .ceil()
        .max(1.0) as u64
}

/// Single-quotes `text` for bash.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

impl JobScript<'_> {
    pub fn render(&self) -> String {
        let array = self.run_ids.len() > 1;
        let pattern = if array { "%A_%a" } else { "%j" };
        let mut lines = vec!["#!/bin/bash".to_string()];
        let mut directive = |d: String| lines.push(format!("#SBATCH {d}"));
        directive(format!("--job-name={}", self.job_name));
        directive(format!(
            "--output={}",
            self.log_dir.join(format!("slurm-{pattern}.out")).display()
        ));
        directive(format!(
            "--error={}",
            self.log_dir.join(format!("slurm-{pattern}.err")).display()
        ));
        directive(format!("--time={}", self.time_minutes));
        if let Some(n) = self.gpus.filter(|n| *n > 0) {
            directive(format!("--gres=gpu:{n}"));
        }
        let slurm = self.slurm;
        directive(format!("--nodes={}", slurm.nodes.max(1)));
        if let Some(n) = slurm.ntasks_per_node {
            directive(format!("--ntasks-per-node={n}"));
        }
        // The early warning before the time limit or a preemption, to backprop only (B:): it
        // stops the run gracefully with a checkpoint.
        let signal = slurm.signal.signal().as_str().trim_start_matches("SIG");
        directive(format!(
            "--signal=B:{signal}@{}",
            slurm.signal_before.duration().as_secs().max(1)
        ));
        directive(
            if slurm.requeue {
                "--requeue"
            } else {
                "--no-requeue"
            }
            .to_string(),
        );
        // A requeued job appends to its logs rather than starting them again.
        directive("--open-mode=append".to_string());
        if array {
            directive(format!(
                "--array=0-{}%{}",
                self.run_ids.len() - 1,
                self.parallel.max(1)
            ));
        }
        for (flag, value) in [
            ("partition", &self.slurm.partition),
            ("account", &self.slurm.account),
            ("qos", &self.slurm.qos),
        ] {
            if let Some(value) = value {
                directive(format!("--{flag}={value}"));
            }
        }
        for extra in &self.slurm.extra_args {
            directive(extra.clone());
        }
        lines.push(format!(
            "export BACKPROP_HOME={}",
            quote(&self.home.display().to_string())
        ));
        lines.push(format!("cd {} || exit 1", quote(self.cwd)));
        // Run ids are [A-Za-z0-9._-]: safe unquoted in a bash array.
        lines.push(format!("ids=({})", self.run_ids.join(" ")));
        let index = if array { "${SLURM_ARRAY_TASK_ID}" } else { "0" };
        lines.push(format!(
            "exec {} run --executor local --run-id \"${{ids[{index}]}}\"",
            quote(&self.backprop.display().to_string())
        ));
        lines.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slurm() -> SlurmConfig {
        SlurmConfig {
            partition: Some("gpu".into()),
            account: None,
            qos: Some("high".into()),
            extra_args: vec!["--mem=8G".into()],
            time_margin: crate::config::Seconds::from_secs(300),
            ..SlurmConfig::default()
        }
    }

    #[test]
    fn the_time_limit_covers_timebox_grace_and_margin() {
        let s = Duration::from_secs;
        assert_eq!(time_limit_minutes(s(6), s(30), s(300)), 6);
        assert_eq!(time_limit_minutes(s(600), s(30), s(0)), 11);
        assert_eq!(time_limit_minutes(s(0), s(0), s(0)), 1);
    }

    #[test]
    fn a_single_job_runs_its_run_on_the_node() {
        let config = slurm();
        let ids = vec!["train-1".to_string()];
        let text = JobScript {
            job_name: "backprop-train-1",
            log_dir: Path::new("/h/runs/train-1"),
            time_minutes: 7,
            gpus: Some(1),
            slurm: &config,
            run_ids: &ids,
            parallel: 1,
            home: Path::new("/shared/it's home"),
            cwd: "/work",
            backprop: Path::new("/usr/bin/backprop"),
        }
        .render();
        for needle in [
            "#SBATCH --job-name=backprop-train-1",
            "#SBATCH --output=/h/runs/train-1/slurm-%j.out",
            "#SBATCH --time=7",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --partition=gpu",
            "#SBATCH --qos=high",
            "#SBATCH --mem=8G",
            "#SBATCH --signal=B:USR1@90",
            "#SBATCH --requeue",
            "#SBATCH --open-mode=append",
            "#SBATCH --nodes=1",
            "export BACKPROP_HOME='/shared/it'\\''s home'",
            "exec '/usr/bin/backprop' run --executor local --run-id \"${ids[0]}\"",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
        assert!(!text.contains("--array") && !text.contains("--account"));
    }

    #[test]
    fn a_batch_is_one_throttled_array() {
        let config = SlurmConfig::default();
        let ids: Vec<String> = (0..4).map(|i| format!("r{i}")).collect();
        let text = JobScript {
            job_name: "backprop-batch",
            log_dir: Path::new("/h/batches/b"),
            time_minutes: 2,
            gpus: None,
            slurm: &config,
            run_ids: &ids,
            parallel: 2,
            home: Path::new("/h"),
            cwd: "/w",
            backprop: Path::new("/b"),
        }
        .render();
        assert!(text.contains("#SBATCH --array=0-3%2"), "{text}");
        assert!(text.contains("slurm-%A_%a.out"));
        assert!(text.contains("ids=(r0 r1 r2 r3)"));
        assert!(text.contains("${ids[${SLURM_ARRAY_TASK_ID}]}"));
    }
}
