//! `-f auto`: which ML framework a script uses, from its imports.

use crate::config::Framework;

/// The framework a Python source imports first.
pub fn detect(source: &str) -> Option<Framework> {
    source.lines().find_map(|line| {
        let line = line.trim_start();
        let rest = line
            .strip_prefix("import ")
            .or_else(|| line.strip_prefix("from "))?;
        rest.split([',', ' ', '\t'])
            .filter(|word| !word.is_empty())
            .map(|module| module.split('.').next().unwrap_or(module))
            .take_while(|word| *word != "import")
            .find_map(framework_of)
    })
}

fn framework_of(module: &str) -> Option<Framework> {
    match module {
        "torch" | "lightning" | "pytorch_lightning" | "torchvision" => Some(Framework::Pytorch),
        "tensorflow" | "keras" | "tf_keras" => Some(Framework::Tensorflow),
        "jax" | "flax" | "optax" => Some(Framework::Jax),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_frameworks_in_the_usual_import_forms() {
        assert_eq!(
            detect("import os\nimport torch\n"),
            Some(Framework::Pytorch)
        );
        assert_eq!(
            detect("import numpy as np, torch.nn as nn"),
            Some(Framework::Pytorch)
        );
        assert_eq!(
            detect("from tensorflow import keras"),
            Some(Framework::Tensorflow)
        );
        assert_eq!(detect("    import jax.numpy as jnp"), Some(Framework::Jax));
        assert_eq!(detect("import keras"), Some(Framework::Tensorflow));
    }

    #[test]
    fn ignores_mentions_that_are_not_imports() {
        assert_eq!(
            detect("# we could import torch later\nprint('torch')"),
            None
        );
        assert_eq!(detect("from mypkg import torch_utils"), None);
    }
}
