//! `-f auto`: which ML framework a script uses, from its imports.

/// The framework a Python source imports first, by SPEC name.
pub fn detect(source: &str) -> Option<&'static str> {
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

fn framework_of(module: &str) -> Option<&'static str> {
    match module {
        "torch" | "lightning" | "pytorch_lightning" | "torchvision" => Some("pytorch"),
        "tensorflow" | "keras" | "tf_keras" => Some("tensorflow"),
        "jax" | "flax" | "optax" => Some("jax"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_frameworks_in_the_usual_import_forms() {
        assert_eq!(detect("import os\nimport torch\n"), Some("pytorch"));
        assert_eq!(
            detect("import numpy as np, torch.nn as nn"),
            Some("pytorch")
        );
        assert_eq!(detect("from tensorflow import keras"), Some("tensorflow"));
        assert_eq!(detect("    import jax.numpy as jnp"), Some("jax"));
        assert_eq!(detect("import keras"), Some("tensorflow"));
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
