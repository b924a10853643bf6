//! Loading a Hugging Face BERT checkpoint (`config.json` + `model.safetensors`) into [`Bert`].
//!
//! [`HF_TO_KILN`] is the one table that maps checkpoint names to Kiln module paths. burn-store applies
//! it, transposes `Linear` weights (PyTorch stores `[out, in]`, Burn `[in, out]`) and reads
//! LayerNorm's `weight`/`bias` as `gamma`/`beta` (its `PyTorchToBurnAdapter`). Before loading, every
//! tensor the config needs is looked up in the file's header, so a missing or mis-shaped tensor is an
//! error naming the checkpoint tensor, not a half-loaded model. Checkpoints saved from a task model
//! (`BertForTokenClassification`, ...) carry a `bert.` prefix, which the table accepts; their heads
//! are ignored.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use burn::prelude::*;
use burn::store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use super::{Bert, BertConfig, BertError};
use kiln_layers::AttentionConfig;

/// Checkpoint name (regex, optional `bert.` prefix) → Kiln module path.
pub const HF_TO_KILN: &[(&str, &str)] = &[
    (r"^(bert\.)?embeddings\.word_embeddings\.", "embeddings.word."),
    (r"^(bert\.)?embeddings\.position_embeddings\.", "embeddings.position."),
    (r"^(bert\.)?embeddings\.token_type_embeddings\.", "embeddings.token_type."),
    (r"^(bert\.)?embeddings\.LayerNorm\.", "embeddings.norm."),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.", "encoder.blocks.${2}.attention.${3}."),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.attention\.output\.dense\.", "encoder.blocks.${2}.attention.output."),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", "encoder.blocks.${2}.norm1."),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.intermediate\.dense\.", "encoder.blocks.${2}.feed_forward.hidden."),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.output\.dense\.", "encoder.blocks.${2}.feed_forward.output."),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.output\.LayerNorm\.", "encoder.blocks.${2}.norm2."),
    (r"^(bert\.)?pooler\.dense\.", "pooler."),
];

/// The checkpoint tensors (names without the `bert.` prefix, PyTorch shapes) a config needs, pooler
/// excluded.
pub fn expected_tensors(config: &BertConfig) -> Vec<(String, Vec<usize>)> {
    let (d, ff) = (config.hidden_size, config.intermediate_size);
    let mut out = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![config.vocab_size, d]),
        ("embeddings.position_embeddings.weight".into(), vec![config.max_position_embeddings, d]),
        ("embeddings.token_type_embeddings.weight".into(), vec![config.type_vocab_size, d]),
        ("embeddings.LayerNorm.weight".into(), vec![d]),
        ("embeddings.LayerNorm.bias".into(), vec![d]),
    ];
    for i in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{i}");
        for (name, out_dim, in_dim) in [
            ("attention.self.query", d, d),
            ("attention.self.key", d, d),
            ("attention.self.value", d, d),
            ("attention.output.dense", d, d),
            ("intermediate.dense", ff, d),
            ("output.dense", d, ff),
        ] {
            out.push((format!("{p}.{name}.weight"), vec![out_dim, in_dim]));
            out.push((format!("{p}.{name}.bias"), vec![out_dim]));
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            out.push((format!("{p}.{norm}.weight"), vec![d]));
            out.push((format!("{p}.{norm}.bias"), vec![d]));
        }
    }
    out
}

/// Names and shapes in a safetensors file's header (reads the header only).
///
/// # Errors
///
/// The file cannot be read or its header is not safetensors JSON.
pub fn safetensors_shapes(path: &Path) -> Result<HashMap<String, Vec<usize>>, BertError> {
    let file = std::fs::File::open(path).map_err(|source| BertError::Io { path: path.into(), error: source })?;
    safetensors_shapes_from(file, path)
}

/// [`safetensors_shapes`] from any reader positioned at the start of the file; `path` names it in errors.
///
/// # Errors
///
/// As [`safetensors_shapes`].
pub fn safetensors_shapes_from(mut file: impl Read, path: &Path) -> Result<HashMap<String, Vec<usize>>, BertError> {
    let bad = |message: String| BertError::Checkpoint { path: path.into(), message };
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| bad(format!("no safetensors header: {e}")))?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        return Err(bad(format!("header length {len} is implausible; not a safetensors file")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(|e| bad(format!("truncated header: {e}")))?;
    let header: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let mut shapes = HashMap::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            continue;
        }
        let shape = entry
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|s| s.iter().map(|v| v.as_u64().map(|v| v as usize)).collect::<Option<Vec<_>>>())
            .ok_or_else(|| bad(format!("tensor `{name}` has no shape")))?;
        shapes.insert(name, shape);
    }
    Ok(shapes)
}

/// Load a BERT checkpoint directory (`config.json`, `model.safetensors`) with the given attention kind.
///
/// # Errors
///
/// A file is missing or malformed, the config is unsupported, or a tensor is missing or mis-shaped.
pub fn load_pretrained(
    dir: &Path,
    attention: AttentionConfig,
    device: &Device,
) -> Result<(Bert, BertConfig), BertError> {
    let mut config = BertConfig::from_file(&dir.join("config.json"))?;
    config.attention = attention;
    config.validate()?;
    let weights = dir.join("model.safetensors");
    let shapes = safetensors_shapes(&weights)?;
    // Accept the `bert.` prefix of task checkpoints.
    let prefixed = !shapes.contains_key("embeddings.word_embeddings.weight")
        && shapes.contains_key("bert.embeddings.word_embeddings.weight");
    let name = |n: &str| if prefixed { format!("bert.{n}") } else { n.to_string() };
    let mut missing = Vec::new();
    for (n, expected) in expected_tensors(&config) {
        match shapes.get(&name(&n)) {
            None => missing.push(name(&n)),
            Some(found) if *found != expected => {
                return Err(BertError::Shape { path: weights, name: name(&n), found: found.clone(), expected });
            }
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        return Err(BertError::Missing { path: weights, names: missing });
    }
    // Tensors of the BERT body that config.json does not describe (more layers, another
    // architecture) mean the two files disagree; task heads (`cls.`, `classifier.`) and the
    // position-id buffer of older checkpoints are left aside, as Hugging Face does.
    let known: std::collections::HashSet<String> =
        expected_tensors(&config).into_iter().map(|(n, _)| name(&n)).collect();
    let mut unexpected: Vec<&String> = shapes
        .keys()
        .filter(|k| {
            let body = k.strip_prefix("bert.").unwrap_or(k);
            (body.starts_with("embeddings.") || body.starts_with("encoder."))
                && !body.ends_with("position_ids")
                && !known.contains(*k)
        })
        .collect();
    if !unexpected.is_empty() {
        unexpected.sort();
        let names = unexpected.iter().take(5).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        return Err(BertError::Checkpoint {
            path: weights,
            message: format!(
                "{} unexpected tensors ({names}{}): the weights do not match config.json (more layers, or another architecture?)",
                unexpected.len(),
                if unexpected.len() > 5 { ", ..." } else { "" }
            ),
        });
    }
    let pooler = shapes.contains_key(&name("pooler.dense.weight"));
    let mut model = config.init(pooler, device);
    let remap = KeyRemapper::from_patterns(HF_TO_KILN.to_vec()).expect("the key table is valid regex");
    let mut store = SafetensorsStore::from_file(&weights)
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(remap)
        .skip_enum_variants(true)
        .allow_partial(true);
    let result = model
        .load_from(&mut store)
        .map_err(|e| BertError::Checkpoint { path: weights.clone(), message: e.to_string() })?;
    if !result.errors.is_empty() {
        let message = result.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        return Err(BertError::Checkpoint { path: weights, message });
    }
    if !result.missing.is_empty() {
        // The header check above makes this unreachable unless HF_TO_KILN and the module disagree.
        let names = result.missing.iter().map(|(path, _)| format!("(kiln) {path}")).collect();
        return Err(BertError::Missing { path: weights, names });
    }
    Ok((model, config))
}

/// Write a small randomly initialised BERT in Hugging Face layout (`config.json`, `vocab.txt`,
/// `model.safetensors`) to `dir`: for tests and examples that need a checkpoint directory without
/// downloading one, as Hugging Face's `hf-internal-testing/tiny-random-bert` serves its tests.
/// Weights are uniform in `±0.1` from a fixed generator seeded by `seed`, LayerNorm scales 1 and
/// shifts 0; `vocab` must start with `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]` (any order).
///
/// # Errors
///
/// A file cannot be written.
pub fn write_random_checkpoint(
    dir: &Path,
    vocab: &[&str],
    hidden_size: usize,
    layers: usize,
    heads: usize,
    seed: u64,
) -> std::io::Result<()> {
    let config = serde_json::json!({
        "model_type": "bert", "architectures": ["BertModel"], "vocab_size": vocab.len(),
        "hidden_size": hidden_size, "num_hidden_layers": layers, "num_attention_heads": heads,
        "intermediate_size": 4 * hidden_size, "max_position_embeddings": 512, "type_vocab_size": 2,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "layer_norm_eps": 1e-12,
    });
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config)?)?;
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n")?;
    let parsed: BertConfig = serde_json::from_value(config)?;
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let mut uniform = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
    };
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = expected_tensors(&parsed)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with("LayerNorm.weight") {
                vec![1.0; n]
            } else if name.ends_with("LayerNorm.bias") {
                vec![0.0; n]
            } else {
                (0..n).map(|_| uniform()).collect()
            };
            (name, shape, values.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect();
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map_err(std::io::Error::other)?;
            Ok((name.clone(), view))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::Dtype;
    use safetensors::tensor::TensorView;

    fn tiny_config() -> BertConfig {
        serde_json::from_str(
            r#"{"vocab_size": 11, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 12, "max_position_embeddings": 7, "type_vocab_size": 2,
                "hidden_act": "gelu", "layer_norm_eps": 1e-12, "model_type": "bert", "architectures": ["BertModel"]}"#,
        )
        .unwrap()
    }

    /// Writes a checkpoint in Hugging Face layout (PyTorch shapes, HF names) from known values, loads
    /// it, and checks every parameter landed where the table says, transposed where Linear needs it.
    #[test]
    fn table_maps_every_tensor_and_transposes_linears() {
        let dir = std::env::temp_dir().join(format!("kiln-bert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = tiny_config();
        std::fs::write(
            dir.join("config.json"),
            r#"{"vocab_size": 11, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 12, "max_position_embeddings": 7, "hidden_act": "gelu"}"#,
        )
        .unwrap();
        let mut tensors = expected_tensors(&config);
        tensors.push(("pooler.dense.weight".into(), vec![8, 8]));
        tensors.push(("pooler.dense.bias".into(), vec![8]));
        tensors.push(("embeddings.position_ids".into(), vec![1, 7])); // present in real files, unused
        // Value of element i of tensor t: t + i / 1000, so every element is distinct and traceable.
        let data: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
            .iter()
            .enumerate()
            .map(|(t, (n, s))| {
                (
                    format!("bert.{n}"),
                    s.clone(),
                    (0..s.iter().product::<usize>()).map(|i| t as f32 + i as f32 / 1000.0).collect(),
                )
            })
            .collect();
        let bytes: Vec<Vec<u8>> = data.iter().map(|(_, _, v)| le_bytes(v)).collect();
        let write = |skip: &str, flatten: &str| {
            let views: Vec<(String, TensorView)> = data
                .iter()
                .zip(&bytes)
                .filter(|((n, _, _), _)| n != skip)
                .map(|((n, s, _), b)| {
                    let shape = if n == flatten { vec![s.iter().product()] } else { s.clone() };
                    (n.clone(), TensorView::new(Dtype::F32, shape, b).unwrap())
                })
                .collect();
            safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
        };
        write("", "");

        let device = Device::flex();
        let (model, loaded) = load_pretrained(&dir, AttentionConfig::Softmax {}, &device).unwrap();
        assert_eq!(loaded.hidden_size, 8);
        let get = |name: &str| data.iter().find(|(n, _, _)| n == &format!("bert.{name}")).unwrap().2.clone();
        let close = |a: Vec<f32>, b: Vec<f32>| assert_eq!(a, b);
        close(vals(model.embeddings.word.weight.val()), get("embeddings.word_embeddings.weight"));
        close(vals(model.embeddings.norm.gamma.val()), get("embeddings.LayerNorm.weight"));
        let block = &model.encoder.blocks[1];
        // PyTorch [out, in] → Burn [in, out].
        let w = get("encoder.layer.1.intermediate.dense.weight"); // [12, 8]
        let expected: Vec<f32> = (0..8).flat_map(|i| (0..12).map(move |o| (o, i))).map(|(o, i)| w[o * 8 + i]).collect();
        close(vals(block.feed_forward.hidden.weight.val()), expected);
        let bias = vals(block.attention.key.bias.as_ref().unwrap().val());
        close(bias, get("encoder.layer.1.attention.self.key.bias"));
        let kiln_layers::Norm::LayerNorm(n2) = &block.norm2 else { panic!("layer norm") };
        close(vals(n2.beta.as_ref().unwrap().val()), get("encoder.layer.1.output.LayerNorm.bias"));
        let pooler = model.pooler.as_ref().expect("pooler loaded");
        close(vals(pooler.bias.as_ref().unwrap().val()), get("pooler.dense.bias"));

        // A missing and a mis-shaped tensor are errors naming the checkpoint tensor.
        let error = || load_pretrained(&dir, AttentionConfig::Softmax {}, &device).map(|_| ()).unwrap_err().to_string();
        write("bert.encoder.layer.0.attention.self.value.weight", "");
        let err = error();
        assert!(err.contains("missing tensors: bert.encoder.layer.0.attention.self.value.weight"), "{err}");
        write("", "bert.encoder.layer.1.output.dense.weight");
        let err = error();
        assert!(err.contains("`bert.encoder.layer.1.output.dense.weight` has shape [96], expected [8, 12]"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 data")
    }

    fn le_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn unsupported_configs_name_the_key() {
        let mut c = tiny_config();
        c.hidden_act = "gelu_new".into();
        assert!(c.validate().unwrap_err().to_string().contains("hidden_act = \"gelu_new\""));
        let mut c = tiny_config();
        c.position_embedding_type = Some("relative_key".into());
        assert!(c.validate().unwrap_err().to_string().contains("position_embedding_type"));
        let mut c = tiny_config();
        c.num_attention_heads = 3;
        assert!(c.validate().unwrap_err().to_string().contains("n_heads"));
    }
}
